"""The few things that differ between Windows and the simulated host.

Each is a small function, type-checked for both platforms (``mypy --platform win32``):
where the system DLLs live, how a native HANDLE becomes a Python file object, and how the
backup/restore privileges that layer import needs are enabled.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Optional

__all__ = ["system_directory", "handle_to_file", "enable_privileges", "is_windows", "lock_file", "unlock_file",
           "process_alive"]


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


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (for leases left by killed processes)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        PROCESS_QUERY_LIMITED_INFORMATION, STILL_ACTIVE = 0x1000, 259
        kernel = ctypes.windll.kernel32
        handle = kernel.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return False
        try:
            code = ctypes.c_ulong(0)
            return bool(kernel.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == STILL_ACTIVE
        finally:
            kernel.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def system_directory() -> Optional[Path]:
    """System32 on Windows (asked from the OS, never from PATH); ``None`` elsewhere."""
    if sys.platform == "win32":
        import ctypes

        buf = ctypes.create_unicode_buffer(512)
        n = ctypes.windll.kernel32.GetSystemDirectoryW(buf, len(buf))
        if n == 0 or n >= len(buf):
            windir = os.environ.get("SystemRoot", r"C:\Windows")
            return Path(windir) / "System32"
        return Path(buf.value)
    return None


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


def enable_privileges(*names: str) -> list[str]:
    """Enable privileges (e.g. ``SeBackupPrivilege``) on the process token; returns those enabled.

    Process-wide, once (hcs-api.md pitfall 13). The simulated host needs none.
    """
    if sys.platform != "win32":
        return []
    import ctypes
    from ctypes import wintypes

    advapi = ctypes.windll.advapi32
    kernel = ctypes.windll.kernel32

    class LUID(ctypes.Structure):
        _fields_ = [("LowPart", wintypes.DWORD), ("HighPart", wintypes.LONG)]

    class LUID_AND_ATTRIBUTES(ctypes.Structure):
        _fields_ = [("Luid", LUID), ("Attributes", wintypes.DWORD)]

    class TOKEN_PRIVILEGES(ctypes.Structure):
        _fields_ = [("PrivilegeCount", wintypes.DWORD), ("Privileges", LUID_AND_ATTRIBUTES * 1)]

    token = wintypes.HANDLE()
    TOKEN_ADJUST_PRIVILEGES, TOKEN_QUERY, SE_PRIVILEGE_ENABLED = 0x20, 0x8, 0x2
    if not advapi.OpenProcessToken(kernel.GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY,
                                   ctypes.byref(token)):
        return []
    enabled = []
    try:
        for name in names:
            luid = LUID()
            if not advapi.LookupPrivilegeValueW(None, name, ctypes.byref(luid)):
                continue
            tp = TOKEN_PRIVILEGES(1, (LUID_AND_ATTRIBUTES * 1)(LUID_AND_ATTRIBUTES(luid, SE_PRIVILEGE_ENABLED)))
            if advapi.AdjustTokenPrivileges(token, False, ctypes.byref(tp), 0, None, None) and \
                    kernel.GetLastError() == 0:
                enabled.append(name)
    finally:
        kernel.CloseHandle(token)
    return enabled
