"""What containers hand out (StopResult, ContainerExit, ContainerProcess, ContainerStats,
ContainerInfo) and the checks of what a caller gives them (command, environment, timeouts), shared
by :class:`~wincontainers.container.Container` and ``host.containers``. Every check raises
:class:`~wincontainers.errors.BadInput` before anything is made."""

from __future__ import annotations

import builtins
import os
import subprocess
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import attrs

from wincontainers import errors
from wincontainers.display import RichDisplay, Shown, Value, badge, human_size, name_or_id, short_id, when
from wincontainers.driver.base import LayerRef, MappedDirectory, SystemSpec
from wincontainers.process import (
    Command,
    list2cmdline,
)

if TYPE_CHECKING:
    pass

__all__ = ["StopResult", "ContainerExit", "ContainerProcess", "ProcessList", "ContainerStats", "ContainerInfo", "STATES",
           "check_timeout", "check_command", "check_env", "parse_env_list", "config_env", "default_command",
           "image_command", "only_a_shell", "inspect_document", "system_spec",
           "mapped_directories", "check_isolation", "ISOLATIONS"]


#: HCS's system states -> Docker's container states
STATES = {"Created": "created", "Running": "running", "Paused": "paused", "Stopped": "exited"}


@attrs.frozen
class StopResult(RichDisplay):
    """How :meth:`Container.stop` ended: ``"graceful"``, ``"forced"`` or ``"already-stopped"``."""

    outcome: str
    elapsed: float
    exit_code: Optional[int] = None

    @property
    def forced(self) -> bool:
        return self.outcome == "forced"

    def _shown_(self) -> Shown:
        return Shown("Stop", state=self.outcome, fields=(("took", f"{self.elapsed:.2f} s"), ("exit code", self.exit_code)))


@attrs.frozen
class ContainerExit:
    """What :meth:`Container.wait` returns."""

    exit_code: Optional[int]
    exit_type: str


@attrs.frozen
class ContainerProcess:
    """One row of :meth:`Container.top` (HCS ProcessList; on TP3 from tasklist)."""

    pid: int
    image: str
    memory_private_bytes: int = 0
    memory_shared_bytes: int = 0
    memory_commit_bytes: int = 0
    cpu_user_100ns: int = 0
    cpu_kernel_100ns: int = 0
    created: Optional[str] = None

    @classmethod
    def from_hcs(cls, entry: Mapping[str, Any]) -> "ContainerProcess":
        return cls(
            pid=int(entry.get("ProcessId") or 0),
            image=str(entry.get("ImageName") or ""),
            memory_private_bytes=int(entry.get("MemoryWorkingSetPrivateBytes") or 0),
            memory_shared_bytes=int(entry.get("MemoryWorkingSetSharedBytes") or 0),
            memory_commit_bytes=int(entry.get("MemoryCommitBytes") or 0),
            cpu_user_100ns=int(entry.get("UserTime100ns") or 0),
            cpu_kernel_100ns=int(entry.get("KernelTime100ns") or 0),
            created=entry.get("CreateTimestamp"),
        )

    def row(self) -> tuple[Value, ...]:
        """The row a process table shows (``docker top``'s columns, and memory)."""
        cpu = (self.cpu_user_100ns + self.cpu_kernel_100ns) / 10_000_000
        return (self.pid, self.image, f"{cpu:.2f} s", human_size(self.memory_private_bytes), when(self.created))


class ProcessList(RichDisplay, builtins.list[ContainerProcess]):
    """What :meth:`Container.top` returns: a list of :class:`ContainerProcess`, shown as a table."""

    __slots__ = ()

    def _shown_(self) -> Shown:
        return Shown.table("Processes", ("PID", "Image", "CPU", "Private memory", "Started"),
                           (p.row() for p in self), empty="no process")


@attrs.frozen
class ContainerStats:
    """Resource usage from HCS's Statistics property."""

    timestamp: str
    uptime_seconds: float
    memory_commit_bytes: int
    memory_commit_peak_bytes: int
    memory_private_working_set_bytes: int
    cpu_total_100ns: int
    cpu_user_100ns: int
    cpu_kernel_100ns: int
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_hcs(cls, stats: Mapping[str, Any]) -> "ContainerStats":
        mem = stats.get("Memory") or {}
        cpu = stats.get("Processor") or {}
        return cls(
            timestamp=str(stats.get("Timestamp") or ""),
            uptime_seconds=int(stats.get("Uptime100ns") or 0) / 10_000_000,
            memory_commit_bytes=int(mem.get("MemoryUsageCommitBytes") or 0),
            memory_commit_peak_bytes=int(mem.get("MemoryUsageCommitPeakBytes") or 0),
            memory_private_working_set_bytes=int(mem.get("MemoryUsagePrivateWorkingSetBytes") or 0),
            cpu_total_100ns=int(cpu.get("TotalRuntime100ns") or 0),
            cpu_user_100ns=int(cpu.get("RuntimeUser100ns") or 0),
            cpu_kernel_100ns=int(cpu.get("RuntimeKernel100ns") or 0),
            raw=dict(stats),
        )


