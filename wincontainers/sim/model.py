"""Objects the simulated vmcompute service keeps: compute systems, their processes, open handles.

Semantics follow hcs-api.md: a compute system is created, started, shut down (SIGTERM to its
processes; it completes only when they have all exited, so a process that ignores it makes a
graceful stop time out) or terminated (SIGKILL). A stopped system disappears once no handle
refers to it. Exits are announced to every handle on the system or process, formatted for the
API generation that opened the handle.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import attrs

from wincontainers.sim.wire import dumps
from wincontainers.sim import winproc

if TYPE_CHECKING:
    from wincontainers.sim.sandbox import ChildProcess, Zygote
    from wincontainers.sim.daemon import Connection

__all__ = ["Handle", "ComputeSystem", "SimProcess", "GuestPids", "UtilityVm", "NOTIFICATIONS", "EVENTS"]

# gen2 notification types (computedefs.h HCS_NOTIFICATIONS)
NOTIFICATIONS = {
    "SystemExited": 0x00000001,
    "SystemCreateCompleted": 0x00000002,
    "SystemStartCompleted": 0x00000003,
    "SystemPauseCompleted": 0x00000004,
    "SystemResumeCompleted": 0x00000005,
    "SystemSaveCompleted": 0x00000008,
    "ProcessExited": 0x00010000,
}
# gen3 event types (computedefs.h HCS_EVENT_TYPE); completions travel as operation results there.
EVENTS = {
    "SystemExited": 0x00000001,
    "ProcessExited": 0x00010000,
}


@attrs.define(eq=False)
class Handle:
    """An open handle of one client connection."""

    id: int
    kind: str  # "system", "process", "callback", "hcn"
    obj: Any
    conn: "Connection"
    api: int  # 2 = vmcompute notifications, 3 = computecore events
    callback_set: bool = False  # gen3: one event callback per handle


@attrs.define(eq=False)
class SimProcess:
    system: "ComputeSystem"
    child: "ChildProcess"
    pid: int  # as HCS reports it: the host's PID, or (Hyper-V isolation) the PID inside the VM
    image_name: str
    command_line: str
    console: bool
    started: float = attrs.field(factory=time.time)
    # Daemon-side copies of the caller's stdio ends (gen2/gen3 keep them, as HCS does, so
    # HcsGetProcessInfo can hand out new ones and stdin needs an explicit CloseHandle).
    kept: dict[str, int] = attrs.field(factory=dict)
    pty_master: Optional[int] = None
    handles: set[Handle] = attrs.field(factory=set)
    exited: threading.Event = attrs.field(factory=threading.Event)
    exit_code: Optional[int] = None
    killed_by_terminate: bool = False
    host_pid: int = 0  # the process underneath (a host process here, whatever the isolation)

    def status_json(self) -> str:
        return dumps({
            "ProcessId": self.pid,
            "Exited": self.exited.is_set(),
            "ExitCode": self.exit_code if self.exit_code is not None else 0,
            "LastWaitResult": 0,
        })

    def close_kept(self, which: Optional[str] = None) -> None:
        for name in list(self.kept) if which is None else [which]:
            fd = self.kept.pop(name, None)
            if fd is not None:
                _close(fd)
        if which is None and self.pty_master is not None:
            _close(self.pty_master)
            self.pty_master = None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.host_pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class GuestPids:
    """PIDs inside a utility VM: its own numbering (multiples of 4, as Windows hands them out),
    so that no host PID is ever shown for a process of a Hyper-V container."""

    def __init__(self) -> None:
        self._next = 1004
        self._of: dict[int, int] = {}

    def of(self, host_pid: int) -> int:
        if host_pid not in self._of:
            self._of[host_pid] = self._next
            self._next += 4
        return self._of[host_pid]


@attrs.define(eq=False)
class UtilityVm:
    """What a utility VM (a schema v2 ``VirtualMachine`` system) holds: its VSMB shares
    (name -> host folder), the disks attached to it (guest mount path -> sandbox folder), the
    container roots combined in it (guest path -> the folder that plays that C:), its size.
    The containers it hosts are those whose ``host_vm`` it is."""

    memory_mb: int
    processors: int
    shares: dict[str, str] = attrs.field(factory=dict)
    share_read_only: set[str] = attrs.field(factory=set)
    disks: dict[str, Path] = attrs.field(factory=dict)
    roots: dict[str, Path] = attrs.field(factory=dict)
    namespaces: set[str] = attrs.field(factory=set)  # HCN namespaces made in its guest
    pre_added: dict[str, str] = attrs.field(factory=dict)  # adapter id -> endpoint id (guest PreAdd)
    adapters: dict[str, str] = attrs.field(factory=dict)  # adapter id -> endpoint id (its NICs)


@attrs.define(eq=False)
class ComputeSystem:
    id: str
    owner: str
    name: str
    schema: int
    config: dict[str, Any]
    root: Path
    volume_guid: str
    hostname: str
    terminate_on_last_close: bool
    created_by: int
    state: str = "Created"
    exit_type: Optional[str] = None
    processes: dict[int, SimProcess] = attrs.field(factory=dict)
    exit_codes: dict[int, int] = attrs.field(factory=dict)
    handles: set[Handle] = attrs.field(factory=set)
    created: float = attrs.field(factory=time.time)
    started: Optional[float] = None
    ignore_shutdown: bool = False
    stopped: threading.Event = attrs.field(factory=threading.Event)
    shutting_down: bool = False
    exited_cpu_100ns: int = 0
    peak_commit: int = 0
    mounts: dict[str, str] = attrs.field(factory=dict)  # mapped folders: inside (``a/b``) -> host
    read_only_mounts: set[str] = attrs.field(factory=set)  # host folders mapped ReadOnly
    zygote: Optional["Zygote"] = None  # its process starter (wincontainers.sim.sandbox)
    kind: str = "Container"  # or "VirtualMachine" (a utility VM)
    #: Hyper-V isolation: the container runs in a utility VM, made by HCS (schema v1
    #: HvPartition) or given (schema v2 HostingSystemId: ``host_vm``); ``pids`` number its processes
    hyperv: bool = False
    host_vm: Optional["ComputeSystem"] = None
    vm: Optional[UtilityVm] = None  # set on a utility VM
    pids: Optional[GuestPids] = None

    def reported_pid(self, host_pid: int) -> int:
        """The PID HCS shows for a process of this system."""
        return self.pids.of(host_pid) if self.pids is not None else host_pid

    def sessions(self) -> list[int]:
        return [p.host_pid for p in self.processes.values() if not p.exited.is_set()]

    def member_pids(self) -> list[int]:
        return winproc.session_members(self.sessions())

    def signal_all(self, sig: int) -> None:
        for pid in self.member_pids():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in list(self.processes.values()):
            if not proc.exited.is_set():
                proc.signal_group(sig)

    def basic_properties(self, with_runtime_os: bool) -> dict[str, Any]:
        props: dict[str, Any] = {
            "Id": self.id,
            "Name": self.name,
            "SystemType": self.kind,
            "Owner": self.owner,
            "State": self.state,
            "Stopped": self.state == "Stopped",
        }
        if with_runtime_os:
            props["RuntimeOsType"] = "windows"
        if self.exit_type:
            props["ExitType"] = self.exit_type
        if self.host_vm is not None:
            props["HostingSystemId"] = self.host_vm.id
        return props

    def process_list(self) -> list[dict[str, Any]]:
        names = {p.host_pid: p.image_name for p in self.processes.values()}
        out = []
        for sample in winproc.sample_processes(self.member_pids(), names):
            entry = sample.to_hcs()
            entry["ProcessId"] = self.reported_pid(sample.pid)
            out.append(entry)
        return out

    def statistics(self) -> dict[str, Any]:
        samples = winproc.sample_processes(self.member_pids(), {})
        commit = sum(s.commit_bytes for s in samples)
        self.peak_commit = max(self.peak_commit, commit)
        user = sum(s.user_time_100ns for s in samples)
        kernel = sum(s.kernel_time_100ns for s in samples)
        now = time.time()
        start = self.started or self.created
        return {
            "Timestamp": winproc._rfc3339(now),
            "ContainerStartTime": winproc._rfc3339(start),
            "Uptime100ns": int((now - start) * 10_000_000),
            "Memory": {
                "MemoryUsageCommitBytes": commit,
                "MemoryUsageCommitPeakBytes": self.peak_commit,
                "MemoryUsagePrivateWorkingSetBytes": sum(s.private_working_set for s in samples),
            },
            "Processor": {
                "TotalRuntime100ns": user + kernel + self.exited_cpu_100ns,
                "RuntimeUser100ns": user,
                "RuntimeKernel100ns": kernel,
            },
            "Storage": {"ReadCountNormalized": 0, "ReadSizeBytes": 0, "WriteCountNormalized": 0, "WriteSizeBytes": 0},
        }


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


Notifier = Callable[[ComputeSystem, str, int, Optional[str]], None]
