"""Where a simulated container's processes run: a zygote per container, confined by bubblewrap.

With a usable ``bwrap`` the zygote (and every process it forks) runs in new mount, PID and IPC
namespaces whose file system holds only the container's root (read-write, at its own path),
the interpreter's files read-only (``/usr`` and the Python environment), the wincontainers
package, the daemon's socket, and fresh ``/proc``, ``/dev`` and ``/tmp``: the host's files are not
there. Without ``bwrap`` the same zygote runs unconfined, and :func:`confinement` says so (the
daemon logs it once; ``Host.info()`` and ``sim status`` show it).

A process keeps its host PID (the daemon reads it from the credentials of the child's first
message), as a process-isolated Windows container's processes are host processes.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

from wincontainers.sim.shell.programs import windows_exit_code

__all__ = ["Zygote", "ChildProcess", "confinement", "SpawnFailed"]

log = logging.getLogger("wincontainers.sim.sandbox")

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]
_probe_lock = threading.Lock()
_probed: Optional[str] = None


class SpawnFailed(OSError):
    """The container's zygote could not start a process."""


def confinement() -> str:
    """``"bubblewrap"`` when processes are confined, else ``"none: <why>"`` (probed once)."""
    global _probed
    with _probe_lock:
        if _probed is None:
            _probed = _probe()
            if _probed != "bubblewrap":
                log.warning("container processes are not confined (%s): they see the host's files", _probed[6:])
        return _probed


def _probe() -> str:
    if os.environ.get("WCSIM_NO_BWRAP"):
        return "none: WCSIM_NO_BWRAP is set"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "none: bubblewrap (bwrap) is not installed"
    try:
        result = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--dev", "/dev", "--proc", "/proc",
                                 "true"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"none: bwrap cannot run ({exc})"
    if result.returncode != 0:
        why = result.stderr.decode(errors="replace").strip().splitlines()
        return f"none: bwrap cannot make namespaces here ({why[-1] if why else result.returncode})"
    return "bubblewrap"


def _bwrap_argv(root: Path, socket_path: Path, hostname: str, mounts: Sequence[str],
                read_only: Sequence[str] = ()) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    # A fresh /tmp first: the binds below may lie under /tmp and must come after it.
    argv = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--hostname", hostname[:63] or "container", "--new-session", "--tmpfs", "/tmp"]
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    seen = {"/usr"}
    for extra in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        real = os.path.realpath(extra)
        if any(real == s or real.startswith(s + "/") for s in seen):
            continue
        seen.add(real)
        argv += ["--ro-bind", real, real]
        if extra != real and not extra.startswith("/usr/"):
            argv += ["--ro-bind", extra, extra]
    package = _PACKAGE_PARENT / "wincontainers"
    argv += ["--ro-bind", str(package), str(package)]
    argv += ["--proc", "/proc", "--dev", "/dev",
             "--bind", str(root), str(root), "--bind", str(socket_path), str(socket_path),
             "--chdir", str(root)]
    for folder in mounts:  # mapped folders (volumes), seen at their host path and through C:
        if os.path.isdir(folder):  # a ReadOnly mapping refuses writes, as Windows does
            argv += ["--ro-bind" if folder in read_only else "--bind", folder, folder]
    return argv


class ChildProcess:
    """A container process started by a zygote: its host pid and how it ends."""

    def __init__(self, pid: int, ns_pid: int, status: socket.socket, zygote: "Zygote") -> None:
        self.pid = pid
        self._ns_pid = ns_pid
        self._status = status
        self._zygote = zygote

    def wait(self) -> int:
        """Block until the process ends; its Windows exit code."""
        code: Optional[int] = None
        try:
            while True:
                msg = self._status.recv(64)
                if not msg:
                    break
                if msg[:1] == b"E" and len(msg) >= 5:
                    # The process has written its last and is ending: its code is final.
                    code = struct.unpack("<I", msg[1:5])[0]
                    break
        except OSError:
            pass
        finally:
            self._status.close()
        if code is not None:
            return code
        return windows_exit_code(None, self._zygote.wait_status(self._ns_pid, 10.0))  # no last word


