"""Hyper-V isolation through computecore (1809+): a utility VM made for one container, and the
container hosted in it, as one compute system for everything above the driver.

The order is hcsshim's (internal/uvm create_wcow.go, internal/layers wcow_mount.go,
internal/hcsoci hcsdoc_wcow.go): the VM's scratch disk is a copy of the image's
``UtilityVM\\SystemTemplate.vhdx`` in ``<sandbox>\\vm`` (granted to the VM), the VM is created
from the image's ``UtilityVM`` and started; the container's read-only layers (and mapped
folders) are added as VSMB shares, its sandbox disk on SCSI, mounted in the guest, and the
guest combines them; a network namespace and its endpoints are added to the VM (the namespace
in the guest, each endpoint as a network adapter); then the container is created with
``HostingSystemId``. Each step is
undone, newest first, when a later one fails, so a failure leaves no VM, no container and no
scratch disk.

:class:`HostedSystem` stops the container, then the VM; the VM of a container that has ended
is stopped when the container's handle is closed. A process killed in between leaves a VM
whose id (``<container id>@vm``) names its container: the owner clean-up finds it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from wincontainers import errors
from wincontainers.aio import Signal
from wincontainers.driver import documents
from wincontainers._native.layerfs import remove_tree
from wincontainers._native.win32 import Win32Error, long_path
from wincontainers.driver.base import ExitStatus, ProcessRef, ProcessSpec, SystemSpec
from wincontainers.driver.common import check
from wincontainers.schema import v2

if TYPE_CHECKING:
    from wincontainers.driver.gen3 import Gen3Driver, Gen3System

log = logging.getLogger("wincontainers.driver.hosted")

__all__ = ["HostedSystem", "create_hosted", "vm_scratch_folder"]

ERROR_FILE_NOT_FOUND = 0x80070002


def vm_scratch_folder(sandbox: str) -> str:
    """Where a hosted container's VM keeps its scratch disk: ``<sandbox>\\vm`` (hcsshim's)."""
    return os.path.join(sandbox, "vm")


def create_hosted(driver: "Gen3Driver", spec: SystemSpec, timeout: Optional[float]) -> "HostedSystem":
    """Make the utility VM, share the container's layers into it, and create the container."""
    if not spec.utility_vm:
        raise errors.BadInput("a Hyper-V container needs its image's UtilityVM folder")
    undo: list[tuple[str, Any]] = []
    vm: Optional["Gen3System"] = None
    container: Optional["Gen3System"] = None
    try:
        scratch_dir = vm_scratch_folder(spec.layer_folder)
        scratch = os.path.join(scratch_dir, "sandbox.vhdx")
        win32 = driver.binding.win32
        win32.create_directory(long_path(scratch_dir), exist_ok=True)
        undo.append(("the utility VM's scratch folder", lambda: remove_tree(win32, scratch_dir)))
        template = os.path.join(spec.utility_vm, "SystemTemplate.vhdx")
        try:
            if win32.attributes(long_path(scratch)) is None:  # a restarted container's VM keeps its scratch
                win32.copy_file(long_path(template), long_path(scratch))
        except Win32Error as exc:
            raise errors.NotFound(
                "create", subject=errors.subject_for("container", spec.id),
                message=f"the utility VM image {spec.utility_vm} has no usable SystemTemplate.vhdx ({exc.system_message})",
                hint="the image's base layer must have been processed (ProcessUtilityImage) when it was imported",
            ) from exc
        hr = driver.vm.call("GrantVmAccess", spec.vm_id, scratch)[0]
        check("GrantVmAccess", hr, subject=errors.subject_for("container", spec.id), ids=[spec.vm_id, scratch])
        processors = spec.cpu_count or min(documents.UVM_PROCESSORS, os.cpu_count() or 1)
        vm = driver.create_plain(spec.vm_id, documents.utility_vm_v2(spec, scratch, processors).dumps(), timeout,
                                 kind="utility VM")
        undo.append((f"the utility VM {spec.vm_id}", lambda: _end(vm)))
        vm.start(timeout)
        layers = []
        for n, layer in enumerate(spec.layers):
            name = f"layer{n}"
            vm.modify(documents.add_share_request(name, layer.path, read_only=True).to_json())
            layers.append(v2.Layer(id=str(layer.id), path=documents.vsmb_guest_path(name)))
        mapped = []
        for n, m in enumerate(spec.mapped_directories):
            name = f"mount{n}"
            vm.modify(documents.add_share_request(name, m.host_path, read_only=m.read_only).to_json())
            mapped.append(v2.MappedDirectory(host_path=documents.vsmb_guest_path(name), container_path=m.container_path,
                                             read_only=m.read_only or None))
        if spec.network_namespace:
            _add_network(driver, vm, spec.network_namespace, spec.endpoints)
        vm.modify(documents.add_disk_request(os.path.join(spec.layer_folder, "sandbox.vhdx")).to_json())
        vm.modify(documents.combine_layers_request(layers).to_json())
        container = driver.create_plain(spec.id, documents.hosted_container_v2(spec, layers, mapped).dumps(), timeout,
                                        kind="container")
        return HostedSystem(container, vm)
    except BaseException:
        for what, step in reversed(undo):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - what could not be undone is said, not dropped
                log.warning("could not remove %s after a failed create: %s", what, exc)
        raise


