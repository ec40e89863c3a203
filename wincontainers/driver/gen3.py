"""Generation 3: computecore's operation API (Windows 10 1809 / Server 2019 and later).

Each asynchronous call gets its own HCS_OPERATION: create it, call, wait with
``HcsWaitForOperationResult`` bounded by the timeout (cancel on timeout), always close it
(hcs-api.md 4.1). Exits arrive as events on the callback set right after create/open; waits for
them probe the state now and then, so a lost event cannot hang a caller.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from wincontainers import errors
from wincontainers._native.library import Binding, NativeDll, ProcessInformation
from wincontainers.driver import documents
from wincontainers.driver.base import (
    HYPERV_ROUTES,
    Capabilities,
    LayerRef,
    ProcessSpec,
    SystemRef,
    SystemSpec,
    timeout_ms,
    utility_vm_id,
)
from wincontainers.driver.common import ALREADY_STOPPED, GONE, check, failed, parse_json
from wincontainers.driver.events import REGISTRY, Notice, event_callback
from wincontainers.driver.layers import VmcomputeLayers
from wincontainers.driver.watched import WatchedProcess, WatchedSystem, close_stdio
from wincontainers.schema import common

if TYPE_CHECKING:
    from wincontainers.driver.gen2 import Gen2Driver

__all__ = ["Gen3Driver", "Gen3System", "Gen3Process", "Operation"]

GENERIC_ALL = 0x10000000
HCS_E_OPERATION_TIMEOUT = 0x80370118
HCS_E_OPERATION_PENDING = 0x80370117
E_ACCESSDENIED = 0x80070005
INVALID_STATE = 0x80370105
#: the Hyper-V route when the caller names none (see create_system)
HYPERV_DEFAULT = "vmcompute"


class Operation:
    """One HCS_OPERATION: created per call, always closed."""

    def __init__(self, cc: NativeDll) -> None:
        self.cc = cc
        handle = cc.call("HcsCreateOperation", None, None)[0]
        if handle is None:
            raise errors.HcsError("HcsCreateOperation", 0x8007000E, message="HCS could not create an operation")
        self.handle: Any = handle

    def __enter__(self) -> "Operation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.cc.call("HcsCloseOperation", handle)

    def poll(self) -> tuple[int, Optional[str]]:
        """(HRESULT, result document) without waiting; HCS_E_OPERATION_PENDING while it runs."""
        hr, doc = self.cc.call("HcsGetOperationResult", self.handle)
        return int(hr), doc

    def wait(
        self, timeout: Optional[float], operation: str, subject: Optional[str], ids: Sequence[str] = ()
    ) -> Optional[str]:
        hr, doc = self.cc.call("HcsWaitForOperationResult", self.handle, timeout_ms(timeout))
        self._check(hr, doc, timeout, operation, subject, ids)
        return doc  # type: ignore[no-any-return]

    def wait_with_info(
        self, timeout: Optional[float], operation: str, subject: Optional[str], ids: Sequence[str] = ()
    ) -> tuple[Optional[str], ProcessInformation]:
        hr, info, doc = self.cc.call("HcsWaitForOperationResultAndProcessInfo", self.handle, timeout_ms(timeout))
        if failed(hr):
            close_stdio(info)
        self._check(hr, doc, timeout, operation, subject, ids)
        return doc, info

    def _check(self, hr: int, doc: Optional[str], timeout: Optional[float], operation: str,
               subject: Optional[str], ids: Sequence[str]) -> None:
        if hr == HCS_E_OPERATION_TIMEOUT:
            self.cc.call("HcsCancelOperation", self.handle)
            raise errors.HcsTimeout(operation, hr, subject=subject, ids=ids,
                                    message=f"the operation did not complete within {timeout:g} s")
        check(operation, hr, subject=subject, ids=ids, result=doc)

    def failure(self, operation: str, hr: int, subject: Optional[str], ids: Sequence[str] = ()) -> errors.HcsError:
        """The error for a call that failed outright, with the operation's result document if any."""
        doc = None
        try:
            result_hr, doc = self.poll()
        except errors.HcsError:
            pass
        return errors.from_hresult(operation, hr, subject=subject, ids=ids, result=doc)


