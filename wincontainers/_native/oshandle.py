"""The few things that differ between Windows and the simulated host.

Each is a small function, type-checked for both platforms (``mypy --platform win32``): how a
native HANDLE becomes a Python file object, and how a process locks a file. Everything else that
touches Windows goes through kernel32/advapi32 with cffi (:mod:`wincontainers._native.win32`),
which the simulated host implements too.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
import tempfile
from typing import IO, Any, Optional

__all__ = ["system_directory", "handle_to_file", "is_windows", "lock_file", "unlock_file", "local_socket_address",
           "detached_process_options", "make_private"]


def is_windows() -> bool:
    return sys.platform == "win32"


def lock_file(fd: int) -> None:
    """Block until this process holds the exclusive lock on the open file ``fd``.

    Released by :func:`unlock_file` or when the process dies (a killed writer never leaves
    a lock behind).
    """
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for 10 s, then raises
                return
            except OSError:
                continue
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)


def unlock_file(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def system_directory() -> Optional[Path]:
    """System32 on Windows (asked of kernel32, never taken from PATH); ``None`` elsewhere."""
    from wincontainers._native import win32

    return win32.system_directory()


def handle_to_file(handle: int, mode: str) -> IO[bytes]:
    """Wrap a native stdio HANDLE (we own it) in an unbuffered binary file object.

    Closing the file closes the handle. On the simulated host a HANDLE is a file descriptor.
    """
    if mode not in ("rb", "wb"):
        raise ValueError("mode is 'rb' or 'wb'")
    if sys.platform == "win32":
        import msvcrt

        flags = os.O_RDONLY if mode == "rb" else os.O_WRONLY
        fd = msvcrt.open_osfhandle(handle, flags | os.O_BINARY | os.O_NOINHERIT)
    else:
        fd = handle
    return open(fd, mode, buffering=0, closefd=True)


def local_socket_address(folder: Path, name: str) -> tuple[str, str]:
    """Where a local server of this user listens, as ``(address, family)`` for
    :mod:`multiprocessing.connection`: a named pipe on Windows, else a Unix socket in ``folder``
    (a private folder), or in a private folder of this user under the temporary directory when
    ``folder``'s path is too long for a socket address (about 100 bytes)."""
    if sys.platform == "win32":
        return rf"\\.\pipe\wincontainers-{name}", "AF_PIPE"
    path = folder / "attach.sock"
    if len(os.fsencode(str(path))) < 100:
        return str(path), "AF_UNIX"
    short = Path(tempfile.gettempdir()) / f"wincontainers-{os.getuid()}"
    try:
        short.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = short.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{short} is not a private folder of this user: refusing to put a socket there")
    return str(short / f"{name[:40]}.sock"), "AF_UNIX"


def detached_process_options() -> dict[str, Any]:
    """``subprocess.Popen`` options for a process that outlives its parent and its terminal:
    no console window and its own process group on Windows, its own session elsewhere."""
    if sys.platform == "win32":
        import subprocess

        return {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP,
                "close_fds": True}
    return {"start_new_session": True, "close_fds": True}


def make_private(path: Path) -> None:
    """Only this user may use ``path`` (a folder or a secret file) where the OS lets us say so
    with a mode (POSIX). On Windows it keeps the ACL it inherits from the state folder; what
    guards an attach pipe there is the pipe's default DACL (only its creator, SYSTEM and
    administrators may write to it) together with the key a client must prove it read."""
    if sys.platform != "win32":
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