@attrs.frozen
class ContainerInfo(RichDisplay):
    """One row of :meth:`ContainerCollection.list` (``ps``)."""

    id: str
    name: str
    image: str
    command: Optional[str]
    state: str
    created: float
    exit_code: Optional[int] = None

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def row(self) -> tuple[Value, ...]:
        """The row a table of containers shows."""
        return (short_id(self.id), self.name, name_or_id(self.image),
                self.command, badge(self.state), when(self.created))

    def _shown_(self) -> Shown:
        return Shown.table("Container", CONTAINER_COLUMNS, [self.row()])


#: the columns of a table of containers (:meth:`ContainerInfo.row`)
CONTAINER_COLUMNS = ("ID", "Name", "Image", "Command", "State", "Created")


# -- input checks (before any side effect) -----------------------------------------------------


def check_timeout(timeout: Optional[float], what: str = "timeout") -> None:
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise errors.BadInput(f"{what} must be a non-negative number of seconds (or None), not {timeout!r}")


def check_command(cmd: Optional[Command], *, required: bool) -> Optional[str]:
    if cmd is None:
        if required:
            raise errors.BadInput("no command given")
        return None
    if isinstance(cmd, str):
        if not cmd.strip():
            raise errors.BadInput("the command is empty")
        if "\0" in cmd:
            raise errors.BadInput("the command contains a NUL character")
        return cmd
    if isinstance(cmd, (list, tuple)):
        if not cmd or not all(isinstance(a, str) for a in cmd):
            raise errors.BadInput("the command must be a non-empty list of strings")
        if not cmd[0].strip():
            raise errors.BadInput("the command's program name is empty")
        if any("\0" in a for a in cmd):
            raise errors.BadInput("the command contains a NUL character")
        return list2cmdline(cmd)
    raise errors.BadInput(f"the command must be a string or a list of strings, not {type(cmd).__name__}")


def check_env(env: Optional[Mapping[str, str]]) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise errors.BadInput("env must be a mapping of names to values")
    out = {}
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise errors.BadInput(f"invalid environment variable name {key!r}")
        if not isinstance(value, str) or "\0" in value:
            raise errors.BadInput(f"the value of environment variable {key!r} must be a string without NUL")
        out[key] = value
    return out