class Gen3Driver(VmcomputeLayers):
    """API generation 3; the layer calls of process isolation come from VmcomputeLayers."""

    generation = 3
    capabilities = Capabilities(lists_systems=True, reports_state=True, statistics=True,
                                hyperv_routes=HYPERV_ROUTES)

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding, pass_parent_id=False)
        self.cc = binding.computecore
        self.cs = binding.computestorage
        self.callback = event_callback()
        self._v1: Optional["Gen2Driver"] = None

    def __repr__(self) -> str:
        return f"<Gen3Driver {self.binding.system_dir}>"

    def op(self) -> Operation:
        return Operation(self.cc)

    def create_system(self, spec: SystemSpec, timeout: Optional[float]) -> SystemRef:
        """A process-isolated container (schema v2); a Hyper-V one through the route asked:
        vmcompute's schema v1 ``HvPartition`` (the default: HCS makes and ends the VM with the
        container, and networks attach as for process isolation, as Docker's own engine does on
        Server 2019) or a utility VM of computecore's own (:mod:`~wincontainers.driver.hosted`,
        containerd's way: the VM's memory and processors are explicit)."""
        if spec.hyperv:
            if (spec.hyperv_route or HYPERV_DEFAULT) == "computecore":
                from wincontainers.driver.hosted import create_hosted

                return create_hosted(self, spec, timeout)
            return self._vmcompute().create_system(spec, timeout)
        return self.create_plain(spec.id, documents.container_v2(spec).dumps(), timeout)

    def _vmcompute(self) -> "Gen2Driver":
        """vmcompute's gen2 driver, for the schema v1 route of Hyper-V isolation."""
        if self._v1 is None:
            from wincontainers.driver.gen2 import Gen2Driver

            self._v1 = Gen2Driver(self.binding)
        return self._v1

    def create_plain(self, system_id: str, doc: str, timeout: Optional[float], *,
                     kind: str = "container") -> "Gen3System":
        """HcsCreateComputeSystem of one document, waited for; a system half made is ended."""
        subject = errors.subject_for(kind, system_id)
        with self.op() as op:
            hr, handle = self.cc.call("HcsCreateComputeSystem", system_id, doc, op.handle, None)
            if failed(hr):
                if handle is not None:
                    self.cc.call("HcsCloseComputeSystem", handle)
                raise op.failure("HcsCreateComputeSystem", hr, subject, [system_id])
            try:
                op.wait(timeout, "HcsCreateComputeSystem", subject, [system_id])
            except BaseException:
                if handle is not None:
                    _terminate_and_close(self, handle)
                raise
        return Gen3System(self, system_id, handle, terminate_on_failure=True, kind=kind)

    def open_system(self, system_id: str, *, hosted: bool = False) -> SystemRef:
        system = self._open(system_id, "container")
        if not hosted:
            return system
        from wincontainers.driver.hosted import HostedSystem

        try:
            vm = self._open(utility_vm_id(system_id), "utility VM")
        except BaseException:
            system.close()
            raise
        return HostedSystem(system, vm)

    def _open(self, system_id: str, kind: str) -> "Gen3System":
        hr, handle = self.cc.call("HcsOpenComputeSystem", system_id, GENERIC_ALL)
        check("HcsOpenComputeSystem", hr, subject=errors.subject_for(kind, system_id), ids=[system_id])
        return Gen3System(self, system_id, handle, kind=kind)

    def list_systems(self, owner: Optional[str] = None) -> list[dict[str, Any]]:
        query = common.EnumerationQuery(owners=[owner] if owner else None).dumps()
        with self.op() as op:
            hr = self.cc.call("HcsEnumerateComputeSystems", query, op.handle)[0]
            if failed(hr):
                raise op.failure("HcsEnumerateComputeSystems", hr, None)
            doc = op.wait(60, "HcsEnumerateComputeSystems", None)
        return list(parse_json(doc, "HcsEnumerateComputeSystems") or [])

    def service_properties(self) -> dict[str, Any]:
        hr, result = self.cc.call("HcsGetServiceProperties", None)
        check("HcsGetServiceProperties", hr, result=result)
        return dict(parse_json(result, "HcsGetServiceProperties") or {})

    # -- layers: vmcompute's API (VmcomputeLayers), except that computestorage destroys ----

    def import_layer(self, path: str, folder: str, parents: Sequence[LayerRef]) -> None:
        """HcsImportLayer (computestorage) with the parents as LayerData."""
        hr = self.cs.call("HcsImportLayer", path, folder, documents.layer_data(parents).dumps())[0]
        check("HcsImportLayer", hr, subject=errors.subject_for("layer", path), ids=[path, folder])

    def export_layer(self, path: str, folder: str, parents: Sequence[LayerRef], writable: bool = False) -> None:
        """HcsExportLayer; a sandbox is exported as a writable layer."""
        options = json.dumps({"IsWritableLayer": writable})
        hr = self.cs.call("HcsExportLayer", path, folder, documents.layer_data(parents).dumps(), options)[0]
        check("HcsExportLayer", hr, subject=errors.subject_for("layer", path), ids=[path, folder])

    def destroy_layer(self, path: str) -> None:
        hr = self.cs.call("HcsDestroyLayer", path)[0]
        check("HcsDestroyLayer", hr, subject=errors.subject_for("layer", path), ids=[path])

    def close(self) -> None:
        pass


