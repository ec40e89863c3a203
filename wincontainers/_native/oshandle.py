"""The few things that differ between Windows and the simulated host.

Each is a small function, type-checked for both platforms (``mypy --platform win32``): how a
native HANDLE becomes a Python file object, and how a process locks a file. Everything else that
touches Windows goes through kernel32/advapi32 with cffi (:mod:`wincontainers._native.win32`),
which the simulated host implements too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Optional

__all__ = ["system_directory", "handle_to_file", "is_windows", "lock_file", "unlock_file"]


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