class Zygote:
    """The process starter of one container (started on its first process), as the daemon sees it:
    spares it announced, and the wait statuses it reported."""

    def __init__(self, root: Path, socket_path: Path, hostname: str, log_path: Path, *,
                 mounts: Sequence[str] = (), read_only: Sequence[str] = ()) -> None:
        self.root = root
        self.mounts = list(mounts)
        self.read_only = list(read_only)
        self.socket_path = socket_path
        self.hostname = hostname
        self.log_path = log_path
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._sock: Optional[socket.socket] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._spares: list[tuple[int, int, socket.socket]] = []  # host pid, its own pid, socket
        self._statuses: dict[int, int] = {}
        self._ended = False
        self.confined = False

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        python = [sys.executable, "-I", "-S", "-c",
                  "import sys; sys.path[:0] = sys.argv[1].split(':'); "
                  "from wincontainers.sim.zygote import main; sys.exit(main(sys.argv[2:]))",
                  _python_path(), str(theirs.fileno())]
        self.confined = confinement() == "bubblewrap"
        argv = (_bwrap_argv(self.root, self.socket_path, self.hostname, self.mounts, self.read_only) if self.confined else []) + python
        # WCSIM_SOCKET marks the container's processes (``SimulatedHost.container_processes``).
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "WCSIM_SOCKET": str(self.socket_path)}
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                          stdout=log_file, stderr=log_file, env=env,
                                          cwd=str(self.root), start_new_session=True, close_fds=True)
        theirs.close()
        self._sock = ours
        with self._cond:
            self._ended = False
        threading.Thread(target=self._read, args=(ours,), name="wcsim-zygote", daemon=True).start()

    def _read(self, sock: socket.socket) -> None:
        """The zygote's reports: a spare's socket (``S``), a child's wait status (``X``)."""
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(sock, 64, 1)
            except OSError:
                msg, fds = b"", []
            if not msg:
                break
            if msg[:1] == b"S" and fds:
                spare = socket.socket(fileno=fds[0])
                introduced = _introduction(spare)
                with self._cond:
                    if introduced is None:
                        spare.close()
                    else:
                        self._spares.append((introduced[0], introduced[1], spare))
                    self._cond.notify_all()
            elif msg[:1] == b"X" and len(msg) >= 9:
                pid, status = struct.unpack("<ii", msg[1:9])
                with self._cond:
                    if len(self._statuses) > 4096:
                        self._statuses.clear()
                    self._statuses[pid] = status
                    self._cond.notify_all()
            for fd in fds[1:]:
                os.close(fd)
        with self._cond:
            if self._sock is sock:
                self._ended = True
            self._cond.notify_all()

    def spawn(self, request: dict[str, Any], stdio: tuple[int, int, int]) -> ChildProcess:
        """Start one process (``stdio`` are the child's ends; the caller closes its copies)."""
        data = json.dumps(request).encode()
        for attempt in (1, 2):
            with self._lock:
                if self._sock is None or not self._alive():
                    self._forget()
                    self._start()
            with self._cond:
                self._cond.wait_for(lambda: bool(self._spares) or self._ended, timeout=30)
                spare = self._spares.pop(0) if self._spares else None
            if spare is None:
                with self._lock:
                    self._forget()
                if attempt == 2:
                    raise SpawnFailed(f"the container's process starter did not start (see {self.log_path})")
                continue
            pid, ns_pid, sock = spare
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                socket.send_fds(sock, [data], [*stdio, theirs.fileno()])
            except OSError:
                ours.close()
                if attempt == 2:
                    raise SpawnFailed("the container's spare process is gone") from None
                continue
            finally:
                theirs.close()
                sock.close()
            return ChildProcess(pid, ns_pid, ours, self)
        raise SpawnFailed("unreachable")

    def wait_status(self, ns_pid: int, timeout: float) -> Optional[int]:
        """The wait status the zygote reported for its child ``ns_pid``."""
        with self._cond:
            self._cond.wait_for(lambda: ns_pid in self._statuses or self._ended, timeout=timeout)
            return self._statuses.pop(ns_pid, None)

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _forget(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        with self._cond:
            spares, self._spares = self._spares, []
            self._ended = True
            self._cond.notify_all()
        for _, _, sock in spares:
            sock.close()

    def close(self) -> None:
        """End the zygote (the container stopped): its own processes are gone by now."""
        with self._lock:
            self._forget()
            proc, self._proc = self._proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def _introduction(spare: socket.socket) -> Optional[tuple[int, int]]:
    """A spare's first message: its host pid (from the credentials) and its own pid."""
    try:
        spare.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        spare.settimeout(30)
        msg, ancillary, _, _ = spare.recvmsg(16, socket.CMSG_SPACE(12))
        spare.settimeout(None)
    except OSError:
        return None
    if msg[:1] != b"R" or len(msg) < 5:
        return None
    for level, kind, cred in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(cred) >= 12:
            return int(struct.unpack("3i", cred[:12])[0]), int(struct.unpack("<i", msg[1:5])[0])
    return None


def _python_path() -> str:
    return ":".join(p for p in [str(_PACKAGE_PARENT), *sys.path] if p and os.path.isdir(p))
