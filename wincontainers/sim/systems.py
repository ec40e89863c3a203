"""Compute systems of the simulated service: create (documents of schema v1 and v2, layers
and their build, mapped folders), start, pause, resume, shutdown and terminate, and how a system
stops (its processes killed, its networks told, SystemExited sent).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import signal
import time
from pathlib import Path
from typing import Any, Optional

from wincontainers.sim import storage as st
from wincontainers.sim.calls import E_INVALIDARG, Call, get_key, loads_document
from wincontainers.sim.faults import Fail
from wincontainers.sim.model import ComputeSystem, GuestPids
from wincontainers.sim.profiles import PROFILES
from wincontainers.sim.shell.textio import CommandError
from wincontainers.sim.shell.winpaths import ContainerFs
from wincontainers.sim.vms import UtilityVms
from wincontainers.sim.wire import dumps

__all__ = ["Systems"]


class Systems(UtilityVms):
    """The compute system lifecycle."""

    def find_system(self, call: Call, system_id: Optional[str]) -> ComputeSystem:
        with self.lock:
            system = self.systems.get((system_id or "").lower())
            if system is None:
                raise call.fail("SYSTEM_NOT_FOUND", f"no compute system with id '{system_id}'")
            return system

    def create_system(self, call: Call, system_id: Optional[str], config_text: Optional[str]) -> ComputeSystem:
        if not system_id:
            raise Fail(E_INVALIDARG, "the compute system id is empty")
        doc = loads_document(config_text, call, "configuration")
        if not isinstance(doc, dict):
            raise call.fail("INVALID_JSON", "the configuration document is not a JSON object")
        profile = PROFILES[call.conn.profile]
        schema = 2 if get_key(doc, "SchemaVersion") is not None else 1
        if schema == 2 and (1 if call.gen != 3 else 2) == 1 and (2, 1) not in profile.schema_versions:
            raise call.fail("INVALID_JSON", "schema 2 documents need Windows Server 2019 or later")
        if schema == 1 and call.gen == 3:
            raise call.fail("INVALID_JSON", "computecore.dll takes schema 2 documents (SchemaVersion 2.1)")
        host_vm: Optional[ComputeSystem] = None
        hyperv_mapped: Optional[list[Any]] = None
        if schema == 1:
            spec = self._parse_v1(call, doc)
            endpoints = [str(e) for e in get_key(doc, "EndpointList", default=[]) or []]
            devices = [d for d in get_key(doc, "Devices", default=[]) or []
                       if isinstance(d, dict) and str(get_key(d, "DeviceType", default="")).lower() == "network"]
            namespace = None
            hyperv = bool(get_key(doc, "HvPartition", default=False))
        else:
            version = doc.get("SchemaVersion") or {}
            if not isinstance(version, dict) or version.get("Major") != 2:
                raise call.fail("INVALID_JSON", "SchemaVersion must be {Major: 2, Minor: 1}")
            if "VirtualMachine" in doc:
                return self.create_vm(call, system_id, doc)  # (it checks the id is new)
            spec = self._parse_v2(call, doc)
            endpoints, devices = [], []
            namespace = ((doc.get("Container") or {}).get("Networking") or {}).get("Namespace")
            hyperv = "HostingSystemId" in doc
        volume_path, layers, hostname, owner, name, terminate_on_close, mapped = spec
        with self.lock:
            if system_id.lower() in self.systems:
                raise call.fail("ALREADY_EXISTS", f"a compute system with id {system_id!r} already exists")
        for layer in layers if not (hyperv and schema == 2) else ():  # (a hosted one's are the VM's shares)
            self._check_layer_ref(call, layer)
        if hyperv and schema == 1:
            root = self.hyperv_v1_root(call, system_id, doc, [Path(p) for _, p in layers])
        elif hyperv:
            host_vm, root, hyperv_mapped = self.hosted_root(call, doc)
        with self.lock:
            if not hyperv:
                vol = self.storage.volume_from_path(volume_path or "")
                if vol is None:
                    raise Fail(0x80070003, f"volume {volume_path!r} is not an activated sandbox volume")
                if not vol.prepared:
                    raise call.fail("INVALID_LAYER", f"volume {volume_path!r} is not prepared (call PrepareLayer first)")
                if layers:
                    self._check_image_build(call, profile, Path(layers[-1][1]))
                if any(s.volume_guid == vol.guid and s.state != "Stopped" for s in self.systems.values()):
                    raise Fail(0x80070020, f"volume {volume_path!r} is in use by another compute system")
                root, guid = vol.content, vol.guid
            else:
                guid = ""
            system = ComputeSystem(
                id=system_id,
                owner=owner or "",
                name=name or system_id,
                schema=schema,
                config=doc,
                root=root,
                volume_guid=guid,
                hostname=hostname or system_id[:15],
                terminate_on_last_close=terminate_on_close,
                created_by=call.pid,
                hyperv=hyperv,
                host_vm=host_vm,
                pids=(host_vm.pids if host_vm is not None else GuestPids()) if hyperv else None,
            )
            try:
                if host_vm is not None and namespace:  # made in its VM's guest: handed over
                    self.hand_over_network(call, host_vm, system_id, str(namespace))
                else:
                    self.attach_networks(call, system_id, endpoints, devices, namespace)
            except Fail:
                if host_vm is None and hyperv:
                    self.storage.detach_from_vms(system_id)
                raise
            self._map_directories(system, mapped if hyperv_mapped is None else hyperv_mapped)
            self.systems[system_id.lower()] = system
            return system

    def _parse_v1(self, call: Call, doc: dict[str, Any]) -> tuple[Any, ...]:
        system_type = get_key(doc, "SystemType", default="Container")
        if str(system_type).lower() != "container":
            raise call.fail("INVALID_JSON", f"SystemType {system_type!r}: schema v1 documents describe containers")
        layers = get_key(doc, "Layers", default=[]) or []
        if not isinstance(layers, list):
            raise call.fail("INVALID_JSON", "Layers must be an array")
        return (
            get_key(doc, "VolumePath"),
            [(get_key(layer, "ID", "Id"), get_key(layer, "Path")) for layer in layers],
            get_key(doc, "HostName"),
            get_key(doc, "Owner"),
            get_key(doc, "Name"),
            bool(get_key(doc, "TerminateOnLastHandleClosed", default=False)),
            get_key(doc, "MappedDirectories", default=[]) or [],
        )

    def _parse_v2(self, call: Call, doc: dict[str, Any]) -> tuple[Any, ...]:
        container = doc.get("Container")
        if not isinstance(container, dict):
            raise call.fail("INVALID_JSON", "a schema 2 document needs a Container object")
        storage = container.get("Storage") or {}
        layers = storage.get("Layers") or []
        return (
            storage.get("Path"),
            [(layer.get("Id"), layer.get("Path")) for layer in layers if isinstance(layer, dict)],
            (container.get("GuestOs") or {}).get("HostName"),
            doc.get("Owner"),
            None,
            bool(doc.get("ShouldTerminateOnLastHandleClosed", False)),
            container.get("MappedDirectories") or [],
        )

    def _check_layer_ref(self, call: Call, layer: tuple[Any, Any]) -> None:
        guid, path = layer
        if not path or not Path(path).is_dir():
            raise Fail(0x80070003, f"layer {path!r} does not exist")
        want = st.guid_text(st.name_to_guid(Path(path).name))
        if str(guid or "").lower().strip("{}") != want:
            raise call.fail("INVALID_LAYER", f"layer {path} has ID {guid!r}; NameToGuid of its folder name is {want}")

    def _check_image_build(self, call: Call, profile: Any, base: Path) -> None:
        """Process isolation shares the host's kernel: the base layer's Windows build (its
        SOFTWARE hive, or a central-store folder name) must be the host's. Revisions may differ.
        Hyper-V isolation does not check: the utility VM runs the image's own kernel."""
        from wincontainers.sim.layerio import layer_build

        build = layer_build(base) or st.base_image_build(base)
        if build is not None and build != profile.build:
            raise call.fail("IMAGE_MISMATCH", f"The container operating system does not match the host operating "
                                              f"system. (image build {build}, host build {profile.build})")

    def _map_directories(self, system: ComputeSystem, mapped: Any) -> None:
        fs = ContainerFs(system.root)
        for entry in mapped if isinstance(mapped, list) else []:
            host = get_key(entry, "HostPath")
            inside = get_key(entry, "ContainerPath")
            if not host or not inside:
                continue
            try:
                target = fs.host(str(inside), follow_last=False)
            except CommandError:
                continue
            system.mounts[os.path.relpath(target, system.root).replace(os.sep, "/")] = str(host)
            if get_key(entry, "ReadOnly", default=False):
                system.read_only_mounts.add(str(host))
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(host, target)

    def start_system(self, call: Call, system: ComputeSystem) -> None:
        """Start a system; one that boots a utility VM takes ``vm_boot_delay`` (see
        :meth:`check_start` and :meth:`finish_start`, which the handlers call apart then)."""
        self.check_start(call, system)
        if self.boots(system):
            self.boot()
        self.finish_start(call, system)

    def check_start(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state == "Running":
                raise call.fail("INVALID_STATE", "the compute system is already running")
            if system.state != "Created":
                raise call.fail("INVALID_STATE", f"cannot start a compute system that is {system.state}")
            vm = system.host_vm
            if vm is not None and vm.state != "Running":
                raise call.fail("INVALID_STATE", f"its utility VM {vm.id} is {vm.state}, not running")

    def finish_start(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state != "Created":
                raise call.fail("TERMINATED_DURING_START", f"the compute system is {system.state} (stopped while "
                                                           f"it booted)")
            system.state = "Running"
            system.started = time.time()

    def pause_system(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state != "Running":
                raise call.fail("INVALID_STATE", f"cannot pause a compute system that is {system.state}")
            system.signal_all(signal.SIGSTOP)
            system.state = "Paused"

    def resume_system(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state != "Paused":
                raise call.fail("INVALID_STATE", f"cannot resume a compute system that is {system.state}")
            system.signal_all(signal.SIGCONT)
            system.state = "Running"

    def begin_shutdown(self, call: Call, system: ComputeSystem) -> bool:
        """Ask the processes to exit; True when the system is already down. A utility VM going
        down takes the containers it hosts with it."""
        if system.vm is not None:
            with self.lock:
                if system.state == "Stopped":
                    raise call.fail("ALREADY_STOPPED", "the compute system is not running")
            self.kill_system(system, "GracefulExit")
            return True
        with self.lock:
            if system.state == "Stopped":
                raise call.fail("ALREADY_STOPPED", "the compute system is not running")
            if not system.sessions():
                self.mark_stopped(system, "GracefulExit")
                return True
            if not system.ignore_shutdown:
                system.signal_all(signal.SIGTERM)
                system.signal_all(signal.SIGCONT)
            system.shutting_down = True
            return False

    def wait_stopped(self, system: ComputeSystem, timeout: Optional[float]) -> bool:
        """Wait until every process of the system has exited, then mark it stopped (graceful)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if system.stopped.is_set():
                return True
            with self.lock:
                if not system.sessions() and not system.member_pids():
                    self.mark_stopped(system, "GracefulExit")
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            system.stopped.wait(0.02)

    def terminate_system(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state == "Stopped":
                raise call.fail("ALREADY_STOPPED", "the compute system is not running")
        self.kill_system(system, "ForcedExit")

    def kill_system(self, system: ComputeSystem, exit_type: str) -> None:
        for hosted in self.hosted_by(system) if system.vm is not None else ():
            self.kill_system(hosted, "UnexpectedExit")
        with self.lock:
            for proc in system.processes.values():
                if not proc.exited.is_set():
                    proc.killed_by_terminate = True
            system.signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                if all(p.exited.is_set() for p in system.processes.values()):
                    break
            time.sleep(0.005)
        with self.lock:
            self.mark_stopped(system, exit_type)

    def mark_stopped(self, system: ComputeSystem, exit_type: str) -> None:
        with self.lock:
            if system.state == "Stopped":
                return
            system.state = "Stopped"
            system.exit_type = exit_type
            system.shutting_down = False
            for net in self.host_networks.values():
                net.system_stopped(system.id)
            for proc in system.processes.values():
                proc.close_kept()
            zygote, system.zygote = system.zygote, None
            if system.hyperv or system.vm is not None:
                self.release_vm(system)
            handles = list(system.handles)
            if not handles:
                self.systems.pop(system.id.lower(), None)
            system.stopped.set()
        if zygote is not None:
            zygote.close()
        status = dumps({"Status": 0, "ExitType": exit_type})
        self.notify(handles, "SystemExited", 0, status)
