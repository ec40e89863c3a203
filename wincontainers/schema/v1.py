"""Schema v1 documents: what gen1 (TP3) and gen2 (vmcompute Hcs*) take (hcs-api.md 6.1-6.4)."""

from __future__ import annotations

from typing import Any, Optional

import attrs

from wincontainers.schema._document import Document, json_field

__all__ = [
    "Layer", "MappedDirectory", "MappedPipe", "NatPortBinding", "NatSettings", "NetworkConnection",
    "NetworkDeviceSettings", "NetworkDevice", "HvRuntime", "ContainerConfig", "ProcessConfig",
]


@attrs.define
class Layer(Document):
    id: Optional[str] = json_field("ID")
    path: Optional[str] = json_field()


@attrs.define
class MappedDirectory(Document):
    host_path: Optional[str] = json_field()
    container_path: Optional[str] = json_field()
    read_only: Optional[bool] = json_field()
    bandwidth_maximum: Optional[int] = json_field()
    iops_maximum: Optional[int] = json_field("IOPSMaximum")
    create_in_utility_vm: Optional[bool] = json_field("CreateInUtilityVM")


@attrs.define
class MappedPipe(Document):
    host_path: Optional[str] = json_field()
    container_pipe_name: Optional[str] = json_field()


@attrs.define
class NatPortBinding(Document):
    protocol: Optional[str] = json_field()
    internal_port: Optional[int] = json_field()
    external_port: Optional[int] = json_field()


@attrs.define
class NatSettings(Document):
    name: Optional[str] = json_field()
    port_bindings: Optional[list[NatPortBinding]] = json_field()


@attrs.define
class NetworkConnection(Document):
    network_name: Optional[str] = json_field()
    enable_nat: Optional[bool] = json_field()
    nat: Optional[NatSettings] = json_field()


@attrs.define
class NetworkDeviceSettings(Document):
    mac_address: Optional[str] = json_field("MacAddress")


@attrs.define
class NetworkDevice(Document):
    """TP3/TP4 networking: a NAT device entry in the container document (hcs-api.md 7.1)."""

    device_type: Optional[str] = json_field(default="Network")
    connection: Optional[NetworkConnection] = json_field()
    settings: Optional[NetworkDeviceSettings] = json_field()


@attrs.define
class HvRuntime(Document):
    image_path: Optional[str] = json_field()
    skip_template: Optional[bool] = json_field()


@attrs.define
class ContainerConfig(Document):
    """The v1 container configuration of CreateComputeSystem / HcsCreateComputeSystem."""

    system_type: Optional[str] = json_field(default="Container")
    name: Optional[str] = json_field()
    owner: Optional[str] = json_field()
    is_dummy: Optional[bool] = json_field()
    volume_path: Optional[str] = json_field()
    ignore_flushes_during_boot: Optional[bool] = json_field()
    layer_folder_path: Optional[str] = json_field()
    layers: Optional[list[Layer]] = json_field()
    processor_weight: Optional[int] = json_field()
    processor_maximum: Optional[int] = json_field()
    processor_count: Optional[int] = json_field()
    host_name: Optional[str] = json_field()
    devices: Optional[list[NetworkDevice]] = json_field()
    mapped_directories: Optional[list[MappedDirectory]] = json_field()
    sandbox_path: Optional[str] = json_field()
    hv_partition: Optional[bool] = json_field()
    endpoint_list: Optional[list[str]] = json_field()
    hv_runtime: Optional[HvRuntime] = json_field()
    servicing: Optional[bool] = json_field()
    memory_maximum_in_mb: Optional[int] = json_field("MemoryMaximumInMB")
    storage_iops_maximum: Optional[int] = json_field("StorageIOPSMaximum")
    storage_bandwidth_maximum: Optional[int] = json_field()
    storage_sandbox_size: Optional[int] = json_field()
    credentials: Optional[str] = json_field()
    allow_unqualified_dns_query: Optional[bool] = json_field("AllowUnqualifiedDNSQuery")
    dns_search_list: Optional[str] = json_field("DNSSearchList")
    network_shared_container_name: Optional[str] = json_field()
    mapped_pipes: Optional[list[MappedPipe]] = json_field()
    terminate_on_last_handle_closed: Optional[bool] = json_field()


@attrs.define
class ProcessConfig(Document):
    """The v1 process parameters (CreateProcessWithStdHandlesInComputeSystem / HcsCreateProcess)."""

    application_name: Optional[str] = json_field()
    command_line: Optional[str] = json_field()
    working_directory: Optional[str] = json_field()
    environment: Optional[dict[str, str]] = json_field()
    emulate_console: Optional[bool] = json_field()
    console_size: Optional[list[int]] = json_field()
    create_std_in_pipe: Optional[bool] = json_field()
    create_std_out_pipe: Optional[bool] = json_field()
    create_std_err_pipe: Optional[bool] = json_field()
    user: Optional[str] = json_field()
    restricted_token: Optional[bool] = json_field()

    def merged(self, **changes: Any) -> "ProcessConfig":
        return attrs.evolve(self, **changes)
