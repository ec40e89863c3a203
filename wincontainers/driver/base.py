"""The Driver protocol: one shape for the three HCS API generations.

Everything above ``driver/`` talks to a :class:`Driver`, a :class:`SystemRef` (one open compute
system) and a :class:`ProcessRef` (one open process), in generation-neutral terms. What a
generation cannot do raises :class:`~wincontainers.errors.NotSupported` naming the generation
and the alternative, never a silent no-op.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import attrs

from wincontainers.aio import Signal

__all__ = [
    "LayerRef",
    "MappedDirectory",
    "SystemSpec",
    "ProcessSpec",
    "ExitStatus",
    "BaseImageInfo",
    "Driver",
    "SystemRef",
    "ProcessRef",
    "DEFAULT_TIMEOUT",
    "HYPERV_ROUTES",
    "timeout_ms",
    "utility_vm_id",
    "container_of_utility_vm",
    "UTILITY_VM_SUFFIX",
]

#: hcsshim's default for create/start/pause/resume (4 minutes).
DEFAULT_TIMEOUT = 240.0


def timeout_ms(timeout: Optional[float]) -> int:
    """A timeout in seconds as the DWORD milliseconds HCS takes (``None`` = INFINITE)."""
    if timeout is None:
        return 0xFFFFFFFF
    return max(0, min(int(timeout * 1000), 0xFFFFFFFE))


@attrs.frozen
class LayerRef:
    """A read-only parent layer: its NameToGuid id and absolute folder."""

    id: uuid.UUID
    path: str


@attrs.frozen
class MappedDirectory:
    host_path: str
    container_path: str
    read_only: bool = False


#: The two ways of making a Hyper-V container (see :attr:`Capabilities.hyperv_routes`).
HYPERV_ROUTES = ("vmcompute", "computecore")


@attrs.frozen
class SystemSpec:
    """A container compute system, independent of the schema version.

    ``isolation="hyperv"`` runs it in a utility VM booted from ``utility_vm`` (a layer's
    ``UtilityVM`` folder): through vmcompute (schema v1 ``HvPartition``: HCS makes the VM) or
    computecore (schema v2: the driver makes the VM and hosts the container in it), as
    ``hyperv_route`` says. ``volume_path`` is then empty: the sandbox's disk goes to the VM.
    """

    id: str
    name: str
    hostname: str
    volume_path: str  # as GetLayerMountPath returns it: \\?\Volume{...}\ (trailing backslash)
    layer_folder: str
    layers: tuple[LayerRef, ...]
    owner: str = "wincontainers"
    mapped_directories: tuple[MappedDirectory, ...] = ()
    memory_mb: Optional[int] = None
    cpu_count: Optional[int] = None
    terminate_on_last_handle_close: bool = False
    #: networking (driver/networking.py): gen2 HNS endpoint IDs, gen3 HCN namespace, gen1 NAT devices
    endpoints: tuple[str, ...] = ()
    network_namespace: Optional[str] = None
    nat_devices: tuple[Any, ...] = ()
    #: the sandbox's first boot: flushes may be skipped (the sandbox is new, nothing to lose);
    #: a container started again must not (as Docker sets it only for a first start)
    first_boot: bool = True
    isolation: str = "process"  # or "hyperv"
    utility_vm: Optional[str] = None
    hyperv_route: Optional[str] = None  # one of HYPERV_ROUTES

    @property
    def hyperv(self) -> bool:
        return self.isolation == "hyperv"

    @property
    def vm_id(self) -> str:
        """The id of the utility VM that hosts this container (computecore route)."""
        return utility_vm_id(self.id)


#: what a hosted container's utility VM adds to the container's id (hcsshim's naming)
UTILITY_VM_SUFFIX = "@vm"


def utility_vm_id(container_id: str) -> str:
    """A hosted container's utility VM is ``<container id>@vm``: found again from the
    container, and by the clean-up of VMs whose container is gone."""
    return container_id + UTILITY_VM_SUFFIX


def container_of_utility_vm(system_id: str) -> Optional[str]:
    """The container whose utility VM ``system_id`` is (:func:`utility_vm_id` undone), or None."""
    return system_id[:-len(UTILITY_VM_SUFFIX)] if system_id.endswith(UTILITY_VM_SUFFIX) else None


@attrs.frozen
class ProcessSpec:
    """One process to start in a compute system."""

    command_line: str
    working_directory: Optional[str] = None
    environment: Mapping[str, str] = attrs.field(factory=dict)
    console: bool = False
    console_size: Optional[tuple[int, int]] = None  # (height, width)
    user: Optional[str] = None


@attrs.frozen
class ExitStatus:
    """How a compute system exited (SystemExitStatus)."""

    exit_type: str  # "GracefulExit", "ForcedExit", "UnexpectedExit", ...
    status: int = 0


@attrs.frozen
class BaseImageInfo:
    """A base OS image of the host's central store (GetBaseImages)."""

    name: str
    version: str
    path: str
    size: int = 0
    created: str = ""


