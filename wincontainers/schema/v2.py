"""Schema v2 documents (gen3 computecore, and vmcompute on 1809+): hcs-api.md 6.7."""

from __future__ import annotations

from typing import Any, Optional

import attrs

from wincontainers.schema._document import Document, json_field

__all__ = [
    "Version", "Layer", "Storage", "MappedDirectory", "GuestOs", "Memory", "Processor", "Networking",
    "Container", "ComputeSystem", "ProcessParameters", "LayerData", "SCHEMA_2_1",
    "VirtualMachine", "Chipset", "Uefi", "UefiBootEntry", "Topology", "VirtualMachineMemory",
    "VirtualMachineProcessor", "Devices", "Scsi", "Attachment", "HvSocket", "HvSocketSystemConfig",
    "VirtualSmb", "VirtualSmbShare", "VirtualSmbShareOptions", "ModifySettingRequest", "GuestRequest",
]


@attrs.define
class Version(Document):
    major: Optional[int] = json_field()
    minor: Optional[int] = json_field()


def SCHEMA_2_1() -> Version:  # noqa: N802 - reads like the constant it is
    return Version(major=2, minor=1)


@attrs.define
class Layer(Document):
    id: Optional[str] = json_field()
    path: Optional[str] = json_field()
    path_type: Optional[str] = json_field()
    cache: Optional[str] = json_field()


@attrs.define
class QoS(Document):
    iops_maximum: Optional[int] = json_field()
    bandwidth_maximum: Optional[int] = json_field()


@attrs.define
class Storage(Document):
    layers: Optional[list[Layer]] = json_field()
    path: Optional[str] = json_field()
    qo_s: Optional[QoS] = json_field("QoS")


@attrs.define
class MappedDirectory(Document):
    host_path: Optional[str] = json_field()
    container_path: Optional[str] = json_field()
    read_only: Optional[bool] = json_field()
    host_path_type: Optional[str] = json_field()


@attrs.define
class GuestOs(Document):
    host_name: Optional[str] = json_field()


@attrs.define
class Memory(Document):
    size_in_mb: Optional[int] = json_field("SizeInMB")


@attrs.define
class Processor(Document):
    count: Optional[int] = json_field()
    maximum: Optional[int] = json_field()
    weight: Optional[int] = json_field()


@attrs.define
class Networking(Document):
    allow_unqualified_dns_query: Optional[bool] = json_field("AllowUnqualifiedDnsQuery")
    dns_search_list: Optional[str] = json_field("DnsSearchList")
    network_shared_container_name: Optional[str] = json_field()
    namespace: Optional[str] = json_field()
    network_adapters: Optional[list[str]] = json_field()


@attrs.define
class Container(Document):
    guest_os: Optional[GuestOs] = json_field("GuestOs")
    storage: Optional[Storage] = json_field()
    mapped_directories: Optional[list[MappedDirectory]] = json_field()
    memory: Optional[Memory] = json_field()
    processor: Optional[Processor] = json_field()
    networking: Optional[Networking] = json_field()


# -- a utility VM (Hyper-V isolation): the fields hcsshim's WCOW utility VM document sets ------


@attrs.define
class UefiBootEntry(Document):
    device_path: Optional[str] = json_field()
    device_type: Optional[str] = json_field()


@attrs.define
class Uefi(Document):
    boot_this: Optional[UefiBootEntry] = json_field()


@attrs.define
class Chipset(Document):
    uefi: Optional[Uefi] = json_field()


@attrs.define
class VirtualMachineMemory(Document):
    size_in_mb: Optional[int] = json_field("SizeInMB")
    allow_overcommit: Optional[bool] = json_field()


@attrs.define
class VirtualMachineProcessor(Document):
    count: Optional[int] = json_field()


@attrs.define
class Topology(Document):
    memory: Optional[VirtualMachineMemory] = json_field()
    processor: Optional[VirtualMachineProcessor] = json_field()


@attrs.define
class Attachment(Document):
    path: Optional[str] = json_field()
    type: Optional[str] = json_field()


@attrs.define
class Scsi(Document):
    attachments: Optional[dict[str, Attachment]] = json_field()


@attrs.define
class HvSocketSystemConfig(Document):
    default_bind_security_descriptor: Optional[str] = json_field()


@attrs.define
class HvSocket(Document):
    hv_socket_config: Optional[HvSocketSystemConfig] = json_field()


@attrs.define
class VirtualSmbShareOptions(Document):
    read_only: Optional[bool] = json_field()
    share_read: Optional[bool] = json_field()
    cache_io: Optional[bool] = json_field()
    pseudo_oplocks: Optional[bool] = json_field()
    take_backup_privilege: Optional[bool] = json_field()


@attrs.define
class VirtualSmbShare(Document):
    name: Optional[str] = json_field()
    path: Optional[str] = json_field()
    options: Optional[VirtualSmbShareOptions] = json_field()


@attrs.define
class VirtualSmb(Document):
    shares: Optional[list[VirtualSmbShare]] = json_field()
    direct_file_mapping_in_mb: Optional[int] = json_field("DirectFileMappingInMB")


@attrs.define
class Devices(Document):
    scsi: Optional[dict[str, Scsi]] = json_field()
    hv_socket: Optional[HvSocket] = json_field()
    virtual_smb: Optional[VirtualSmb] = json_field()


@attrs.define
class VirtualMachine(Document):
    stop_on_reset: Optional[bool] = json_field()
    chipset: Optional[Chipset] = json_field()
    compute_topology: Optional[Topology] = json_field()
    devices: Optional[Devices] = json_field()


@attrs.define
class GuestRequest(Document):
    """What the guest compute service is asked to do with a resource just added (or removed)."""

    resource_type: Optional[str] = json_field()
    request_type: Optional[str] = json_field()
    settings: Optional[Any] = json_field()


@attrs.define
class ModifySettingRequest(Document):
    """HcsModifyComputeSystem's document for a VM: a resource at ``ResourcePath`` and/or a
    request to its guest."""

    resource_path: Optional[str] = json_field()
    request_type: Optional[str] = json_field()
    settings: Optional[Any] = json_field()
    guest_request: Optional[GuestRequest] = json_field()


@attrs.define
class ComputeSystem(Document):
    owner: Optional[str] = json_field()
    schema_version: Optional[Version] = json_field()
    hosting_system_id: Optional[str] = json_field()
    container: Optional[Container] = json_field()
    virtual_machine: Optional[VirtualMachine] = json_field()
    should_terminate_on_last_handle_closed: Optional[bool] = json_field()


@attrs.define
class LayerData(Document):
    """computestorage's description of a layer chain (HcsImportLayer, HcsExportLayer...)."""

    schema_version: Optional[Version] = json_field()
    layers: Optional[list[Layer]] = json_field()
    filter_type: Optional[str] = json_field()


@attrs.define
class ProcessParameters(Document):
    application_name: Optional[str] = json_field()
    command_line: Optional[str] = json_field()
    command_args: Optional[list[str]] = json_field()
    user: Optional[str] = json_field()
    working_directory: Optional[str] = json_field()
    environment: Optional[dict[str, str]] = json_field()
    restricted_token: Optional[bool] = json_field()
    emulate_console: Optional[bool] = json_field()
    create_std_in_pipe: Optional[bool] = json_field()
    create_std_out_pipe: Optional[bool] = json_field()
    create_std_err_pipe: Optional[bool] = json_field()
    console_size: Optional[list[int]] = json_field()
    use_existing_login: Optional[bool] = json_field()
    use_legacy_console: Optional[bool] = json_field()