def _terminate_and_close(driver: Gen3Driver, handle: Any) -> None:
    try:
        with driver.op() as op:
            if not failed(driver.cc.call("HcsTerminateComputeSystem", handle, op.handle, None)[0]):
                driver.cc.call("HcsWaitForOperationResult", op.handle, 30000)
    finally:
        driver.cc.call("HcsCloseComputeSystem", handle)


class Gen3System(WatchedSystem):
    """An open HCS_SYSTEM with its event callback."""

    def __init__(self, driver: Gen3Driver, system_id: str, handle: Any, *, terminate_on_failure: bool = False,
                 kind: str = "container") -> None:
        self.driver = driver
        self.cc = driver.cc
        self.id = system_id
        super().__init__(errors.subject_for(kind, system_id))
        self._handle = handle
        self._lock = threading.RLock()
        self._processes: "weakref.WeakSet[Gen3Process]" = weakref.WeakSet()
        hr = self.cc.call("HcsSetComputeSystemCallback", handle, 0, Binding.context(self.token), driver.callback)[0]
        if failed(hr):
            REGISTRY.remove(self.token)
            self._handle = None
            if terminate_on_failure:  # a system we just created must not outlive this failure
                _terminate_and_close(driver, handle)
            else:
                self.cc.call("HcsCloseComputeSystem", handle)
            check("HcsSetComputeSystemCallback", hr, subject=self.subject, ids=[system_id])

    def __repr__(self) -> str:
        return f"<Gen3System {self.id} {'closed' if self._handle is None else 'open'}>"

    def _h(self, fn: str) -> Any:
        if self._handle is None:
            raise errors.InvalidState(fn, 0x80070006, subject=self.subject, message="the handle is closed")
        return self._handle

    def _run(self, fn: str, timeout: Optional[float], *args: Any) -> Optional[str]:
        """Call ``fn(system, op, *args)`` and wait for its operation."""
        with self._lock:
            handle = self._h(fn)
            with self.driver.op() as op:
                hr = self.cc.call(fn, handle, op.handle, *args)[0]
                if failed(hr):
                    raise op.failure(fn, hr, self.subject, [self.id])
                return op.wait(timeout, fn, self.subject, [self.id])

    def start(self, timeout: Optional[float]) -> None:
        self._run("HcsStartComputeSystem", timeout, None)

    def pause(self, timeout: Optional[float]) -> None:
        self._run("HcsPauseComputeSystem", timeout, None)

    def resume(self, timeout: Optional[float]) -> None:
        self._run("HcsResumeComputeSystem", timeout, None)

    def _stop(self, fn: str, timeout: Optional[float]) -> bool:
        """Submit shutdown/terminate, then wait for SystemExited (or the operation's failure)."""
        with self._lock:
            handle = self._h(fn)
            op = self.driver.op()
        try:
            hr = self.cc.call(fn, handle, op.handle, None)[0]
            if hr in ALREADY_STOPPED or hr in GONE:
                return True
            if failed(hr):
                raise op.failure(fn, hr, self.subject, [self.id])

            def probe() -> Optional[Notice]:
                result_hr, doc = op.poll()
                if result_hr == HCS_E_OPERATION_PENDING:
                    return self._probe_exited()
                if result_hr in ALREADY_STOPPED or result_hr in GONE or not failed(result_hr):
                    return self._probe_exited() or Notice("SystemExited", synthesized=True)
                raise errors.from_hresult(fn, result_hr, subject=self.subject, ids=[self.id], result=doc)

            try:
                self.sink.wait("SystemExited", timeout, operation=fn, subject=self.subject, probe=probe)
            except errors.HcsTimeout:
                self.cc.call("HcsCancelOperation", op.handle)
                return False
            return True
        finally:
            op.close()

    def shutdown(self, timeout: Optional[float]) -> bool:
        return self._stop("HcsShutDownComputeSystem", timeout)

    def terminate(self, timeout: Optional[float]) -> None:
        if not self._stop("HcsTerminateComputeSystem", timeout):
            raise errors.HcsTimeout("HcsTerminateComputeSystem", 0x80370118, subject=self.subject, ids=[self.id],
                                    message=f"the container did not exit within {timeout} s of terminate")

    def properties(self, types: Sequence[str] = ()) -> dict[str, Any]:
        query = common.PropertyQuery(property_types=list(types)).dumps() if types else None
        doc = self._run("HcsGetComputeSystemProperties", 60, query)
        return dict(parse_json(doc, "HcsGetComputeSystemProperties") or {})

    def process_list(self) -> list[dict[str, Any]]:
        return list(self.properties(["ProcessList"]).get("ProcessList") or [])

    def modify(self, document: Mapping[str, Any]) -> None:
        self._run("HcsModifyComputeSystem", 60, json.dumps(document), None)

    def create_process(self, spec: ProcessSpec) -> "Gen3Process":
        params = documents.process_v2(spec).dumps()
        with self._lock:
            handle = self._h("HcsCreateProcess")
            with self.driver.op() as op:
                hr, phandle = self.cc.call("HcsCreateProcess", handle, params, op.handle, None)
                if failed(hr):
                    if phandle is not None:
                        self.cc.call("HcsCloseProcess", phandle)
                    raise op.failure("HcsCreateProcess", hr, self.subject, [self.id])
                try:
                    _doc, info = op.wait_with_info(60, "HcsCreateProcess", self.subject, [self.id])
                except BaseException:
                    if phandle is not None:
                        self.cc.call("HcsCloseProcess", phandle)
                    raise
        proc = Gen3Process(self, info.process_id, phandle, info)
        self._processes.add(proc)
        return proc

    def open_process(self, pid: int) -> "Gen3Process":
        with self._lock:
            hr, phandle = self.cc.call("HcsOpenProcess", self._h("HcsOpenProcess"), pid, GENERIC_ALL)
        check("HcsOpenProcess", hr, subject=f"process {pid} in {self.subject}", ids=[self.id])
        proc = Gen3Process(self, pid, phandle, None)
        self._processes.add(proc)
        return proc

    def close(self) -> None:
        """Close processes, then the system handle; no event fires after close returns."""
        with self._lock:
            if self._handle is None:
                return
            for proc in list(self._processes):
                proc.close()
            handle, self._handle = self._handle, None
            self.cc.call("HcsCloseComputeSystem", handle)
            REGISTRY.remove(self.token)


