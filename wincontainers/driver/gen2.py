"""Generation 2: vmcompute's handle + callback API (Windows Server 2016 RTM and later).

Calls return ``ERROR_VMCOMPUTE_OPERATION_PENDING`` and complete through a notification on the
callback registered right after create/open (hcs-api.md 3.4-3.5). Every wait also ends on
SystemExited / ServiceDisconnect, has a timeout, and probes the state now and then so that a
lost notification cannot hang it.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import Any, Mapping, Optional, Sequence

from wincontainers import errors
from wincontainers._native.library import Binding, ProcessInformation
from wincontainers.driver import documents
from wincontainers.driver.base import Capabilities, ProcessSpec, SystemSpec
from wincontainers.driver.common import ALREADY_STOPPED, GONE, check, failed, parse_json
from wincontainers.driver.events import REGISTRY, Notice, notification_callback
from wincontainers.driver.layers import VmcomputeLayers
from wincontainers.driver.watched import WatchedProcess, WatchedSystem, close_stdio
from wincontainers.errors import PENDING
from wincontainers.schema import common

__all__ = ["Gen2Driver", "Gen2System", "Gen2Process"]

E_ACCESSDENIED = 0x80070005
INVALID_STATE = 0xC0370105


class Gen2Driver(VmcomputeLayers):
    """API generation 2; the layer calls of process isolation come from VmcomputeLayers."""

    generation = 2
    capabilities = Capabilities(lists_systems=True, reports_state=True, statistics=True,
                                hyperv_routes=("vmcompute",))

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding, pass_parent_id=False)
        self.callback = notification_callback()

    def __repr__(self) -> str:
        return f"<Gen2Driver {self.binding.system_dir}>"

    # -- compute systems --------------------------------------------------------------------

    def create_system(self, spec: SystemSpec, timeout: Optional[float]) -> "Gen2System":
        """A container from a schema v1 document: process isolation, or Hyper-V (HvPartition:
        HCS makes the utility VM itself and ends it with the container)."""
        subject = errors.subject_for("container", spec.id)
        if spec.hyperv and spec.hyperv_route not in (None, "vmcompute"):
            raise errors.NotSupported("create", subject=subject, generation=self.generation,
                                      alternative='Server 2016 makes Hyper-V containers through vmcompute: '
                                                  'hyperv_route="vmcompute" (the default)')
        doc = documents.container_v1(spec).dumps()
        hr, handle, result = self.vm.call("HcsCreateComputeSystem", spec.id, doc, None)
        if failed(hr) and hr != PENDING:
            if handle is not None:
                self.vm.call("HcsCloseComputeSystem", handle)
            check("HcsCreateComputeSystem", hr, subject=subject, ids=[spec.id], result=result)
        system = Gen2System(self, spec.id, handle, terminate_on_failure=True)
        if hr == PENDING:
            try:
                notice = system.sink.wait(
                    "SystemCreateCompleted", timeout, operation="HcsCreateComputeSystem", subject=subject,
                    probe=system._probe_created,
                )
                system._raise_if_failed("HcsCreateComputeSystem", notice)
            except BaseException:
                system._abandon()
                raise
        return system

    def open_system(self, system_id: str, *, hosted: bool = False) -> "Gen2System":
        hr, handle, result = self.vm.call("HcsOpenComputeSystem", system_id)
        check("HcsOpenComputeSystem", hr, subject=errors.subject_for("container", system_id), ids=[system_id],
              result=result)
        return Gen2System(self, system_id, handle)

    def list_systems(self, owner: Optional[str] = None) -> list[dict[str, Any]]:
        query = common.EnumerationQuery(owners=[owner] if owner else None).dumps()
        hr, systems, result = self.vm.call("HcsEnumerateComputeSystems", query)
        check("HcsEnumerateComputeSystems", hr, result=result)
        data = parse_json(systems, "HcsEnumerateComputeSystems")
        return list(data or [])

    def service_properties(self) -> dict[str, Any]:
        hr, props, result = self.vm.call("HcsGetServiceProperties", None)
        check("HcsGetServiceProperties", hr, result=result)
        return dict(parse_json(props, "HcsGetServiceProperties") or {})

    def close(self) -> None:
        pass


class Gen2System(WatchedSystem):
    """An open HCS_SYSTEM with its notification callback."""

    def __init__(self, driver: Gen2Driver, system_id: str, handle: Any, *, terminate_on_failure: bool = False) -> None:
        self.driver = driver
        self.vm = driver.vm
        self.id = system_id
        super().__init__(errors.subject_for("container", system_id))
        self._handle = handle
        self._lock = threading.RLock()
        self._processes: "weakref.WeakSet[Gen2Process]" = weakref.WeakSet()
        # Register before anything else happens to the system (hcs-api.md pitfall 3).
        hr, cb_handle = self.vm.call(
            "HcsRegisterComputeSystemCallback", handle, driver.callback, Binding.context(self.token)
        )
        if failed(hr):
            REGISTRY.remove(self.token)
            if terminate_on_failure:  # a system we just created must not outlive this failure
                self.vm.call("HcsTerminateComputeSystem", handle, None)
            self.vm.call("HcsCloseComputeSystem", handle)
            check("HcsRegisterComputeSystemCallback", hr, subject=self.subject, ids=[system_id])
        self._cb_handle = cb_handle

    def __repr__(self) -> str:
        return f"<Gen2System {self.id} {'closed' if self._handle is None else 'open'}>"

    def _call(self, fn: str, *args: Any) -> tuple[Any, ...]:
        with self._lock:
            if self._handle is None:
                raise errors.InvalidState(fn, 0x80070006, subject=self.subject, message="the handle is closed")
            return self.vm.call(fn, self._handle, *args)

    def _raise_if_failed(self, operation: str, notice: Notice) -> None:
        if notice.failed:
            raise errors.from_hresult(operation, notice.status or 0x80004005, subject=self.subject, ids=[self.id],
                                      result=notice.data)

    # -- probes: what to ask when a notification is late -----------------------------------

    def _state(self) -> Optional[str]:
        try:
            props = self.properties()
        except errors.NotFound:
            return "Gone"
        except errors.HcsError:
            return None
        return str(props.get("State") or "") or None

    def _probe_created(self) -> Optional[Notice]:
        state = self._state()
        return Notice("SystemCreateCompleted", synthesized=True) if state not in (None, "Gone") else None

    def _probe_state(self, kind: str, states: set[str]) -> Any:
        def probe() -> Optional[Notice]:
            return Notice(kind, synthesized=True) if self._state() in states else None

        return probe

    # -- lifecycle -------------------------------------------------------------------------

    def _async(self, fn: str, kind: str, timeout: Optional[float], probe_states: set[str]) -> None:
        hr, result = self._call(fn, None)
        if hr == PENDING:
            notice = self.sink.wait(kind, timeout, operation=fn, subject=self.subject,
                                    probe=self._probe_state(kind, probe_states))
            self._raise_if_failed(fn, notice)
            return
        check(fn, hr, subject=self.subject, ids=[self.id], result=result)

    def start(self, timeout: Optional[float]) -> None:
        self._async("HcsStartComputeSystem", "SystemStartCompleted", timeout, {"Running", "Paused"})

    def pause(self, timeout: Optional[float]) -> None:
        self._async("HcsPauseComputeSystem", "SystemPauseCompleted", timeout, {"Paused"})

    def resume(self, timeout: Optional[float]) -> None:
        self._async("HcsResumeComputeSystem", "SystemResumeCompleted", timeout, {"Running"})

    def shutdown(self, timeout: Optional[float]) -> bool:
        hr, result = self._call("HcsShutdownComputeSystem", None)
        if hr in ALREADY_STOPPED or hr in GONE:
            return True
        if failed(hr) and hr != PENDING:
            check("HcsShutdownComputeSystem", hr, subject=self.subject, ids=[self.id], result=result)
        try:
            self.sink.wait("SystemExited", timeout, operation="HcsShutdownComputeSystem", subject=self.subject,
                           probe=self._probe_exited)
        except errors.HcsTimeout:
            return False
        return True

    def terminate(self, timeout: Optional[float]) -> None:
        hr, result = self._call("HcsTerminateComputeSystem", None)
        if hr in ALREADY_STOPPED or hr in GONE:
            return
        if failed(hr) and hr != PENDING:
            check("HcsTerminateComputeSystem", hr, subject=self.subject, ids=[self.id], result=result)
        self.sink.wait("SystemExited", timeout, operation="HcsTerminateComputeSystem", subject=self.subject,
                       probe=self._probe_exited)

    def properties(self, types: Sequence[str] = ()) -> dict[str, Any]:
        query = common.PropertyQuery(property_types=list(types)).dumps() if types else None
        hr, props, result = self._call("HcsGetComputeSystemProperties", query)
        check("HcsGetComputeSystemProperties", hr, subject=self.subject, ids=[self.id], result=result)
        return dict(parse_json(props, "HcsGetComputeSystemProperties") or {})

    def process_list(self) -> list[dict[str, Any]]:
        return list(self.properties(["ProcessList"]).get("ProcessList") or [])

    def modify(self, document: Mapping[str, Any]) -> None:
        hr, result = self._call("HcsModifyComputeSystem", json.dumps(document))
        check("HcsModifyComputeSystem", hr, subject=self.subject, ids=[self.id], result=result)

    # -- processes -------------------------------------------------------------------------

    def create_process(self, spec: ProcessSpec) -> "Gen2Process":
        params = documents.process_v1(spec, pipe_flags=True).dumps()
        hr, info, handle, result = self._call("HcsCreateProcess", params)
        if failed(hr):
            close_stdio(info)
            if handle is not None:
                self.vm.call("HcsCloseProcess", handle)
            check("HcsCreateProcess", hr, subject=self.subject, ids=[self.id], result=result)
        proc = Gen2Process(self, info.process_id, handle, info)
        self._processes.add(proc)
        return proc

    def open_process(self, pid: int) -> "Gen2Process":
        hr, handle, result = self._call("HcsOpenProcess", pid)
        check("HcsOpenProcess", hr, subject=f"process {pid} in {self.subject}", ids=[self.id], result=result)
        proc = Gen2Process(self, pid, handle, None)
        self._processes.add(proc)
        return proc

    # -- closing ---------------------------------------------------------------------------

    def _abandon(self) -> None:
        """A create that failed half way: stop whatever exists and release the handle."""
        try:
            hr, _ = self._call("HcsTerminateComputeSystem", None)
            if hr == PENDING:
                self.sink.wait("SystemExited", 30, operation="HcsTerminateComputeSystem", subject=self.subject,
                               probe=self._probe_exited)
        except errors.HcsError:
            pass
        self.close()

    def close(self) -> None:
        """Close processes, unregister the callback, close the handle (hcs-api.md pitfall 5)."""
        with self._lock:
            if self._handle is None:
                return
            for proc in list(self._processes):
                proc.close()
            handle, self._handle = self._handle, None
            if self._cb_handle is not None:
                self.vm.call("HcsUnregisterComputeSystemCallback", self._cb_handle)
                self._cb_handle = None
            hr = self.vm.call("HcsCloseComputeSystem", handle)[0]
            if failed(hr):  # one retry; HCS drops a vanished client's handles anyway
                self.vm.call("HcsCloseComputeSystem", handle)
            REGISTRY.remove(self.token)


class Gen2Process(WatchedProcess):
    """An open HCS_PROCESS with its notification callback and (until taken) its std handles."""

    def __init__(self, system: Gen2System, pid: int, handle: Any, info: Optional[ProcessInformation]) -> None:
        super().__init__(pid, f"process {pid} in {system.subject}", info)
        self.system = system
        self.vm = system.vm
        self._handle = handle
        self._lock = threading.RLock()
        hr, cb_handle = self.vm.call("HcsRegisterProcessCallback", handle, system.driver.callback,
                                     Binding.context(self.token))
        if failed(hr):
            REGISTRY.remove(self.token)
            self.close_untaken_stdio()
            self.vm.call("HcsCloseProcess", handle)
            self._handle = None
            check("HcsRegisterProcessCallback", hr, subject=self.subject)
        self._cb_handle = cb_handle
        self.look_once()

    def _call(self, fn: str, *args: Any) -> tuple[Any, ...]:
        with self._lock:
            if self._handle is None:
                raise errors.InvalidState(fn, 0x80070006, subject=self.subject, message="the handle is closed")
            return self.vm.call(fn, self._handle, *args)

    def status(self) -> Optional[common.ProcessStatus]:
        try:
            hr, props, result = self._call("HcsGetProcessProperties")
        except errors.InvalidState:
            return None
        if failed(hr):
            return None
        data = parse_json(props, "HcsGetProcessProperties")
        return common.ProcessStatus.from_json(data) if isinstance(data, dict) else None

    def terminate(self) -> None:
        hr, result = self._call("HcsTerminateProcess")
        # Killing an exited process is success (hcsshim Kill).
        if hr in ALREADY_STOPPED or hr in GONE or hr in (E_ACCESSDENIED, INVALID_STATE):
            return
        check("HcsTerminateProcess", hr, subject=self.subject, result=result)

    def signal(self, name: str) -> None:
        if not self.vm.has("HcsSignalProcess"):
            raise errors.NotSupported(
                "HcsSignalProcess", subject=self.subject, generation=2,
                alternative="this vmcompute.dll predates Windows Server 2019, which added HcsSignalProcess; "
                "kill() terminates the process",
            )
        options = common.SignalProcessOptions(signal=name).dumps()
        hr, result = self._call("HcsSignalProcess", options)
        if hr in ALREADY_STOPPED or hr in GONE or hr == INVALID_STATE:
            return
        check("HcsSignalProcess", hr, subject=self.subject, result=result)

    def resize(self, height: int, width: int) -> None:
        hr, result = self._call("HcsModifyProcess", documents.console_size_request(height, width).dumps())
        check("HcsModifyProcess", hr, subject=self.subject, result=result)

    def close_stdin(self) -> None:
        if self.exited:
            return  # HCS fails the request once the process has exited
        hr, result = self._call("HcsModifyProcess", documents.close_stdin_request().dumps())
        if hr in ALREADY_STOPPED or hr in GONE or hr == INVALID_STATE:
            return
        check("HcsModifyProcess", hr, subject=self.subject, result=result)

    def close(self) -> None:
        with self._lock:
            if self._handle is None:
                return
            self.close_untaken_stdio()
            handle, self._handle = self._handle, None
            if self._cb_handle is not None:
                self.vm.call("HcsUnregisterProcessCallback", self._cb_handle)
                self._cb_handle = None
            if failed(self.vm.call("HcsCloseProcess", handle)[0]):
                self.vm.call("HcsCloseProcess", handle)
            REGISTRY.remove(self.token)