def parse_env_list(items: Sequence[str], environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``["K=V", "NAME", ...]`` (the CLI's ``-e``) -> dict. ``NAME`` alone takes its value from
    ``environ`` (the caller's environment) and is left out when it is not set there, as Docker
    does; an item with no name is a BadInput."""
    source = os.environ if environ is None else environ
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise errors.BadInput(f"malformed environment variable {item!r}: expected NAME=VALUE or NAME")
        if not sep:
            if key not in source:
                continue
            value = source[key]
        env[key] = value
    return check_env(env)


def config_env(config: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            if key:
                out[key] = value
    return out


def image_command(config: Mapping[str, Any], command: Optional[Command],
                  entrypoint: Optional[Command] = None) -> Optional[str]:
    """The main process's command line as Docker makes it: the ENTRYPOINT (``entrypoint``
    replaces the image's, and then the image's CMD is dropped) followed by the command
    (``command``, else the image's CMD). None when there is neither."""
    tail = check_command(command, required=False)
    if entrypoint is not None:
        head = check_command(entrypoint, required=True) or ""
    else:
        head = list2cmdline(list(config.get("Entrypoint") or []))
        if tail is None:
            tail = default_command({"Cmd": config.get("Cmd"), "ArgsEscaped": config.get("ArgsEscaped")})
    line = f"{head} {tail}" if head and tail else (head or tail or "")
    return line or None


#: The interactive shells the OS images name as their CMD (Docker's servercore and nanoserver).
_SHELLS = {"cmd", "cmd.exe", "powershell", "powershell.exe", "pwsh", "pwsh.exe"}


def only_a_shell(config: Mapping[str, Any]) -> bool:
    """Whether an image's ENTRYPOINT + CMD is no more than an interactive shell (the OS images'
    ``cmd.exe``): meant for ``run -it``, and with no stdin it would end at once."""
    if config.get("Entrypoint"):
        return False
    cmd = list(config.get("Cmd") or [])
    if len(cmd) != 1 or not isinstance(cmd[0], str):
        return not cmd
    name = cmd[0].strip().strip('"').replace("/", "\\").rsplit("\\", 1)[-1].lower()
    return name in _SHELLS


def default_command(config: Mapping[str, Any]) -> Optional[str]:
    """An image's Entrypoint + Cmd as one Windows command line (None when it has neither).

    With ``ArgsEscaped`` (Docker on Windows) the last element is already a command line.
    """
    parts = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not parts:
        return None
    if config.get("ArgsEscaped") and len(parts) >= 1:
        head = subprocess.list2cmdline(parts[:-1])
        return f"{head} {parts[-1]}" if head else parts[-1]
    return subprocess.list2cmdline(parts)




def inspect_document(record: Any, status: str, settings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A container as ``docker inspect`` shows one, from its record, status and network
    settings (each network's IP, prefix, gateway and MAC; the port mappings)."""
    networks: dict[str, Any] = {}
    ports: dict[str, list[dict[str, str]]] = {}
    for entry in settings:
        networks[entry["Network"] or entry["NetworkID"]] = {
            key: entry[key] for key in ("NetworkID", "EndpointID", "IPAddress", "IPPrefixLen", "Gateway",
                                        "MacAddress")
        }
        for port, host_port in entry["Ports"].items():
            ports.setdefault(port, []).append({"HostIp": "0.0.0.0", "HostPort": str(host_port)})
    first: dict[str, Any] = next(iter(networks.values()), {})
    return {
        "Id": record.id,
        "Name": "/" + record.name,
        "Created": _iso(record.created),
        "Image": record.image_id or record.image,
        "State": {"Status": status, "Running": status == "running", "Paused": status == "paused",
                  "ExitCode": record.exit_code, "StartedAt": _iso(record.started),
                  "FinishedAt": _iso(record.finished)},
        "Config": {"Image": record.image, "Cmd": record.command, "Env": [f"{k}={v}" for k, v in record.env.items()],
                   "WorkingDir": record.workdir or "", "Hostname": record.hostname, "User": record.user or "",
                   "Tty": record.tty, "Labels": dict(record.labels)},
        "HostConfig": {"Memory": (record.memory_mb or 0) * 1024 * 1024, "CpuCount": record.cpu_count or 0,
                       "Isolation": "process"},
        "Mounts": [{"Type": "bind", "Source": h, "Destination": c, "RW": h not in record.read_only_volumes}
                   for h, c in record.volumes.items()],
        "GraphDriver": {"Name": "windowsfilter", "Data": {"dir": record.sandbox}},
        "NetworkSettings": {"IPAddress": first.get("IPAddress") or "", "Ports": ports, "Networks": networks},
        "Generation": record.generation,
    }


def _iso(seconds: Optional[float]) -> Optional[str]:
    """Epoch seconds as RFC 3339 UTC (``inspect``'s times), None stays None."""
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1e6):06d}Z"


def system_spec(record: Any, volume_path: str, parents: Sequence[LayerRef], *, first_boot: bool = True) -> SystemSpec:
    """The compute system of a container record (its network is applied by the caller): at
    create, and again for each restart on a new compute system."""
    return SystemSpec(
        id=record.id, name=record.name, hostname=record.hostname, volume_path=volume_path,
        layer_folder=str(record.sandbox), layers=tuple(parents),
        mapped_directories=tuple(MappedDirectory(host_path=h, container_path=c,
                                                 read_only=h in record.read_only_volumes)
                                 for h, c in record.volumes.items()),
        memory_mb=record.memory_mb, cpu_count=record.cpu_count, first_boot=first_boot,
        isolation="hyperv" if record.isolation == "hyperv" else "process", utility_vm=record.utility_vm,
        hyperv_route=record.hyperv_route,
    )


ISOLATIONS = ("process", "hyperv")


def check_isolation(isolation: Any) -> str:
    """``"process"`` (the default; Docker's ``"default"`` too) or ``"hyperv"``."""
    if isolation in (None, "default"):
        return "process"
    if isolation not in ISOLATIONS:
        raise errors.BadInput(f"isolation must be 'process' or 'hyperv', not {isolation!r}")
    return str(isolation)


def mapped_directories(volumes: Optional[Mapping[str, Any]]) -> tuple[MappedDirectory, ...]:
    """``volumes`` as ``create`` takes them: ``{host: container}`` or docker-py's
    ``{host: {"bind": container, "mode": "ro" | "rw"}}``; BadInput for anything else."""
    out = []
    for host_path, target in (volumes or {}).items():
        mode = "rw"
        if isinstance(target, Mapping):
            mode = str(target.get("mode", "rw"))
            target = target.get("bind")
        if not isinstance(host_path, str) or not isinstance(target, str) or not host_path or not target:
            raise errors.BadInput(f"volume {host_path!r}: a host path and a container path, both strings")
        if mode not in ("ro", "rw"):
            raise errors.BadInput(f"volume {host_path!r}: mode is ro or rw, not {mode!r}")
        out.append(MappedDirectory(host_path=host_path, container_path=target, read_only=mode == "ro"))
    return tuple(out)
