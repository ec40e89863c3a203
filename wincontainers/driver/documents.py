"""Generation-neutral specs -> the JSON documents each generation takes."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from wincontainers.driver.base import LayerRef, ProcessSpec, SystemSpec
from wincontainers.schema import common, v1, v2

__all__ = ["container_v1", "container_v2", "process_v1", "process_v2", "layer_data", "utility_vm_v2",
           "hosted_container_v2", "add_share_request", "add_disk_request", "combine_layers_request",
           "add_namespace_request", "add_adapter_requests",
           "vsmb_guest_path"]


def container_v1(spec: SystemSpec) -> v1.ContainerConfig:
    """Schema v1 (TP3 and Server 2016): VolumePath without its trailing backslash.

    Hyper-V isolation (Docker's RTM document, hcs-api.md 6.1): ``HvPartition``, the utility VM
    image in ``HvRuntime``, and ``SandboxPath``, the folder HCS finds the sandbox in under the
    container's id (the parent of the sandbox folder); no VolumePath or LayerFolderPath, as
    the sandbox's disk is attached to the VM, not mounted on the host. Memory and processors
    are the VM's."""
    hyperv = spec.hyperv
    return v1.ContainerConfig(
        system_type="Container",
        name=spec.name,
        owner=spec.owner,
        volume_path=None if hyperv else spec.volume_path.rstrip("\\"),
        ignore_flushes_during_boot=True if spec.first_boot else None,
        layer_folder_path=None if hyperv else spec.layer_folder,
        sandbox_path=os.path.dirname(os.path.normpath(spec.layer_folder)) if hyperv else None,
        hv_runtime=v1.HvRuntime(image_path=spec.utility_vm) if hyperv else None,
        layers=[v1.Layer(id=str(layer.id), path=layer.path) for layer in spec.layers],
        host_name=spec.hostname,
        mapped_directories=[
            v1.MappedDirectory(host_path=m.host_path, container_path=m.container_path, read_only=m.read_only)
            for m in spec.mapped_directories
        ] or None,
        hv_partition=hyperv,
        memory_maximum_in_mb=spec.memory_mb,
        processor_count=spec.cpu_count,
        terminate_on_last_handle_closed=spec.terminate_on_last_handle_close or None,
        endpoint_list=list(spec.endpoints) or None,
        allow_unqualified_dns_query=True if spec.endpoints else None,
        devices=list(spec.nat_devices) or None,
    )


def container_v2(spec: SystemSpec) -> v2.ComputeSystem:
    """Schema v2.1 (1809+): Storage.Path keeps the trailing backslash."""
    volume = spec.volume_path if spec.volume_path.endswith("\\") else spec.volume_path + "\\"
    return v2.ComputeSystem(
        owner=spec.owner,
        schema_version=v2.SCHEMA_2_1(),
        container=v2.Container(
            guest_os=v2.GuestOs(host_name=spec.hostname),
            storage=v2.Storage(
                layers=[v2.Layer(id=str(layer.id), path=layer.path) for layer in spec.layers],
                path=volume,
            ),
            mapped_directories=[
                v2.MappedDirectory(host_path=m.host_path, container_path=m.container_path, read_only=m.read_only)
                for m in spec.mapped_directories
            ] or None,
            memory=v2.Memory(size_in_mb=spec.memory_mb) if spec.memory_mb else None,
            processor=v2.Processor(count=spec.cpu_count) if spec.cpu_count else None,
            networking=v2.Networking(allow_unqualified_dns_query=True, namespace=spec.network_namespace)
            if spec.network_namespace else None,
        ),
        should_terminate_on_last_handle_closed=spec.terminate_on_last_handle_close or None,
    )


# -- the computecore route of Hyper-V isolation (hcsshim's WCOW utility VM) ------------------

#: hcsshim's defaults for a Windows utility VM (internal/uvm create.go: 1024 MB; two processors
#: or fewer on a smaller host), the first SCSI controller's id (guestrequest.ScsiControllerGuids)
#: and the boot manager's place in UtilityVM\\Files (wclayer.BootDirRelativePath).
UVM_MEMORY_MB = 1024
UVM_PROCESSORS = 2
SCSI_CONTROLLER = "df6d0690-79e5-55b6-a5ec-c1e2f77f580a"
UVM_BOOT_FILE = "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
#: how the guest sees a VSMB share: this prefix and the share's name (hcsshim GetVSMBUvmPath)
VSMB_GUEST_PREFIX = "\\\\?\\VMSMB\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\"
#: where the container's sandbox disk is mounted in the guest, and its root there
CONTAINER_DISK_LUN = 1
CONTAINER_ROOT_IN_VM = "C:\\c\\0"


def utility_vm_v2(spec: SystemSpec, scratch: str, processors: int) -> v2.ComputeSystem:
    """The utility VM of a Hyper-V container (schema v2 ``VirtualMachine``), as hcsshim's
    CreateWCOW describes it: UEFI boot over VmbFs from the ``os`` VSMB share (the image's
    ``UtilityVM\\Files``, read-only), its scratch disk (a copy of ``SystemTemplate.vhdx``) on
    SCSI 0:0, the GCS's Hyper-V socket open to SYSTEM and administrators. The container's
    memory and processors size the VM. Not ShouldTerminateOnLastHandleClosed, unlike
    hcsshim's: the container outlives the process that made it (a monitor, or none), and so
    must its VM; a VM whose container is gone is removed by the owner clean-up."""
    return v2.ComputeSystem(
        owner=spec.owner,
        schema_version=v2.SCHEMA_2_1(),
        virtual_machine=v2.VirtualMachine(
            stop_on_reset=True,
            chipset=v2.Chipset(uefi=v2.Uefi(boot_this=v2.UefiBootEntry(device_path=UVM_BOOT_FILE,
                                                                        device_type="VmbFs"))),
            compute_topology=v2.Topology(
                memory=v2.VirtualMachineMemory(size_in_mb=spec.memory_mb or UVM_MEMORY_MB, allow_overcommit=True),
                processor=v2.VirtualMachineProcessor(count=processors),
            ),
            devices=v2.Devices(
                scsi={SCSI_CONTROLLER: v2.Scsi(attachments={"0": v2.Attachment(path=scratch, type="VirtualDisk")})},
                hv_socket=v2.HvSocket(hv_socket_config=v2.HvSocketSystemConfig(
                    default_bind_security_descriptor="D:P(A;;FA;;;SY)(A;;FA;;;BA)")),
                virtual_smb=v2.VirtualSmb(
                    shares=[v2.VirtualSmbShare(name="os", path=os.path.join(spec.utility_vm or "", "Files"),
                                               options=vsmb_options(read_only=True))],
                    direct_file_mapping_in_mb=1024,
                ),
            ),
        ),
    )


def vsmb_options(*, read_only: bool) -> v2.VirtualSmbShareOptions:
    """hcsshim's DefaultVSMBOptions: read-only shares are cached and shared for reading;
    layers and the OS share read with backup privilege (their files' ACLs are the image's)."""
    if not read_only:
        return v2.VirtualSmbShareOptions()
    return v2.VirtualSmbShareOptions(read_only=True, share_read=True, cache_io=True, pseudo_oplocks=True,
                                     take_backup_privilege=True)


def add_share_request(name: str, host_path: str, *, read_only: bool) -> v2.ModifySettingRequest:
    return v2.ModifySettingRequest(
        resource_path="VirtualMachine/Devices/VirtualSmb/Shares", request_type="Add",
        settings=v2.VirtualSmbShare(name=name, path=host_path, options=vsmb_options(read_only=read_only)))


def add_disk_request(disk: str) -> v2.ModifySettingRequest:
    """The container's sandbox disk on SCSI, mounted in the guest where its root will be."""
    return v2.ModifySettingRequest(
        resource_path=f"VirtualMachine/Devices/Scsi/{SCSI_CONTROLLER}/Attachments/{CONTAINER_DISK_LUN}",
        request_type="Add",
        settings=v2.Attachment(path=disk, type="VirtualDisk"),
        guest_request=v2.GuestRequest(resource_type="MappedVirtualDisk", request_type="Add",
                                      settings={"ContainerPath": CONTAINER_ROOT_IN_VM, "Lun": CONTAINER_DISK_LUN}))


def combine_layers_request(layers: Sequence[v2.Layer]) -> v2.ModifySettingRequest:
    """The guest combines the read-only layers (VSMB paths) over the sandbox disk it mounted."""
    return v2.ModifySettingRequest(guest_request=v2.GuestRequest(
        resource_type="CombinedLayers", request_type="Add",
        settings={"ContainerRootPath": CONTAINER_ROOT_IN_VM, "Layers": [layer.to_json() for layer in layers]}))


def add_namespace_request(namespace: Mapping[str, Any]) -> v2.ModifySettingRequest:
    """The container's HCN namespace, made in the guest (hcsshim's AddNetNS: the namespace
    document as HCN describes it)."""
    return v2.ModifySettingRequest(guest_request=v2.GuestRequest(
        resource_type="NetworkNamespace", request_type="Add", settings=dict(namespace)))


def add_adapter_requests(adapter_id: str, endpoint: Mapping[str, Any]) -> list[v2.ModifySettingRequest]:
    """One endpoint as a network adapter of the VM (hcsshim's addNIC on Windows): a pre-add
    the guest prepares with the endpoint's document, then the adapter with the guest's add."""
    return [
        v2.ModifySettingRequest(guest_request=v2.GuestRequest(
            resource_type="Network", request_type="Add",
            settings={"AdapterId": adapter_id, "RequestType": "PreAdd", "Settings": dict(endpoint)})),
        v2.ModifySettingRequest(
            resource_path=f"VirtualMachine/Devices/NetworkAdapters/{adapter_id}", request_type="Add",
            settings={"EndpointId": endpoint.get("ID") or endpoint.get("Id"), "MacAddress": endpoint.get("MacAddress")},
            guest_request=v2.GuestRequest(resource_type="Network", request_type="Add",
                                          settings={"AdapterId": adapter_id, "RequestType": "Add"})),
    ]


def hosted_container_v2(spec: SystemSpec, layers: Sequence[v2.Layer],
                        mapped: Sequence[v2.MappedDirectory]) -> v2.ComputeSystem:
    """The container a utility VM hosts (``HostingSystemId``): its layers and mapped folders
    are the VM's VSMB paths, its storage the root the guest combined (hcsshim's v2 Xenon)."""
    return v2.ComputeSystem(
        owner=spec.owner,
        schema_version=v2.SCHEMA_2_1(),
        hosting_system_id=spec.vm_id,
        container=v2.Container(
            guest_os=v2.GuestOs(host_name=spec.hostname),
            storage=v2.Storage(layers=list(layers), path=CONTAINER_ROOT_IN_VM + "\\"),
            mapped_directories=list(mapped) or None,
            networking=v2.Networking(allow_unqualified_dns_query=True, namespace=spec.network_namespace)
            if spec.network_namespace else None,
        ),
    )


def vsmb_guest_path(share: str) -> str:
    return VSMB_GUEST_PREFIX + share


def process_v1(spec: ProcessSpec, *, pipe_flags: bool) -> v1.ProcessConfig:
    """v1 process parameters; gen1 (TP3) asks for pipes with out-parameters, not flags."""
    return v1.ProcessConfig(
        command_line=spec.command_line,
        working_directory=spec.working_directory,
        environment=dict(spec.environment) if spec.environment else None,
        emulate_console=spec.console,
        console_size=list(spec.console_size) if spec.console and spec.console_size else None,
        create_std_in_pipe=True if pipe_flags else None,
        create_std_out_pipe=True if pipe_flags else None,
        create_std_err_pipe=(not spec.console) if pipe_flags else None,
        user=spec.user,
    )


def process_v2(spec: ProcessSpec) -> v2.ProcessParameters:
    return v2.ProcessParameters(
        command_line=spec.command_line,
        working_directory=spec.working_directory,
        environment=dict(spec.environment) if spec.environment else None,
        emulate_console=spec.console,
        console_size=list(spec.console_size) if spec.console and spec.console_size else None,
        create_std_in_pipe=True,
        create_std_out_pipe=True,
        create_std_err_pipe=not spec.console,
        user=spec.user,
    )


def layer_data(parents: Sequence[LayerRef]) -> v2.LayerData:
    """computestorage's LayerData: the parent chain, nearest first."""
    return v2.LayerData(
        schema_version=v2.SCHEMA_2_1(),
        layers=[v2.Layer(id=str(layer.id), path=layer.path) for layer in parents],
    )


def console_size_request(height: int, width: int) -> common.ModifyProcessRequest:
    return common.ModifyProcessRequest(operation="ConsoleSize", console_size=common.ConsoleSize(height=height, width=width))


def close_stdin_request() -> common.ModifyProcessRequest:
    return common.ModifyProcessRequest(operation="CloseHandle", close_handle=common.CloseHandle(handle="StdIn"))