def _add_network(driver: "Gen3Driver", vm: "Gen3System", namespace: str, endpoints: Sequence[str]) -> None:
    """The container's namespace into the guest, and each of its endpoints as a network adapter
    of the VM (hcsshim's AddNetNS and addNIC); they go with the VM."""
    from wincontainers.driver.hcn import HcnNetworking

    hcn = HcnNetworking(driver.binding.computenetwork)
    vm.modify(documents.add_namespace_request(hcn.namespace_document(namespace)).to_json())
    for endpoint_id in endpoints:
        for request in documents.add_adapter_requests(str(uuid.uuid4()), hcn.get_endpoint(endpoint_id).raw):
            vm.modify(request.to_json())


def _end(system: "Gen3System") -> None:
    try:
        system.terminate(30)
    except (errors.AlreadyStopped, errors.NotFound, errors.InvalidState):
        pass
    finally:
        system.close()


class HostedSystem:
    """A container with its own utility VM: the container is what is asked, the VM follows it
    (stopped after it; its statistics are the VM's)."""

    def __init__(self, container: "Gen3System", vm: "Gen3System") -> None:
        self.container = container
        self.vm = vm
        self.id = container.id

    def __repr__(self) -> str:
        return f"<HostedSystem {self.id} in {self.vm.id}>"

    def start(self, timeout: Optional[float]) -> None:
        self.container.start(timeout)

    def shutdown(self, timeout: Optional[float]) -> bool:
        done = self.container.shutdown(timeout)
        if done:
            self._stop_vm(timeout)
        return done

    def terminate(self, timeout: Optional[float]) -> None:
        try:
            self.container.terminate(timeout)
        finally:
            self._stop_vm(timeout)

    def _stop_vm(self, timeout: Optional[float]) -> None:
        with contextlib.suppress(errors.AlreadyStopped, errors.NotFound):
            self.vm.terminate(timeout if timeout is None else max(timeout, 5.0))

    def pause(self, timeout: Optional[float]) -> None:
        self.container.pause(timeout)

    def resume(self, timeout: Optional[float]) -> None:
        self.container.resume(timeout)

    def properties(self, types: Sequence[str] = ()) -> dict[str, Any]:
        props = self.container.properties([t for t in types if t != "Statistics"] or ())
        if "Statistics" in types:  # the VM's: its memory is the container's limit, its CPU time its guests'
            props["Statistics"] = self.vm.properties(["Statistics"]).get("Statistics") or {}
        return props

    def modify(self, document: Mapping[str, Any]) -> None:
        self.container.modify(document)

    def wait_exited(self, timeout: Optional[float]) -> Optional[ExitStatus]:
        return self.container.wait_exited(timeout)

    def exit_signal(self) -> Signal:
        return self.container.exit_signal()

    def probe_exit(self) -> bool:
        return self.container.probe_exit()

    def create_process(self, spec: ProcessSpec) -> ProcessRef:
        return self.container.create_process(spec)

    def open_process(self, pid: int) -> ProcessRef:
        return self.container.open_process(pid)

    def process_list(self) -> list[dict[str, Any]]:
        return self.container.process_list()

    def close(self) -> None:
        """Close both handles; the VM of a container that has ended is stopped first."""
        try:
            if self.container.exit_signal().is_set() or self.container.probe_exit():
                self._stop_vm(30)
        except errors.HcsError as exc:
            log.warning("could not stop the utility VM %s of ended container %s: %s", self.vm.id, self.id[:12], exc)
        finally:
            try:
                self.container.close()
            finally:
                self.vm.close()