@runtime_checkable
class ProcessRef(Protocol):
    """An open process. Owns its stdio handles until :meth:`take_stdio` hands them over."""

    pid: int

    def take_stdio(self) -> tuple[Optional[int], Optional[int], Optional[int]]: ...

    def wait(self, timeout: Optional[float]) -> Optional[int]: ...

    def terminate(self) -> None: ...

    def signal(self, name: str) -> None: ...

    def resize(self, height: int, width: int) -> None: ...

    def close_stdin(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class SystemRef(Protocol):
    """An open compute system."""

    id: str

    def start(self, timeout: Optional[float]) -> None: ...

    def shutdown(self, timeout: Optional[float]) -> bool: ...

    def terminate(self, timeout: Optional[float]) -> None: ...

    def pause(self, timeout: Optional[float]) -> None: ...

    def resume(self, timeout: Optional[float]) -> None: ...

    def properties(self, types: Sequence[str] = ()) -> dict[str, Any]: ...

    def modify(self, document: Mapping[str, Any]) -> None: ...

    def wait_exited(self, timeout: Optional[float]) -> Optional[ExitStatus]: ...

    def exit_signal(self) -> Signal:
        """Set when the system exits (or the service goes away): what an asyncio wait awaits."""
        ...

    def probe_exit(self) -> bool:
        """Ask HCS whether the system has exited (a lost notification); True sets
        :meth:`exit_signal`. Where HCS cannot tell (TP3), False."""
        ...

    def create_process(self, spec: ProcessSpec) -> ProcessRef: ...

    def open_process(self, pid: int) -> ProcessRef: ...

    def process_list(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@attrs.frozen
class Capabilities:
    """What a driver's API can do, for the code above ``driver/`` to ask instead of comparing
    generations (TP3's string-id API lacks the first three)."""

    lists_systems: bool  # enumerate the host's compute systems
    reports_state: bool  # a system's state comes from HCS (else from the library's own record)
    statistics: bool  # memory/CPU statistics of a system
    process_list: bool = True  # a system's processes (top)
    #: how this API makes Hyper-V containers, the default first (empty: it cannot, TP3)
    hyperv_routes: tuple[str, ...] = ()


@runtime_checkable
class Driver(Protocol):
    """One API generation of one host."""

    generation: int
    capabilities: Capabilities

    def create_system(self, spec: SystemSpec, timeout: Optional[float]) -> SystemRef: ...

    def open_system(self, system_id: str, *, hosted: bool = False) -> SystemRef:
        """Open a compute system; ``hosted``: a container with its own utility VM (the
        computecore Hyper-V route), opened together with the VM."""
        ...

    def list_systems(self, owner: Optional[str] = None) -> list[dict[str, Any]]: ...

    def service_properties(self) -> dict[str, Any]: ...

    # -- layers (process isolation) --
    def name_to_guid(self, name: str) -> uuid.UUID: ...

    def base_images(self) -> list[BaseImageInfo]: ...

    def layer_exists(self, path: str) -> bool: ...

    def create_sandbox(self, path: str, parents: Sequence[LayerRef]) -> None: ...

    def expand_sandbox(self, path: str, size: int) -> None:
        """Grow a sandbox's volume to at least ``size`` bytes (ExpandSandboxSize)."""
        ...

    def activate_layer(self, path: str) -> None: ...

    def prepare_layer(self, path: str, parents: Sequence[LayerRef]) -> None: ...

    def layer_mount_path(self, path: str) -> str: ...

    def unprepare_layer(self, path: str) -> None: ...

    def deactivate_layer(self, path: str) -> None: ...

    def destroy_layer(self, path: str) -> None: ...

    def import_layer(self, path: str, folder: str, parents: Sequence[LayerRef]) -> None: ...

    def export_layer(self, path: str, folder: str, parents: Sequence[LayerRef], writable: bool = False) -> None: ...

    def process_base_image(self, path: str) -> None: ...

    def process_utility_image(self, path: str) -> None: ...

    def close(self) -> None: ...
