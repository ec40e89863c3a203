"""Container processes as the host sees them: the process list (exit codes: ``shell.programs``).

The processes themselves run :mod:`wincontainers.sim.shell`, started by the container's zygote
(:mod:`wincontainers.sim.sandbox`). Every one runs in a session of its own, so its descendants
can be found (for the process list) and signalled together (shutdown, terminate).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import time
from typing import Mapping, Optional, Sequence

import attrs

from wincontainers.sim.shell.argv import command_line_to_argv
from wincontainers.sim.shell.programs import STATUS_CONTROL_C_EXIT, exit_code_from_status

__all__ = [
    "command_line_to_argv",
    "exit_code_from_status",
    "ProcessSample",
    "sample_processes",
    "session_members",
    "STATUS_CONTROL_C_EXIT",
]

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
        comm = fields[1]
        image = image_names.get(pid) or (comm if comm.lower().endswith(".exe") else comm + ".exe")
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
