"""Start, stop and drive the simulated host from Python.

:class:`SimulatedHost` owns a root folder: the daemon's socket and log, the system directory
holding the simulated DLLs, and the state the daemon keeps (base images, layer folders the
library creates). A root is one host of one profile (one Windows build), as a machine is: by
default each profile has a root of its own (``<base>/<profile>``), and a root made for one
profile refuses to start as another. A host runs as an elevated administrator, or as a
standard user (``user="standard"``) to see what the library does without the privileges.

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
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Optional, Union

from wincontainers.errors import BadInput, HcsUnavailable
from wincontainers.sim import build, wire
from wincontainers.sim.private import open_private, private_folder
from wincontainers.sim.profiles import Profile, get_profile

__all__ = ["SimulatedHost", "default_root"]

#: the daemon logs to ``<root>/daemon/daemon.log`` (``wincontainers.sim.*`` loggers in its
#: process); this side logs starting and stopping it, and what it had to end by force
log = logging.getLogger("wincontainers.sim")


USERS = ("admin", "standard")


def default_root(profile: str = "ws2019") -> Path:
    """The simulated host of ``profile`` when no root is given: ``WINCONTAINERS_ROOT`` when set
    (a root of the caller's choosing, as ``--root``), else a host per profile under
    ``$XDG_STATE_HOME/wincontainers/sim/<profile>`` (``~/.local/state/...`` without XDG)."""
    name = get_profile(profile).name
    env = os.environ.get("WINCONTAINERS_ROOT")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "wincontainers" / "sim" / name


class SimulatedHost:
    """A simulated Windows host under ``root``, seen as Windows build ``profile``.

    ``user`` is the account clients run as: ``"admin"`` (elevated, the default for a new
    root) or ``"standard"`` (no SeBackup/SeRestore/SeSecurity privileges, HCS refuses access).
    ``None`` keeps what the root was made with.
    """

    def __init__(self, profile: str = "ws2019", root: Union[str, Path, None] = None, *,
                 user: Optional[str] = None) -> None:
        self.profile: Profile = get_profile(profile)
        if user is not None and user not in USERS:
            raise BadInput(f"user {user!r}: use 'admin' or 'standard'")
        self.root = (Path(root).expanduser() if root is not None else default_root(self.profile.name)).resolve()
        self.daemon_dir = self.root / "daemon"
        self.socket_path = _socket_path(self.root)
        self.system_directory = self.root / "system" / self.profile.name
        self._user = user

    def __repr__(self) -> str:
        return f"SimulatedHost(profile={self.profile.name!r}, root={str(self.root)!r})"

    @property
    def user(self) -> str:
        """The account this host's clients run as (``"admin"`` or ``"standard"``)."""
        return self._user or str(self._identity().get("user") or "admin")

    def _identity_path(self) -> Path:
        return self.daemon_dir / "host.json"

    def _identity(self) -> dict[str, Any]:
        try:
            doc = json.loads(self._identity_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _claim_root(self) -> None:
        """Record (or check) which host this root is: one profile, one account."""
        known = self._identity()
        if known and known.get("profile") != self.profile.name:
            raise BadInput(
                f"{self.root} is the simulated host of profile {known.get('profile')!r}, not "
                f"{self.profile.name!r}: a root is one host (one Windows build); use --sim "
                f"{known.get('profile')} with it, or another --root (each profile has its own by default)")
        wanted = {"profile": self.profile.name, "user": self._user or known.get("user") or "admin"}
        if known != wanted:
            tmp = self._identity_path().with_suffix(".tmp")
            tmp.write_text(json.dumps(wanted), encoding="utf-8")
            os.replace(tmp, self._identity_path())

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "SimulatedHost":
        """Build the DLLs if needed, lay out the system directory, start the daemon if it is not up."""
        if timeout is not None and timeout < 0:
            raise BadInput("timeout must not be negative")
        private_folder(self.root, "simulated host's root")
        private_folder(self.daemon_dir, "simulated host's daemon folder")
        with open_private(self.daemon_dir / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            info = self.status()
            if info is not None:
                self._check_running(info)
                return self
            self._claim_root()
            private_folder(self.socket_path.parent, "simulated host's socket folder")
            private_folder(self.system_directory.parent, "simulated host's system folder")
            build.populate_system_directory(self.profile, self.system_directory, self.socket_path)
            self._spawn_daemon(timeout)
        return self

    def _check_running(self, info: dict[str, Any]) -> None:
        running = info.get("profile") or ""
        if running and running != self.profile.name:
            raise BadInput(
                f"{self.root} is the simulated host of profile {running!r}, not {self.profile.name!r}: "
                f"a root is one host; use --sim {running} with it, or another --root")
        if self._user is not None and info.get("user") not in (None, self._user):
            raise BadInput(
                f"the simulated host under {self.root} runs as the {info.get('user')} user, not {self._user}: "
                "stop it first (wincontainers sim stop) to start it as another")

    def _spawn_daemon(self, timeout: float) -> None:
        log_path = self.daemon_dir / "daemon.log"
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open_private(log_path, "ab") as log_file, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(
                [sys.executable, "-m", "wincontainers.sim.daemon", "--root", str(self.root),
                 "--socket", str(self.socket_path), "--profile", self.profile.name, "--user", self.user],
                stdin=devnull, stdout=log_file, stderr=log_file, start_new_session=True, close_fds=True, env=env,
                cwd="/",
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status() is not None:
                log.info("started the simulated host %s (profile %s, user %s): daemon pid %d, log %s",
                         self.root, self.profile.name, self.user, proc.pid, log_path)
                return
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        if proc.poll() is None:
            proc.kill()
        log.error("the simulated host's daemon for %s did not start (log %s)", self.root, log_path)
        raise HcsUnavailable(f"the simulator daemon for {self.root} did not start:\n{tail}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the daemon, as stopping the vmcompute service does: its containers' processes
        end with it (those of a daemon that died or had to be killed are ended here). False
        when it was not running."""
        info = self.status()
        if info is None:
            self._end_container_processes()
            return False
        pid = int(info["pid"])
        try:
            self.control({"op": "shutdown"})
        except (OSError, HcsUnavailable):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.02)
        else:
            log.warning("the simulated host's daemon (pid %d) did not stop within %.0f s: killed", pid, timeout)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._end_container_processes()
        log.info("stopped the simulated host %s", self.root)
        return True

    def container_processes(self) -> list[int]:
        """Host PIDs of processes that run in this host's containers (found by the
        ``WCSIM_SOCKET`` their daemon gave them), whether or not the daemon still runs."""
        marker = b"\0WCSIM_SOCKET=" + os.fsencode(self.socket_path) + b"\0"
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = b"\0" + f.read() + b"\0"
            except OSError:
                continue
            if marker in environ and _alive(int(entry)):
                found.append(int(entry))
        return sorted(found)

    def _end_container_processes(self, timeout: float = 10.0) -> None:
        pids = self.container_processes()
        if pids:
            log.warning("ending %d container process(es) the simulated host %s left: %s", len(pids), self.root,
                        ", ".join(map(str, pids)))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)

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

    def hyperv(self, *, installed: Optional[bool] = None, boot_delay: Optional[float] = None) -> dict[str, Any]:
        """The host's Hyper-V: whether the role is installed (without it Hyper-V containers are
        refused with HCS_E_HYPERV_NOT_INSTALLED) and how many seconds a utility VM takes to
        boot. Each given value is set; the current ones are returned."""
        result: dict[str, Any] = self.control({"op": "hyperv", "installed": installed, "boot_delay": boot_delay})
        return result

    def open_handles(self, pid: Optional[int] = None) -> dict[str, dict[str, int]]:
        """Open daemon-side handles per client process: ``{"<pid>": {"total": n, "system": n, ...}}``."""
        result: dict[str, dict[str, int]] = self.control({"op": "handles", "pid": pid})
        return result

    def leases(self, enabled: Optional[bool] = None) -> dict[str, Any]:
        """The folder leases (see ``wincontainers.sim.leases``): counts of grants, settlements,
        adopted handles, journal entries (``ring``: those taken from a journal ring) and listings,
        and the leases held now; ``enabled`` turns grants on or off (to compare what callers see
        with and without)."""
        result: dict[str, Any] = self.control({"op": "leases", "enabled": enabled})
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

    def set_user(self, pid: int, user: str) -> None:
        """Let client process ``pid`` run as ``"admin"`` or ``"standard"`` from now on (its token
        starts again: privileges disabled)."""
        if user not in USERS:
            raise BadInput(f"user {user!r}: use 'admin' or 'standard'")
        self.control({"op": "set_user", "pid": pid, "user": user})

    def mark_foreign(self, pid: int, foreign: bool = True) -> None:
        """Make process ``pid`` belong to another account: OpenProcess on it is refused with
        ERROR_ACCESS_DENIED, as for another user's process on Windows."""
        self.control({"op": "foreign", "pid": pid, "foreign": foreign})


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
