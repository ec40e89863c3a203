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

from wincontainers.sim import winproc

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


def _bwrap_argv(root: Path, socket_path: Path, hostname: str, mounts: Sequence[str]) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    argv = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--hostname", hostname[:63] or "container", "--new-session"]
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
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
             "--bind", str(root), str(root), "--bind", str(socket_path), str(socket_path),
             "--chdir", str(root)]
    for folder in mounts:  # mapped folders (volumes), seen at their host path and through C:
        if os.path.isdir(folder):
            argv += ["--bind", folder, folder]
    return argv


class ChildProcess:
    """A container process started by a zygote: its host pid and how it ends."""

    def __init__(self, pid: int, status: socket.socket) -> None:
        self.pid = pid
        self._status = status

    def wait(self) -> int:
        """Block until the process ends; its Windows exit code."""
        code: Optional[int] = None
        wait_status: Optional[int] = None
        try:
            while True:
                msg = self._status.recv(64)
                if not msg:
                    break
                if msg[:1] == b"E" and len(msg) >= 5:
                    code = struct.unpack("<I", msg[1:5])[0]
                elif msg[:1] == b"X" and len(msg) >= 5:
                    wait_status = struct.unpack("<i", msg[1:5])[0]
                    break
        finally:
            self._status.close()
        if wait_status is not None and os.WIFSIGNALED(wait_status):
            return winproc.exit_code_from_status(-os.WTERMSIG(wait_status))
        if code is not None:
            return code
        if wait_status is not None and os.WIFEXITED(wait_status):
            return os.WEXITSTATUS(wait_status)
        return 1


class Zygote:
    """The process starter of one container (started on its first process)."""

    def __init__(self, root: Path, socket_path: Path, hostname: str, log_path: Path, *,
                 mounts: Sequence[str] = ()) -> None:
        self.root = root
        self.mounts = list(mounts)
        self.socket_path = socket_path
        self.hostname = hostname
        self.log_path = log_path
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self.confined = False

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        python = [sys.executable, "-I", "-S", "-c",
                  "import sys; sys.path[:0] = sys.argv[1].split(':'); "
                  "from wincontainers.sim.zygote import main; sys.exit(main(sys.argv[2:]))",
                  _python_path(), str(theirs.fileno())]
        self.confined = confinement() == "bubblewrap"
        argv = (_bwrap_argv(self.root, self.socket_path, self.hostname, self.mounts) if self.confined else []) + python
        # WCSIM_SOCKET marks the container's processes (``SimulatedHost.container_processes``).
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "WCSIM_SOCKET": str(self.socket_path)}
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                          stdout=log_file, stderr=log_file, env=env,
                                          cwd=str(self.root), start_new_session=True, close_fds=True)
        theirs.close()
        self._sock = ours
        return ours

    def spawn(self, request: dict[str, Any], stdio: tuple[int, int, int]) -> ChildProcess:
        """Start one process (``stdio`` are the child's ends; the caller closes its copies)."""
        data = json.dumps(request).encode()
        for attempt in (1, 2):
            with self._lock:
                sock = self._sock if self._sock is not None and self._alive() else self._start()
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
                try:
                    socket.send_fds(sock, [data], [*stdio, theirs.fileno()])
                except OSError as exc:
                    ours.close()
                    self._forget()
                    if attempt == 2:
                        raise SpawnFailed(f"the container's process starter is gone: {exc}") from None
                    continue
                finally:
                    theirs.close()
            pid = _first_message_pid(ours)
            if pid is None:
                ours.close()
                with self._lock:
                    self._forget()
                if attempt == 2:
                    raise SpawnFailed("the container's process starter ended before the process started")
                continue
            return ChildProcess(pid, ours)
        raise SpawnFailed("unreachable")

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _forget(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

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


def _first_message_pid(sock: socket.socket) -> Optional[int]:
    try:
        msg, ancillary, _, _ = sock.recvmsg(16, socket.CMSG_SPACE(12))
    except OSError:
        return None
    if msg[:1] != b"P":
        return None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            return int(struct.unpack("3i", data[:12])[0])
    return None


def _python_path() -> str:
    return ":".join(p for p in [str(_PACKAGE_PARENT), *sys.path] if p and os.path.isdir(p))
