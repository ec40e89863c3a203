"""Hyper-V isolation on the simulated host: utility VMs and the containers they host.

Two routes, as on Windows (hcs-api.md 6.1 and 6.7):

- **schema v1** (Server 2016 on, vmcompute): a ``Container`` document with ``HvPartition``;
  HCS boots the utility VM from ``HvRuntime.ImagePath`` (a base layer's ``UtilityVM``) and
  attaches the sandbox it finds in ``SandboxPath`` under the system's id. The VM is not a
  compute system of its own.
- **schema v2** (1809 on, computecore), as hcsshim does it: a ``VirtualMachine`` system boots
  from the ``os`` VSMB share (``UtilityVM\\Files``) with its scratch disk on SCSI 0:0; once it
  runs, the container's read-only layers are added as VSMB shares, its sandbox disk on SCSI
  (mounted in the guest) and the two combined; a ``Container`` with ``HostingSystemId`` then
  uses those guest paths.

Either way the container's processes run "inside" the VM: HCS numbers them in the guest
(:class:`~wincontainers.sim.model.GuestPids`), never with host PIDs, though underneath they are
host processes as any simulated container's are. A VM takes ``vm_boot_delay`` seconds to start.
Process isolation's image build check does not apply: the VM runs the image's own kernel.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import time
from pathlib import Path, PureWindowsPath
from typing import Any, Optional

from wincontainers.sim import storage as st
from wincontainers.sim.calls import (
    E_INVALIDARG,
    ERROR_FILE_NOT_FOUND,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    ERROR_PATH_NOT_FOUND,
    Call,
    get_key,
)
from wincontainers.sim.faults import Fail
from wincontainers.sim.model import ComputeSystem, GuestPids, UtilityVm
from wincontainers.sim.profiles import PROFILES
from wincontainers.sim.system_networks import SystemNetworks

__all__ = ["UtilityVms", "VSMB_PREFIX", "SHARES_PATH", "SCSI_PATH"]

#: How a guest sees a VSMB share (hcsshim's GetVSMBUvmPath): this prefix and the share's name.
VSMB_PREFIX = "\\\\?\\VMSMB\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\"
SHARES_PATH = "VirtualMachine/Devices/VirtualSmb/Shares"
SCSI_PATH = "VirtualMachine/Devices/Scsi/"
ADAPTERS_PATH = "VirtualMachine/Devices/NetworkAdapters/"
ERROR_ALREADY_EXISTS = 0x800700B7
MIN_VM_MEMORY_MB = 256


def _key(guest_path: Any) -> str:
    return str(guest_path or "").rstrip("\\").lower()


def _host_path(text: Any) -> Path:
    return Path(str(text or ""))


class UtilityVms(SystemNetworks):
    """Utility VMs (schema v2) and the Hyper-V parts of containers (both schemas)."""

    hyperv_installed = True
    vm_boot_delay = 0.3  # seconds a utility VM takes to boot

    def check_hyperv(self, call: Call, route: str) -> None:
        """Refused as the host's build would: no Hyper-V containers at all (TP3), not this
        route, or the Hyper-V role not installed."""
        profile = PROFILES[call.conn.profile]
        if not profile.hyperv_routes:
            raise Fail(ERROR_NOT_SUPPORTED, f"Windows build {profile.build} has no Hyper-V containers")
        if route not in profile.hyperv_routes:
            raise call.fail("INVALID_JSON", f"Windows build {profile.build} makes Hyper-V containers only through "
                                            f"{' or '.join(profile.hyperv_routes)}")
        if not self.hyperv_installed:
            raise call.fail("HYPERV_NOT_INSTALLED", "the Hyper-V role is not installed on this host")

    # -- schema v1: HvPartition ---------------------------------------------------------------

    def hyperv_v1_root(self, call: Call, system_id: str, doc: dict[str, Any], layers: list[Path]) -> Path:
        """The C: of a v1 Hyper-V container: its utility VM image checked, its sandbox (found in
        SandboxPath under the system's id) attached to the VM and mounted with its parents."""
        self.check_hyperv(call, "vmcompute")
        if get_key(doc, "VolumePath") or get_key(doc, "LayerFolderPath"):
            raise Fail(E_INVALIDARG, "a Hyper-V container takes SandboxPath and HvRuntime, not VolumePath or "
                                     "LayerFolderPath (its disk is attached to the utility VM, not mounted on the host)")
        runtime = get_key(doc, "HvRuntime", default=None) or {}
        image = get_key(runtime, "ImagePath", default="") if isinstance(runtime, dict) else ""
        if not image:
            raise Fail(E_INVALIDARG, "a Hyper-V container needs HvRuntime.ImagePath (the base layer's UtilityVM folder)")
        self.check_utility_vm_image(_host_path(image))
        sandbox_path = get_key(doc, "SandboxPath", default="")
        if not sandbox_path:
            raise Fail(E_INVALIDARG, "a Hyper-V container needs SandboxPath (the folder holding its sandbox)")
        sandbox = _host_path(sandbox_path) / system_id
        if not sandbox.is_dir():
            raise Fail(ERROR_PATH_NOT_FOUND, f"no sandbox {sandbox} (SandboxPath holds the sandbox under the "
                                             f"container's id)")
        with self.lock:
            return self.storage.attach_to_vm(sandbox, layers, system_id)

    @staticmethod
    def check_utility_vm_image(image: Path) -> None:
        """``<layer>\\UtilityVM``: its ``Files`` (with the boot manager) and its scratch template."""
        if not image.is_dir():
            raise Fail(ERROR_PATH_NOT_FOUND, f"the utility VM image {image} does not exist: Hyper-V isolation needs "
                                             f"a base layer with a UtilityVM folder")
        if not (image / "Files" / st.UVM_BOOT_FILE).is_file() or not (image / "SystemTemplate.vhdx").is_file():
            raise Fail(ERROR_FILE_NOT_FOUND, f"the utility VM image {image} is incomplete (no Files\\EFI boot manager "
                                             f"or SystemTemplate.vhdx; was ProcessUtilityImage run?)")

    # -- schema v2: VirtualMachine ------------------------------------------------------------

    def create_vm(self, call: Call, system_id: str, doc: dict[str, Any]) -> ComputeSystem:
        self.check_hyperv(call, "computecore")
        vm_doc = doc.get("VirtualMachine")
        if not isinstance(vm_doc, dict):
            raise call.fail("INVALID_JSON", "VirtualMachine must be an object")
        topology = vm_doc.get("ComputeTopology") or {}
        memory = int((topology.get("Memory") or {}).get("SizeInMB") or 0)
        if memory < MIN_VM_MEMORY_MB:
            raise Fail(E_INVALIDARG, f"ComputeTopology.Memory.SizeInMB {memory} is below {MIN_VM_MEMORY_MB}")
        processors = int((topology.get("Processor") or {}).get("Count") or 1)
        if not 1 <= processors <= (os.cpu_count() or 1) * 4:
            raise Fail(E_INVALIDARG, f"ComputeTopology.Processor.Count {processors} is more than the host has")
        devices = vm_doc.get("Devices") or {}
        shares = {str(s.get("Name")): str(s.get("Path")) for s in ((devices.get("VirtualSmb") or {}).get("Shares") or [])
                  if isinstance(s, dict)}
        boot = ((vm_doc.get("Chipset") or {}).get("Uefi") or {}).get("BootThis") or {}
        if boot.get("DeviceType") != "VmbFs":
            raise call.fail("INVALID_JSON", "a utility VM boots from VmbFs (Chipset.Uefi.BootThis.DeviceType)")
        os_share = shares.get("os")
        if not os_share:
            raise Fail(ERROR_PATH_NOT_FOUND, "the utility VM has no 'os' VSMB share to boot from")
        boot_file = Path(os_share) / Path(*PureWindowsPath(str(boot.get("DevicePath") or "")).parts[1:])
        if not Path(os_share).is_dir():
            raise Fail(ERROR_PATH_NOT_FOUND, f"the utility VM image {os_share} does not exist: Hyper-V isolation "
                                             f"needs a base layer with a UtilityVM folder")
        if not boot_file.is_file():
            raise Fail(ERROR_FILE_NOT_FOUND, f"the utility VM cannot boot: {boot_file} does not exist")
        attachments = [a for c in (devices.get("Scsi") or {}).values() if isinstance(c, dict)
                       for a in (c.get("Attachments") or {}).values() if isinstance(a, dict)]
        scratch = [a for a in attachments if a.get("Type") == "VirtualDisk"]
        if not scratch or not Path(str(scratch[0].get("Path") or "")).is_file():
            raise Fail(ERROR_FILE_NOT_FOUND, "the utility VM's scratch disk (SCSI 0:0) does not exist")
        system = ComputeSystem(
            id=system_id, owner=str(doc.get("Owner") or ""), name=system_id, schema=2, config=doc,
            root=Path(os_share), volume_guid="", hostname=system_id[:15],
            terminate_on_last_close=bool(doc.get("ShouldTerminateOnLastHandleClosed", False)), created_by=call.pid,
            kind="VirtualMachine", vm=UtilityVm(memory_mb=memory, processors=processors, shares=dict(shares)),
            pids=GuestPids(),
        )
        with self.lock:
            if system_id.lower() in self.systems:
                raise call.fail("ALREADY_EXISTS", f"a compute system with id {system_id!r} already exists")
            self.systems[system_id.lower()] = system
        return system

    def modify_vm(self, call: Call, system: ComputeSystem, doc: dict[str, Any]) -> None:
        """Hot-add (or remove) a VSMB share, a SCSI disk mounted in the guest, or a container
        root combined from layers in the guest (hcsshim's order)."""
        vm = system.vm
        assert vm is not None
        with self.lock:
            if system.state != "Running":
                raise call.fail("INVALID_STATE", "a utility VM is modified while it runs")
            path = str(doc.get("ResourcePath") or "")
            settings = doc.get("Settings") or {}
            guest = doc.get("GuestRequest") or {}
            # a request to the guest alone carries its RequestType inside (hcsshim's CombinedLayers)
            request = str(doc.get("RequestType") or (guest.get("RequestType") if not path else "") or "").lower()
            if request not in ("add", "remove"):
                raise call.fail("INVALID_JSON", f"RequestType {doc.get('RequestType')!r} is invalid")
            kind = str(guest.get("ResourceType") or "")
            if path == SHARES_PATH:
                self._modify_share(vm, request, settings)
            elif path.startswith(SCSI_PATH):
                self._modify_disk(vm, request, settings, guest)
            elif not path and kind == "CombinedLayers":
                self._combine(call, system, request, guest.get("Settings") or {})
            elif not path and kind == "NetworkNamespace":
                self._guest_namespace(call, vm, request, guest.get("Settings") or {})
            elif not path and kind == "Network":
                self._pre_add(call, vm, guest.get("Settings") or {})
            elif path.startswith(ADAPTERS_PATH):
                self._adapter(call, system, request, path[len(ADAPTERS_PATH):], settings)
            else:
                raise Fail(ERROR_NOT_SUPPORTED, f"modifying {path or guest.get('ResourceType') or 'this resource'} "
                                                f"of a utility VM is not supported by the simulated host")

    def _guest_namespace(self, call: Call, vm: UtilityVm, request: str, settings: dict[str, Any]) -> None:
        namespace_id = str(settings.get("ID") or settings.get("Id") or "").lower()
        if request == "remove":
            vm.namespaces.discard(namespace_id)
            return
        net = self.networks(call.conn.profile)
        if namespace_id not in {n.lower() for n in net.namespaces}:
            raise Fail(ERROR_NOT_FOUND, f"HCN has no namespace {namespace_id!r} to make in the guest")
        vm.namespaces.add(namespace_id)

    def _pre_add(self, call: Call, vm: UtilityVm, settings: dict[str, Any]) -> None:
        """The guest's PreAdd of an adapter: the endpoint it will be (its HCN document)."""
        if str(settings.get("RequestType") or "") != "PreAdd":
            raise call.fail("INVALID_JSON", "a guest Network request alone is a PreAdd")
        endpoint = settings.get("Settings") or {}
        endpoint_id = str(endpoint.get("ID") or endpoint.get("Id") or "")
        self.networks(call.conn.profile).endpoint(endpoint_id)  # it must exist
        vm.pre_added[str(settings.get("AdapterId") or "").lower()] = endpoint_id.lower()

    def _adapter(self, call: Call, system: ComputeSystem, request: str, adapter_id: str,
                 settings: dict[str, Any]) -> None:
        vm = system.vm
        assert vm is not None
        adapter_id = adapter_id.lower()
        net = self.networks(call.conn.profile)
        if request == "remove":
            endpoint_id = vm.adapters.pop(adapter_id, None)
            if endpoint_id is not None:
                net.detach(endpoint_id, system.id)
            return
        endpoint_id = str(settings.get("EndpointId") or "").lower()
        if vm.pre_added.get(adapter_id) != endpoint_id:
            raise call.fail("INVALID_STATE", f"adapter {adapter_id} was not pre-added in the guest for endpoint "
                                             f"{endpoint_id}")
        endpoint = net.endpoint(endpoint_id)
        mac = str(settings.get("MacAddress") or "")
        if mac and endpoint.mac and mac.replace(":", "-").upper() != endpoint.mac.upper():
            raise Fail(E_INVALIDARG, f"MacAddress {mac} is not endpoint {endpoint_id}'s ({endpoint.mac})")
        net.attach(endpoint_id, system.id)
        vm.adapters[adapter_id] = endpoint_id

    def hand_over_network(self, call: Call, vm: ComputeSystem, container_id: str, namespace: str) -> None:
        """A hosted container's namespace: made in its VM's guest, its endpoints the VM's
        adapters; they are the container's from now on (its ipconfig shows them)."""
        assert vm.vm is not None
        if namespace.lower() not in vm.vm.namespaces:
            raise Fail(ERROR_NOT_FOUND, f"namespace {namespace} was not made in utility VM {vm.id}'s guest")
        net = self.networks(call.conn.profile)
        adapters = set(vm.vm.adapters.values())
        for endpoint_id in net.namespace(namespace).endpoints:
            if endpoint_id.lower() not in adapters:
                raise Fail(ERROR_NOT_FOUND, f"endpoint {endpoint_id} is not an adapter of utility VM {vm.id}")
            net.detach(endpoint_id, vm.id)
        net.attach_namespace(namespace, container_id)

    def _modify_share(self, vm: UtilityVm, request: str, settings: dict[str, Any]) -> None:
        name = str(settings.get("Name") or "")
        if not name:
            raise Fail(E_INVALIDARG, "a VSMB share needs a Name")
        if request == "remove":
            if vm.shares.pop(name, None) is None:
                raise Fail(ERROR_NOT_FOUND, f"no VSMB share {name!r}")
            vm.share_read_only.discard(name)
            return
        if name in vm.shares:
            raise Fail(ERROR_ALREADY_EXISTS, f"the VSMB share {name!r} already exists")
        host = _host_path(settings.get("Path"))
        if not host.exists():
            raise Fail(ERROR_PATH_NOT_FOUND, f"the VSMB share's folder {host} does not exist")
        vm.shares[name] = str(host)
        if (settings.get("Options") or {}).get("ReadOnly"):
            vm.share_read_only.add(name)

    def _modify_disk(self, vm: UtilityVm, request: str, settings: dict[str, Any], guest: dict[str, Any]) -> None:
        mount = (guest.get("Settings") or {}).get("ContainerPath") if guest else None
        if request == "remove":
            for key in [k for k in vm.disks if mount is None or k == _key(mount)]:
                self.storage.vm_disks.pop(vm.disks.pop(key), None)
            return
        disk = _host_path(settings.get("Path"))
        if str(settings.get("Type") or "VirtualDisk") != "VirtualDisk" or not disk.exists():
            raise Fail(ERROR_FILE_NOT_FOUND, f"the virtual disk {disk} does not exist")
        if not mount:
            raise Fail(E_INVALIDARG, "the disk has no GuestRequest ContainerPath to be mounted at in the guest")
        sandbox = disk.parent
        if self.storage.volume_for_layer(sandbox) is not None:
            raise Fail(0x80070020, f"the disk of sandbox {sandbox} is mounted on the host (ActivateLayer)")
        vm.disks[_key(mount)] = sandbox

    def _combine(self, call: Call, system: ComputeSystem, request: str, settings: dict[str, Any]) -> None:
        vm = system.vm
        assert vm is not None
        root = _key(settings.get("ContainerRootPath"))
        if request == "remove":
            vm.roots.pop(root, None)
            return
        sandbox = vm.disks.get(root)
        if sandbox is None:
            raise Fail(ERROR_PATH_NOT_FOUND, f"{settings.get('ContainerRootPath')!r} is no disk mounted in the guest")
        layers = [self.share_target(call, system, layer.get("Path"), layer.get("Id"))
                  for layer in settings.get("Layers") or [] if isinstance(layer, dict)]
        if not layers:
            raise Fail(E_INVALIDARG, "CombinedLayers needs the container's layers")
        vm.roots[root] = self.storage.attach_to_vm(sandbox, layers, system.id)

    def share_target(self, call: Call, system: ComputeSystem, guest_path: Any, layer_id: Any = None) -> Path:
        """The host folder behind a guest path ``\\\\?\\VMSMB\\VSMB-{...}\\<share>`` of this VM."""
        vm = system.vm
        assert vm is not None
        text = str(guest_path or "")
        if not text.lower().startswith(VSMB_PREFIX.lower()):
            raise Fail(ERROR_PATH_NOT_FOUND, f"{text!r} is not a VSMB path of utility VM {system.id}")
        name = text[len(VSMB_PREFIX):].split("\\", 1)[0]
        host = vm.shares.get(name)
        if host is None:
            raise Fail(ERROR_PATH_NOT_FOUND, f"utility VM {system.id} has no VSMB share {name!r}")
        if layer_id is not None:
            want = st.guid_text(st.name_to_guid(Path(host).name))
            if str(layer_id).lower().strip("{}") != want:
                raise call.fail("INVALID_LAYER", f"layer {host} has ID {layer_id!r}; NameToGuid of its folder is {want}")
        return Path(host)

    # -- schema v2: a container hosted by a VM -------------------------------------------------

    def hosted_root(self, call: Call, doc: dict[str, Any]) -> tuple[ComputeSystem, Path, list[Any]]:
        """For a Container with HostingSystemId: its VM (running), the folder behind its
        Storage.Path, and its mapped directories with host paths."""
        vm_id = str(doc.get("HostingSystemId") or "")
        with self.lock:
            vm = self.systems.get(vm_id.lower())
            if vm is None:
                raise call.fail("SYSTEM_NOT_FOUND", f"no compute system with id '{vm_id}' (HostingSystemId)")
            if vm.vm is None:
                raise call.fail("INVALID_JSON", f"HostingSystemId {vm_id} is a container, not a utility VM")
            if vm.state != "Running":
                raise call.fail("INVALID_STATE", f"the utility VM {vm_id} is {vm.state}, not running")
            container = doc.get("Container") or {}
            storage = container.get("Storage") or {}
            root = vm.vm.roots.get(_key(storage.get("Path")))
            if root is None:
                raise Fail(ERROR_PATH_NOT_FOUND, f"{storage.get('Path')!r} is no container root combined in utility VM "
                                                 f"{vm_id}")
            for layer in storage.get("Layers") or []:
                if isinstance(layer, dict):
                    self.share_target(call, vm, layer.get("Path"), layer.get("Id"))
            mapped = []
            for entry in container.get("MappedDirectories") or []:
                if not isinstance(entry, dict):
                    continue
                host = self.share_target(call, vm, entry.get("HostPath"))
                name = str(entry.get("HostPath"))[len(VSMB_PREFIX):].split("\\", 1)[0]
                mapped.append({"HostPath": str(host), "ContainerPath": entry.get("ContainerPath"),
                               "ReadOnly": bool(entry.get("ReadOnly")) or name in vm.vm.share_read_only})
            return vm, root, mapped

    def boots(self, system: ComputeSystem) -> bool:
        """Whether starting ``system`` boots a utility VM (a VM, or a v1 Hyper-V container)."""
        return system.vm is not None or (system.hyperv and system.host_vm is None)

    def boot(self) -> None:
        time.sleep(max(0.0, float(self.vm_boot_delay)))

    def hosted_by(self, vm: ComputeSystem) -> list[ComputeSystem]:
        with self.lock:
            return [s for s in self.systems.values() if s.host_vm is vm and s.state != "Stopped"]

    def vm_statistics(self, vm: ComputeSystem) -> dict[str, Any]:
        """A utility VM's statistics: its memory (all of it is the VM's), its guests' CPU time."""
        assert vm.vm is not None
        now = time.time()
        start = vm.started or vm.created
        runtime = {"TotalRuntime100ns": 0, "RuntimeUser100ns": 0, "RuntimeKernel100ns": 0}
        for hosted in self.hosted_by(vm):
            for key, value in hosted.statistics()["Processor"].items():
                runtime[key] += value
        size = vm.vm.memory_mb * 1024 * 1024
        return {
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "ContainerStartTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
            "Uptime100ns": int((now - start) * 10_000_000),
            "Memory": {"MemoryUsageCommitBytes": size, "MemoryUsageCommitPeakBytes": size,
                       "MemoryUsagePrivateWorkingSetBytes": size},
            "Processor": runtime,
            "Storage": {"ReadCountNormalized": 0, "ReadSizeBytes": 0, "WriteCountNormalized": 0, "WriteSizeBytes": 0},
        }

    def release_vm(self, system: ComputeSystem) -> None:
        """A stopped utility VM (or v1 Hyper-V container) lets go of the disks attached to it."""
        with self.lock:
            self.storage.detach_from_vms(system.id)

    def vm_details(self, system: ComputeSystem) -> Optional[dict[str, Any]]:
        if system.vm is None:
            return None
        return {"memory_mb": system.vm.memory_mb, "processors": system.vm.processors,
                "shares": dict(system.vm.shares), "disks": {k: str(v) for k, v in system.vm.disks.items()},
                "roots": sorted(system.vm.roots), "hosted": sorted(s.id for s in self.hosted_by(system))}
