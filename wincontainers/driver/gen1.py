"""Generation 1: the TP3 string-id vmcompute API.

Every call blocks until done and names the container by its id string; there are no handles,
callbacks, result documents, properties or enumeration (hcs-api.md section 2). So:

* blocking calls run on worker threads bounded by the caller's timeout (pitfall 8);
* there is no system-exit event: a system is known to have exited when our own shutdown or
  terminate returned (the object layer also treats the end of a container's main process as
  the container's end, as Docker did on TP3);
* the process list comes from running ``tasklist /FO CSV /NH`` inside the container;
* pause, resume, signals, properties and modify raise NotSupported with the alternative.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any, Mapping, Optional, Sequence

import attrs

from wincontainers import errors
from wincontainers.aio import Signal
from wincontainers._native.library import Binding, handle_value
from wincontainers._native.oshandle import handle_to_file
from wincontainers.driver import documents
from wincontainers.driver.base import Capabilities, ExitStatus, ProcessSpec, SystemSpec, timeout_ms
from wincontainers.driver.common import ALREADY_STOPPED, GONE, TIMEOUTS, check, run_with_timeout
from wincontainers.driver.layers import VmcomputeLayers
from wincontainers.driver.watched import StdioOwner

__all__ = ["Gen1Driver", "Gen1System", "Gen1Process", "parse_tasklist_csv"]

ERROR_BROKEN_PIPE = 0x8007006D
# One WaitForProcessInComputeSystem slice: short enough to notice close() and timeouts.
_WAIT_SLICE = 1.0


#: What TP3 users are told when they ask for Hyper-V isolation.
HYPERV_ALTERNATIVE = ("TP3 has no Hyper-V containers (they came with Technical Preview 4): use process isolation "
                      "(the default), or a Windows Server 2016 or later host for isolation=\"hyperv\"")


def _unsupported(what: str, subject: str, alternative: str) -> errors.NotSupported:
    return errors.NotSupported(what, subject=subject, generation=1, alternative=alternative)


class Gen1Driver(VmcomputeLayers):
    """API generation 1; the layer calls of process isolation come from VmcomputeLayers."""

    generation = 1
    capabilities = Capabilities(lists_systems=False, reports_state=False, statistics=False)

    def __init__(self, binding: Binding) -> None:
        super().__init__(binding, pass_parent_id=True)

    def __repr__(self) -> str:
        return f"<Gen1Driver {self.binding.system_dir}>"

    def create_system(self, spec: SystemSpec, timeout: Optional[float]) -> "Gen1System":
        if spec.hyperv:
            raise _unsupported("create", errors.subject_for("container", spec.id), HYPERV_ALTERNATIVE)
        config = attrs.evolve(documents.container_v1(spec), hv_partition=None, terminate_on_last_handle_closed=None)
        subject = errors.subject_for("container", spec.id)
        hr = run_with_timeout(lambda: self.vm.call("CreateComputeSystem", spec.id, config.dumps())[0], timeout,
                              "CreateComputeSystem", subject)
        check("CreateComputeSystem", hr, subject=subject, ids=[spec.id])
        return Gen1System(self, spec.id)

    def open_system(self, system_id: str, *, hosted: bool = False) -> "Gen1System":
        # TP3 has no open call: the id is the handle. Existence shows on the first call.
        return Gen1System(self, system_id)

    def list_systems(self, owner: Optional[str] = None) -> list[dict[str, Any]]:
        raise _unsupported(
            "HcsEnumerateComputeSystems", "the host",
            "the TP3 API cannot enumerate; host.containers.list() uses wincontainers' own container records",
        )

    def service_properties(self) -> dict[str, Any]:
        # TP3 has no service query; this is what the TP3 API implies.
        return {"SupportedSchemaVersions": [{"Major": 1, "Minor": 0}]}

    def close(self) -> None:
        pass


class Gen1System:
    def __init__(self, driver: Gen1Driver, system_id: str) -> None:
        self.driver = driver
        self.vm = driver.vm
        self.id = system_id
        self.subject = errors.subject_for("container", system_id)
        self._exit: Optional[ExitStatus] = None
        self._exited = Signal()

    def __repr__(self) -> str:
        return f"<Gen1System {self.id}>"

    def _blocking(self, fn: str, timeout: Optional[float], *args: Any) -> int:
        return int(run_with_timeout(lambda: self.vm.call(fn, self.id, *args)[0], timeout, fn, self.subject))

    def _mark_exited(self, exit_type: str) -> None:
        if self._exit is None:
            self._exit = ExitStatus(exit_type)
        self._exited.set()

    def start(self, timeout: Optional[float]) -> None:
        check("StartComputeSystem", self._blocking("StartComputeSystem", timeout), subject=self.subject, ids=[self.id])

    def shutdown(self, timeout: Optional[float]) -> bool:
        # The call has its own timeout; give the worker a little more before giving up on it.
        hr = self._blocking("ShutdownComputeSystem", None if timeout is None else timeout + 5, timeout_ms(timeout))
        if hr == 0 or hr in ALREADY_STOPPED or hr in GONE:
            self._mark_exited("GracefulExit")
            return True
        if hr in TIMEOUTS:
            return False
        check("ShutdownComputeSystem", hr, subject=self.subject, ids=[self.id])
        return False

    def terminate(self, timeout: Optional[float]) -> None:
        hr = self._blocking("TerminateComputeSystem", timeout)
        if hr == 0 or hr in ALREADY_STOPPED or hr in GONE:
            self._mark_exited("ForcedExit")
            return
        check("TerminateComputeSystem", hr, subject=self.subject, ids=[self.id])

    def pause(self, timeout: Optional[float]) -> None:
        raise _unsupported("pause", self.subject, "TP3 cannot pause a container; stop() it instead")

    def resume(self, timeout: Optional[float]) -> None:
        raise _unsupported("resume", self.subject, "TP3 cannot pause or resume a container")

    def properties(self, types: Sequence[str] = ()) -> dict[str, Any]:
        raise _unsupported(
            "GetComputeSystemProperties", self.subject,
            "TP3 has no property query; top() lists processes by running tasklist in the container",
        )

    def modify(self, document: Mapping[str, Any]) -> None:
        raise _unsupported("ModifyComputeSystem", self.subject, "TP3 cannot change a created container")

    def exit_signal(self) -> Signal:
        return self._exited

    def probe_exit(self) -> bool:
        return False  # TP3 cannot be asked: only exits this process caused are known

    def wait_exited(self, timeout: Optional[float]) -> Optional[ExitStatus]:
        """Only exits this process caused are known on TP3 (no exit notification exists)."""
        if self._exited.wait(timeout):
            return self._exit
        return None

    def create_process(self, spec: ProcessSpec) -> "Gen1Process":
        params = documents.process_v1(spec, pipe_flags=False).dumps()
        # Pipes are requested by non-NULL out pointers; with a console stderr is merged: NULL.
        null_outs = (5,) if spec.console else ()
        hr, pid, stdin, stdout, stderr = self.vm.call(
            "CreateProcessWithStdHandlesInComputeSystem", self.id, params, null_outs=null_outs
        )
        handles = (handle_value(stdin), handle_value(stdout), handle_value(stderr))
        if hr & 0x80000000:
            for h, mode in zip(handles, ("wb", "rb", "rb")):
                if h is not None:
                    handle_to_file(h, mode).close()
        check("CreateProcessWithStdHandlesInComputeSystem", hr, subject=self.subject, ids=[self.id])
        return Gen1Process(self, int(pid), handles)

    def open_process(self, pid: int) -> "Gen1Process":
        return Gen1Process(self, pid, (None, None, None))

    def process_list(self) -> list[dict[str, Any]]:
        """Run ``tasklist /FO CSV /NH`` in the container and read its output."""
        proc = self.create_process(ProcessSpec("tasklist /FO CSV /NH"))
        stdin, stdout, stderr = proc.take_stdio()
        try:
            if stdin is not None:
                handle_to_file(stdin, "wb").close()
            if stderr is not None:
                handle_to_file(stderr, "rb").close()
            out = handle_to_file(stdout, "rb").read() if stdout is not None else b""
            code = proc.wait(60)
        finally:
            proc.close()
        if code != 0:
            raise errors.HcsError("tasklist", subject=self.subject,
                                  message=f"tasklist in the container exited with {code}")
        return [dict(r, CreateTimestamp=None) for r in parse_tasklist_csv(out.decode("utf-8", "replace"))]

    def close(self) -> None:
        pass


def parse_tasklist_csv(text: str) -> list[dict[str, Any]]:
    """``tasklist /FO CSV /NH`` rows -> ProcessList-shaped dicts (working set from "Mem Usage")."""
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 5 or not row[1].strip().isdigit():
            continue
        mem = "".join(ch for ch in row[4] if ch.isdigit())
        rows.append({
            "ProcessId": int(row[1]),
            "ImageName": row[0],
            "MemoryWorkingSetPrivateBytes": int(mem) * 1024 if mem else 0,
        })
    return rows


class Gen1Process(StdioOwner):
    """A process named by (container id, pid)."""

    def __init__(self, system: Gen1System, pid: int, stdio: tuple[Optional[int], Optional[int], Optional[int]]):
        super().__init__(pid, stdio)
        self.system = system
        self.vm = system.vm
        self.subject = f"process {pid} in {system.subject}"
        self._exit_code: Optional[int] = None
        self._closed = False

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        if self._exit_code is not None:
            return self._exit_code
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _WAIT_SLICE if deadline is None else max(0.0, min(_WAIT_SLICE, deadline - time.monotonic()))
            hr, code = self.vm.call("WaitForProcessInComputeSystem", self.system.id, self.pid,
                                    timeout_ms(remaining))
            if hr == 0:
                self._exit_code = int(code)
                return self._exit_code
            if hr == ERROR_BROKEN_PIPE or hr in GONE:
                # The container was killed underneath the process (or it is gone): it ended the
                # way TerminateProcess ends a process.
                self._exit_code = 1
                return self._exit_code
            if hr not in TIMEOUTS:
                check("WaitForProcessInComputeSystem", hr, subject=self.subject)
            if self._closed or (deadline is not None and time.monotonic() >= deadline):
                return None

    def terminate(self) -> None:
        hr = self.vm.call("TerminateProcessInComputeSystem", self.system.id, self.pid)[0]
        if hr == 0 or hr in ALREADY_STOPPED or hr in GONE:
            return
        check("TerminateProcessInComputeSystem", hr, subject=self.subject)

    def signal(self, name: str) -> None:
        raise _unsupported("signal", self.subject, "TP3 cannot signal a process; kill() terminates it")

    def resize(self, height: int, width: int) -> None:
        hr = self.vm.call("ResizeConsoleInComputeSystem", self.system.id, self.pid, height, width, 0)[0]
        check("ResizeConsoleInComputeSystem", hr, subject=self.subject)

    def close_stdin(self) -> None:
        """On TP3 closing stdin is closing our copy of the handle; the caller does that."""

    def close(self) -> None:
        self._closed = True
        self.close_untaken_stdio()
