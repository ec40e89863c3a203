"""Programs cmd starts: each in a process of its own, named as Windows names it.

cmd waits for a program it starts; Ctrl+C reaches both, and cmd reports the child's exit code
(all 32 bits of it, through a pipe, since a POSIX exit status holds only 8).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import signal
import struct
from typing import Callable, Optional

from wincontainers.sim.shell.textio import Io, ShellExit

__all__ = ["run_forked", "set_process_name", "has_fds", "image_name", "exit_code_from_status", "windows_exit_code",
           "STATUS_CONTROL_C_EXIT"]

STATUS_CONTROL_C_EXIT = 0xC000013A
STATUS_ACCESS_VIOLATION = 0xC0000005

#: The simulated programs' file names as System32 spells them (what tasklist and top show).
_IMAGES = {
    "cmd": "cmd.exe", "powershell": "powershell.exe", "pwsh": "pwsh.exe", "ping": "PING.EXE",
    "hostname": "HOSTNAME.EXE", "mode": "mode.com",
}


def image_name(program: str) -> str:
    """``ping`` -> ``PING.EXE``, ``whoami`` -> ``whoami.exe``."""
    return _IMAGES.get(program, program + ".exe")


def has_fds(io: Io) -> bool:
    try:
        for stream in (io.stdin, io.stdout, io.stderr):
            stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def set_process_name(image: str) -> None:
    """What the host's process list (and so ``top``/``tasklist``) shows for this process."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(image[:15])
    except OSError:
        pass


def run_forked(image: str, program: Callable[[], int]) -> int:
    """Run ``program`` in a child process named ``image``; its 32-bit exit code.

    cmd waits for a program it starts; Ctrl+C reaches both, and cmd reports the child's code.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 1
        try:
            set_process_name(image)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = program()
        except KeyboardInterrupt:
            code = STATUS_CONTROL_C_EXIT
        except ShellExit as exc:
            code = exc.code
        except BaseException:  # noqa: BLE001 - the child must report and end, whatever happened
            code = 1
        finally:
            try:
                os.write(write_fd, struct.pack("<I", code & 0xFFFFFFFF))
            finally:
                os._exit(code & 0xFF)
    os.close(write_fd)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGINT, previous)
    with os.fdopen(read_fd, "rb") as report:
        data = report.read(4)
    return windows_exit_code(int(struct.unpack("<I", data)[0]) if len(data) == 4 else None, status)


def exit_code_from_status(returncode: int) -> int:
    """A Windows-looking exit code for a host process status (signals become NTSTATUS codes)."""
    if returncode >= 0:
        return returncode & 0xFFFFFFFF
    sig = -returncode
    if sig == signal.SIGKILL:
        return 1  # what TerminateProcess through HCS reports
    if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        return STATUS_CONTROL_C_EXIT
    if sig == signal.SIGABRT:
        return 3
    return STATUS_ACCESS_VIOLATION


def windows_exit_code(reported: Optional[int], status: Optional[int]) -> int:
    """A process's exit code: the 32 bits it reported before ending, else what its wait status
    says (a signal becomes an NTSTATUS code); 1 when neither is known."""
    if reported is not None:
        return reported
    if status is not None and os.WIFSIGNALED(status):
        return exit_code_from_status(-os.WTERMSIG(status))
    if status is not None and os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 1


