"""Container processes of the simulated host: real host processes started from Windows command lines.

A Windows command line is parsed with the ``CommandLineToArgvW`` rules. ``cmd /S /C <line>`` and
``cmd /c <line>`` run ``<line>`` with ``/bin/sh -c`` (cmd's quote stripping applied); ``cmd``
alone starts an interactive shell; a few Windows tools (``tasklist``, ``ver``, ``hostname``)
are provided by :mod:`wincontainers.sim.commands`; anything else is looked up inside the container
(``C:\\`` is the container's root folder) and then on the host's PATH.

Every top-level process runs in a new session, so its descendants can be found (for the process
list) and signalled together (shutdown, terminate).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

import attrs

__all__ = [
    "command_line_to_argv",
    "translate_command",
    "resolve_container_path",
    "exit_code_from_status",
    "ProcessSample",
    "sample_processes",
    "session_members",
    "STATUS_CONTROL_C_EXIT",
]

STATUS_CONTROL_C_EXIT = 0xC000013A
STATUS_ACCESS_VIOLATION = 0xC0000005


class CommandNotFound(Exception):
    """The executable of a command line exists neither in the container nor on the host."""


def _program(line: str) -> tuple[Optional[str], int]:
    """argv[0] (quotes toggle, no backslash escapes) and where the rest of the line starts."""
    i, n = 0, len(line)
    while i < n and line[i] in " \t":
        i += 1
    if i >= n:
        return None, n
    cur = []
    in_quotes = False
    while i < n:
        c = line[i]
        if c == '"':
            in_quotes = not in_quotes
        elif c in " \t" and not in_quotes:
            break
        else:
            cur.append(c)
        i += 1
    return "".join(cur), i


def command_line_to_argv(line: str) -> list[str]:
    """Split a command line as ``CommandLineToArgvW`` does (the MSVC runtime's rules)."""
    program, i = _program(line)
    if program is None:
        return []
    args = [program]
    n = len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return args
        cur = []
        in_quotes = False
        while i < n:
            c = line[i]
            if c == "\\":
                j = i
                while j < n and line[j] == "\\":
                    j += 1
                count = j - i
                if j < n and line[j] == '"':
                    cur.append("\\" * (count // 2))
                    if count % 2:
                        cur.append('"')
                        i = j + 1
                    else:
                        i = j
                    continue
                cur.append("\\" * count)
                i = j
                continue
            if c == '"':
                if in_quotes and i + 1 < n and line[i + 1] == '"':
                    cur.append('"')
                    i += 2
                    continue
                in_quotes = not in_quotes
                i += 1
                continue
            if c in " \t" and not in_quotes:
                break
            cur.append(c)
            i += 1
        args.append("".join(cur))


def _program_name(argv0: str) -> str:
    base = argv0.replace("/", "\\").rsplit("\\", 1)[-1].lower()
    return base[:-4] if base.endswith(".exe") else base


def _cmd_rest(line: str) -> tuple[Optional[str], bool]:
    """For a ``cmd`` line: the text after ``/C`` or ``/K`` and whether it was ``/K``."""
    _, i = _program(line)
    n = len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n or line[i] != "/":
            return None, False
        j = i
        while j < n and line[j] not in " \t":
            j += 1
        switch = line[i + 1 : j].lower()
        if switch[:1] in ("c", "k"):
            rest = line[i + 2 :] if len(switch) > 1 else line[j:]
            return rest.lstrip(" \t"), switch[:1] == "k"
        i = j
    return None, False


def _strip_cmd_quotes(rest: str) -> str:
    # cmd /S (and cmd /C in the common case): drop the first quote and the last quote.
    if rest.startswith('"'):
        last = rest.rfind('"')
        if last > 0:
            return rest[1:last] + rest[last + 1 :]
    return rest


def resolve_container_path(root: Path, windows_path: str) -> Path:
    """Map ``C:\\Windows\\System32`` to ``<root>/Windows/System32``, matching names case-insensitively."""
    p = windows_path.replace("/", "\\")
    if len(p) >= 2 and p[1] == ":":
        p = p[2:]
    parts = [part for part in p.split("\\") if part not in ("", ".")]
    cur = root
    for part in parts:
        if part == "..":
            cur = cur.parent if cur != root else root
            continue
        candidate = cur / part
        if not candidate.exists() and cur.is_dir():
            lower = part.lower()
            try:
                for entry in os.scandir(cur):
                    if entry.name.lower() == lower:
                        candidate = cur / entry.name
                        break
            except OSError:
                pass
        cur = candidate
    return cur


def translate_command(command_line: str, root: Path, host_path: str) -> tuple[list[str], str]:
    """Host argv for a Windows command line, and the image name the process list reports."""
    argv = command_line_to_argv(command_line)
    if not argv:
        raise CommandNotFound("")
    prog = _program_name(argv[0])
    if prog == "cmd":
        rest, keep = _cmd_rest(command_line)
        if rest is None:
            return ["/bin/sh", "-i"], "cmd.exe"
        script = _strip_cmd_quotes(rest)
        if keep:
            script = f"{script}\nexec /bin/sh -i"
        return ["/bin/sh", "-c", script], "cmd.exe"
    if "\\" in argv[0] or ":" in argv[0]:
        inside = resolve_container_path(root, argv[0])
        if inside.is_file() and os.access(inside, os.X_OK):
            return [str(inside), *argv[1:]], inside.name
        raise CommandNotFound(argv[0])
    found = shutil.which(argv[0], path=host_path) or (
        shutil.which(prog, path=host_path) if prog != argv[0] else None
    )
    if not found:
        raise CommandNotFound(argv[0])
    return [found, *argv[1:]], prog + ".exe"


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


# -- the process list --------------------------------------------------------------------------


@attrs.frozen
class ProcessSample:
    """What the HCS ProcessList reports for one process."""

    pid: int
    image_name: str
    create_time: float
    user_time_100ns: int
    kernel_time_100ns: int
    commit_bytes: int
    private_working_set: int
    shared_working_set: int

    def to_hcs(self) -> dict[str, object]:
        return {
            "ProcessId": self.pid,
            "ImageName": self.image_name,
            "CreateTimestamp": _rfc3339(self.create_time),
            "UserTime100ns": self.user_time_100ns,
            "KernelTime100ns": self.kernel_time_100ns,
            "MemoryCommitBytes": self.commit_bytes,
            "MemoryWorkingSetPrivateBytes": self.private_working_set,
            "MemoryWorkingSetSharedBytes": self.shared_working_set,
        }


def _rfc3339(t: float) -> str:
    whole = int(t)
    frac = int((t - whole) * 10_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{frac:07d}Z"


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime"):
                    return float(line.split()[1])
    except OSError:
        pass
    return time.time() - time.monotonic()


_BOOT = _boot_time()


def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    close = data.rfind(")")
    if close < 0:
        return None
    comm = data[data.find("(") + 1 : close]
    return [str(pid), comm, *data[close + 2 :].split()]


def session_members(sessions: Sequence[int]) -> list[int]:
    """Host pids whose session id is one of ``sessions`` (the container's processes)."""
    wanted = set(sessions)
    if not wanted:
        return []
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None or len(fields) < 6:
            continue
        state = fields[2]
        if state == "Z":
            continue
        if int(fields[5]) in wanted:
            pids.append(int(name))
    return sorted(pids)


def sample_processes(pids: Sequence[int], image_names: Mapping[int, str]) -> list[ProcessSample]:
    """Samples for ``pids``; top-level processes keep the image name they were started as."""
    out = []
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        utime, stime = int(fields[13]), int(fields[14])
        start = _BOOT + int(fields[21]) / _CLK_TCK
        status = _status(pid)
        rss_anon = status.get("RssAnon", 0)
        rss_shared = status.get("RssFile", 0) + status.get("RssShmem", 0)
        commit = status.get("VmData", 0) + status.get("VmStk", 0)
        image = image_names.get(pid) or (fields[1] + ".exe")
        out.append(
            ProcessSample(
                pid=pid,
                image_name=image,
                create_time=start,
                user_time_100ns=utime * 10_000_000 // _CLK_TCK,
                kernel_time_100ns=stime * 10_000_000 // _CLK_TCK,
                commit_bytes=commit,
                private_working_set=rss_anon,
                shared_working_set=rss_shared,
            )
        )
    return out


def _status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    values[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return values


def spawn(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: Optional[int],
    stdout: Optional[int],
    stderr: Optional[int],
    tty_path: Optional[str] = None,
) -> subprocess.Popen[bytes]:
    """Start one container process in its own session.

    With ``tty_path`` the process opens the pty slave itself right after ``setsid``, which makes
    it the controlling terminal (no ``preexec_fn``: the daemon is multi-threaded).
    """
    if tty_path is not None:
        argv = ["/bin/sh", "-c", 'exec 0<>"$0" 1>&0 2>&0; exec "$@"', tty_path, *argv]
    return subprocess.Popen(
        argv,
        cwd=str(cwd),
        env=dict(env),
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