class Gen3Process(WatchedProcess):
    """An open HCS_PROCESS with its event callback and (until taken) its std handles."""

    def __init__(self, system: Gen3System, pid: int, handle: Any, info: Optional[ProcessInformation]) -> None:
        super().__init__(pid, f"process {pid} in {system.subject}", info)
        self.system = system
        self.cc = system.cc
        self._handle = handle
        self._lock = threading.RLock()
        hr = self.cc.call("HcsSetProcessCallback", handle, 0, Binding.context(self.token), system.driver.callback)[0]
        if failed(hr):
            REGISTRY.remove(self.token)
            self.close_untaken_stdio()
            self.cc.call("HcsCloseProcess", handle)
            self._handle = None
            check("HcsSetProcessCallback", hr, subject=self.subject)
        self.look_once()

    def _run(self, fn: str, *args: Any, timeout: Optional[float] = 60) -> Optional[str]:
        with self._lock:
            if self._handle is None:
                raise errors.InvalidState(fn, 0x80070006, subject=self.subject, message="the handle is closed")
            with self.system.driver.op() as op:
                hr = self.cc.call(fn, self._handle, op.handle, *args)[0]
                if failed(hr):
                    raise op.failure(fn, hr, self.subject)
                return op.wait(timeout, fn, self.subject)

    def status(self) -> Optional[common.ProcessStatus]:
        try:
            doc = self._run("HcsGetProcessProperties", None)
        except errors.HcsError:
            return None
        data = parse_json(doc, "HcsGetProcessProperties")
        return common.ProcessStatus.from_json(data) if isinstance(data, dict) else None

    def _ignoring_exited(self, fn: str, *args: Any) -> None:
        try:
            self._run(fn, *args)
        except errors.HcsError as exc:
            if exc.hresult in ALREADY_STOPPED or exc.hresult in GONE or exc.hresult in (E_ACCESSDENIED, INVALID_STATE):
                return
            raise

    def terminate(self) -> None:
        self._ignoring_exited("HcsTerminateProcess", None)

    def signal(self, name: str) -> None:
        self._ignoring_exited("HcsSignalProcess", common.SignalProcessOptions(signal=name).dumps())

    def resize(self, height: int, width: int) -> None:
        self._run("HcsModifyProcess", documents.console_size_request(height, width).dumps())

    def close_stdin(self) -> None:
        if self.exited:
            return
        self._ignoring_exited("HcsModifyProcess", documents.close_stdin_request().dumps())

    def close(self) -> None:
        with self._lock:
            if self._handle is None:
                return
            self.close_untaken_stdio()
            handle, self._handle = self._handle, None
            self.cc.call("HcsCloseProcess", handle)
            REGISTRY.remove(self.token)
