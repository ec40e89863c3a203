"""Start, stop and drive the simulated host from Python.

:class:`SimulatedHost` owns a root folder: the daemon's socket and log, the system directories
(one per profile, holding the simulated DLLs) and the state the daemon keeps (base images,
layer folders the library creates). The daemon serves every profile; the profile is a property
of the system directory a client loads its DLLs from.

Test controls (fault injection, dropped notifications, processes that ignore shutdown, open
handle counts, daemon-side objects) are methods here too.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Union

from wincontainers.errors import BadInput, HcsUnavailable
from wincontainers.sim import build, wire
from wincontainers.sim.profiles import Profile, get_profile

__all__ = ["SimulatedHost", "default_root"]


def default_root() -> Path:
    """``WINCONTAINERS_ROOT`` or ``$XDG_STATE_HOME/wincontainers/sim``."""
    env = os.environ.get("WINCONTAINERS_ROOT")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "wincontainers" / "sim"


class SimulatedHost:
    """A simulated Windows host under ``root``, seen as Windows build ``profile``."""

    def __init__(self, profile: str = "ws2019", root: Union[str, Path, None] = None) -> None:
        self.profile: Profile = get_profile(profile)
        self.root = Path(root).expanduser().resolve() if root is not None else default_root().resolve()
        self.daemon_dir = self.root / "daemon"
        self.socket_path = _socket_path(self.root)
        self.system_directory = self.root / "system" / self.profile.name

    def __repr__(self) -> str:
        return f"SimulatedHost(profile={self.profile.name!r}, root={str(self.root)!r})"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "SimulatedHost":
        """Build the DLLs if needed, lay out the system directory, start the daemon if it is not up."""
        if timeout is not None and timeout < 0:
            raise BadInput("timeout must not be negative")
        self.daemon_dir.mkdir(parents=True, exist_ok=True)
        build.populate_system_directory(self.profile, self.system_directory, self.socket_path)
        with open(self.daemon_dir / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.status() is not None:
                return self
            self._spawn_daemon(timeout)
        return self

    def _spawn_daemon(self, timeout: float) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.daemon_dir / "daemon.log"
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(
                [sys.executable, "-m", "wincontainers.sim.daemon", "--root", str(self.root),
                 "--socket", str(self.socket_path)],
                stdin=devnull, stdout=log, stderr=log, start_new_session=True, close_fds=True, env=env,
                cwd="/",
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status() is not None:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        if proc.poll() is None:
            proc.kill()
        raise HcsUnavailable(f"the simulator daemon for {self.root} did not start:\n{tail}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the daemon (its containers are terminated). False when it was not running."""
        info = self.status()
        if info is None:
            return False
        pid = int(info["pid"])
        try:
            self.control({"op": "shutdown"})
        except (OSError, HcsUnavailable):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.02)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return True

    def status(self) -> Optional[dict[str, Any]]:
        """The daemon's ``{"pid", "root", "started", "clients"}``, or ``None`` when it is not running."""
        try:
            result = self.control({"op": "ping"})
        except (OSError, HcsUnavailable):
            return None
        return result if isinstance(result, dict) else None

    def __enter__(self) -> "SimulatedHost":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control channel ------------------------------------------------------------------------

    def control(self, request: dict[str, Any]) -> Any:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(str(self.socket_path))
            wire.send_message(sock, b"J" + json.dumps(request).encode("utf-8"))
            msg = wire.recv_message(sock)
        finally:
            sock.close()
        if msg is None:
            raise HcsUnavailable(f"the simulator daemon for {self.root} closed the control connection")
        payload, fds = msg
        for fd in fds:
            os.close(fd)
        answer = json.loads(payload[1:].decode("utf-8"))
        if not answer.get("ok"):
            raise BadInput(f"simulator control {request.get('op')!r} failed: {answer.get('error')}")
        return answer.get("result")

    # -- test controls ----------------------------------------------------------------------------

    def inject(
        self,
        function: str,
        hresult: Optional[int] = None,
        *,
        delay: float = 0.0,
        nth: int = 1,
        count: int = 1,
        pid: Optional[int] = None,
        dll: Optional[str] = None,
        mode: str = "return",
    ) -> int:
        """Fail (``hresult``) and/or delay (``delay`` seconds) the Nth call of ``function``.

        ``pid`` limits the rule to one client process, ``dll`` to one DLL (names like
        ``HcsCreateComputeSystem`` exist in vmcompute and computecore). ``mode="async"`` makes a
        gen2 start/pause/resume report the failure through its completion notification.
        """
        return int(self.control({
            "op": "inject", "function": function, "hresult": hresult, "delay": delay, "nth": nth,
            "count": count, "pid": pid, "dll": dll, "mode": mode,
        }))

    def drop_notification(self, notification: str, *, nth: int = 1, count: int = 1, pid: Optional[int] = None) -> int:
        """Lose the Nth ``notification`` (``SystemExited``, ``ProcessExited``, ``SystemStartCompleted`` ...)."""
        return int(self.control({"op": "drop", "notification": notification, "nth": nth, "count": count, "pid": pid}))

    def clear_faults(self) -> None:
        self.control({"op": "clear_faults"})

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control({"op": "faults"})
        return result

    def ignore_shutdown(self, system: str = "*", enabled: bool = True) -> None:
        """Make the processes of ``system`` (every one with ``"*"``) ignore graceful shutdown."""
        self.control({"op": "ignore_shutdown", "system": system, "enabled": enabled})

    def open_handles(self, pid: Optional[int] = None) -> dict[str, dict[str, int]]:
        """Open daemon-side handles per client process: ``{"<pid>": {"total": n, "system": n, ...}}``."""
        result: dict[str, dict[str, int]] = self.control({"op": "handles", "pid": pid})
        return result

    def handle_count(self, pid: Optional[int] = None) -> int:
        pid = os.getpid() if pid is None else pid
        return int(self.open_handles(pid).get(str(pid), {}).get("total", 0))

    def objects(self) -> dict[str, Any]:
        """Daemon-side compute systems, volumes, networks, endpoints and namespaces."""
        result: dict[str, Any] = self.control({"op": "objects", "profile": self.profile.name})
        return result

    def calls(self, pid: Optional[int] = None, clear: bool = False) -> list[str]:
        """The HCS functions a client process called, in order."""
        pid = os.getpid() if pid is None else pid
        return list(self.control({"op": "calls", "pid": pid, "clear": clear}))

    def documents(self, function: Optional[str] = None, pid: Optional[int] = None,
                  clear: bool = False) -> list[dict[str, Any]]:
        """The JSON documents a client process sent, oldest first: ``{"function", "args",
        "documents"}`` (``args``: the call's string arguments; ``documents``: those parsed)."""
        pid = os.getpid() if pid is None else pid
        out = []
        for entry in self.control({"op": "documents", "pid": pid, "clear": clear}):
            if function is not None and entry["function"] != function:
                continue
            parsed = []
            for arg in entry["args"]:
                try:
                    parsed.append(json.loads(arg))
                except ValueError:
                    continue
            out.append({**entry, "documents": parsed})
        return out

    def allocator_misuse(self) -> dict[str, list[str]]:
        """Strings freed with the wrong allocator (or twice), per client process."""
        result: dict[str, list[str]] = self.control({"op": "misuse"})
        return result

    def process_list(self, system_id: str) -> list[dict[str, Any]]:
        return list(self.control({"op": "processes", "system": system_id}))


def _socket_path(root: Path) -> Path:
    # sun_path holds 108 bytes; long roots (pytest tmp dirs) get a short path under /tmp.
    path = root / "daemon" / "hcs.sock"
    if len(str(path).encode()) <= 100:
        return path
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return Path("/tmp") / f"wcsim-{os.getuid()}" / f"{digest}.sock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
