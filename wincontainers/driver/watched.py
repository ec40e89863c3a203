"""What gen2 and gen3 handles share: an event sink for their exit, a state probe, std handles.

A process or system whose exit is announced by notification (gen2) or event (gen3) is waited
for through its :class:`~wincontainers.driver.events.EventSink`; the probe (process status, or
system properties) finds a lost announcement. The generation-specific classes say how to ask.
"""

from __future__ import annotations

import abc
import json
import threading
from typing import Any, Optional

from wincontainers import errors
from wincontainers.aio import Signal
from wincontainers._native.library import ProcessInformation
from wincontainers._native.oshandle import handle_to_file
from wincontainers.driver.base import ExitStatus
from wincontainers.driver.common import parse_json
from wincontainers.driver.events import REGISTRY, EventSink, Notice
from wincontainers.schema import common

__all__ = ["StdioOwner", "WatchedProcess", "WatchedSystem", "close_stdio"]


def close_stdio(info: Optional[ProcessInformation]) -> None:
    """Close std handles nobody took (they belong to the caller, hcs-api.md pitfall 6)."""
    if info is None:
        return
    for h, mode in ((info.stdin, "wb"), (info.stdout, "rb"), (info.stderr, "rb")):
        if h is not None:
            try:
                handle_to_file(h, mode).close()
            except OSError:
                pass


class StdioOwner:
    """Holds a process's std handles until the object layer takes them."""

    def __init__(self, pid: int, stdio: tuple[Optional[int], Optional[int], Optional[int]]) -> None:
        self.pid = pid
        self._stdio_lock = threading.Lock()
        self._stdio: list[Optional[int]] = list(stdio)

    def take_stdio(self) -> tuple[Optional[int], Optional[int], Optional[int]]:
        with self._stdio_lock:
            stdio = (self._stdio[0], self._stdio[1], self._stdio[2])
            self._stdio = [None, None, None]
            return stdio

    def close_untaken_stdio(self) -> None:
        close_stdio(ProcessInformation(self.pid, *self.take_stdio()))


class WatchedProcess(StdioOwner, abc.ABC):
    """A gen2/gen3 process: ProcessExited arrives in :attr:`sink`; :meth:`status` is the probe."""

    def __init__(self, pid: int, subject: str, info: Optional[ProcessInformation]) -> None:
        super().__init__(pid, (info.stdin, info.stdout, info.stderr) if info else (None, None, None))
        self.subject = subject
        self.sink = EventSink(subject)
        self.token = REGISTRY.add(self.sink)

    @abc.abstractmethod
    def status(self) -> Optional[common.ProcessStatus]:
        """HCS's ProcessStatus, or ``None`` when it cannot be asked now."""

    def _probe(self) -> Optional[Notice]:
        status = self.status()
        if status is not None and status.exited:
            return Notice("ProcessExited", data=status.dumps(), synthesized=True)
        return None

    def look_once(self) -> None:
        """The process may have exited before its callback existed (hcs-api.md pitfall 3)."""
        probed = self._probe()
        if probed is not None:
            self.sink.mark(probed)

    def wait(self, timeout: Optional[float]) -> Optional[int]:
        try:
            notice = self.sink.wait("ProcessExited", timeout, operation="wait", subject=self.subject,
                                    probe=self._probe, abort_on_exit=False)
        except errors.HcsTimeout:
            return None
        return self._exit_code(notice)

    def _exit_code(self, notice: Notice) -> int:
        status = None
        data = parse_json(notice.data, "ProcessExited") if notice.data else None
        if isinstance(data, dict):
            status = common.ProcessStatus.from_json(data)
        if status is None or status.exit_code is None:
            status = self.status()
        if status is None:
            raise errors.HcsError("HcsGetProcessProperties", subject=self.subject,
                                  message="the process exited but its exit code is unknown")
        if status.last_wait_result:
            raise errors.HcsError(
                "HcsGetProcessProperties", status.last_wait_result, subject=self.subject,
                message="HCS could not wait for the process; its exit code is not valid",
            )
        return int(status.exit_code or 0) & 0xFFFFFFFF

    @property
    def exited(self) -> bool:
        return self.sink.sticky("ProcessExited") is not None


class WatchedSystem(abc.ABC):
    """A gen2/gen3 compute system: SystemExited arrives in :attr:`sink`; properties are the probe."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.sink = EventSink(subject)
        self.token = REGISTRY.add(self.sink)

    @abc.abstractmethod
    def properties(self, types: Any = ()) -> dict[str, Any]:
        """HCS's properties of the system."""

    def _probe_exited(self) -> Optional[Notice]:
        try:
            props = self.properties()
        except errors.NotFound:
            return Notice("SystemExited", data=json.dumps({"ExitType": "UnexpectedExit"}), synthesized=True)
        except errors.HcsError:
            return None
        if props.get("State") == "Stopped" or props.get("Stopped"):
            exit_type = props.get("ExitType") or "GracefulExit"
            return Notice("SystemExited", data=json.dumps({"ExitType": exit_type}), synthesized=True)
        return None

    def exit_signal(self) -> Signal:
        return self.sink.ended

    def probe_exit(self) -> bool:
        found = self._probe_exited()
        if found is None:
            return False
        self.sink.mark(found)
        return True

    def wait_exited(self, timeout: Optional[float]) -> Optional[ExitStatus]:
        try:
            notice = self.sink.wait("SystemExited", timeout, operation="wait", subject=self.subject,
                                    probe=self._probe_exited)
        except errors.HcsTimeout:
            return None
        data = parse_json(notice.data, "SystemExited") if notice.data else None
        if isinstance(data, dict):
            status = common.SystemExitStatus.from_json(data)
            return ExitStatus(exit_type=status.exit_type or "GracefulExit",
                              status=(status.status or 0) & 0xFFFFFFFF)
        return ExitStatus(exit_type="GracefulExit")
