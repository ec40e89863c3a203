"""Notifications and events from HCS: the token registry and the waiters.

Native code never gets a Python object pointer as callback context, only a small integer token.
:data:`REGISTRY` maps tokens to :class:`EventSink` objects under a lock; a callback for an unknown
token (a late callback after close) is dropped. A callback only records the event and wakes
waiters: it never blocks and never calls HCS (hcs-api.md pitfalls 1-2).

Waits never trust one notification: :meth:`EventSink.wait` has a timeout and, while waiting,
periodically runs a *probe* (a state query) so that a lost notification cannot hang a caller.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Optional

import attrs

from wincontainers import errors
from wincontainers._native import library
from wincontainers.aio import Signal

__all__ = ["Notice", "EventSink", "REGISTRY", "notification_callback", "event_callback", "GEN2_TYPES", "GEN3_TYPES"]

GEN2_TYPES = {
    0x00000001: "SystemExited",
    0x00000002: "SystemCreateCompleted",
    0x00000003: "SystemStartCompleted",
    0x00000004: "SystemPauseCompleted",
    0x00000005: "SystemResumeCompleted",
    0x00000006: "SystemCrashReport",
    0x00000007: "SystemSiloJobCreated",
    0x00000008: "SystemSaveCompleted",
    0x00000009: "SystemRdpEnhancedModeStateChanged",
    0x0000000A: "SystemShutdownCompleted",
    0x0000000B: "SystemGetPropertiesCompleted",
    0x0000000C: "SystemModifyCompleted",
    0x0000000D: "SystemCrashInitiated",
    0x0000000E: "SystemGuestConnectionClosed",
    0x0000000F: "SystemOperationCompletion",
    0x00000010: "SystemPassThru",
    0x00010000: "ProcessExited",
    0x01000000: "ServiceDisconnect",
}
GEN3_TYPES = {
    0x00000001: "SystemExited",
    0x00000002: "SystemCrashInitiated",
    0x00000003: "SystemCrashReport",
    0x00000004: "SystemRdpEnhancedModeStateChanged",
    0x00000005: "SystemSiloJobCreated",
    0x00000006: "SystemGuestConnectionClosed",
    0x00010000: "ProcessExited",
    0x01000000: "OperationCallback",
    0x02000000: "ServiceDisconnect",
}
STICKY = frozenset({"SystemExited", "ProcessExited", "ServiceDisconnect"})


@attrs.frozen
class Notice:
    """One notification or event, as received (or as a probe reconstructed it)."""

    kind: str
    status: int = 0
    data: Optional[str] = None
    failed: bool = False
    synthesized: bool = False


class EventSink:
    """Collects the notifications of one handle and lets threads wait for them."""

    def __init__(self, label: str) -> None:
        self.label = label
        #: set by the first sticky notice (an exit, the service gone): asyncio waits await it
        self.ended = Signal()
        self._cond = threading.Condition()
        self._queues: dict[str, deque[Notice]] = {}
        self._sticky: dict[str, Notice] = {}

    def push(self, notice: Notice) -> None:
        """Called on HCS's callback thread: record and wake, nothing else."""
        with self._cond:
            if notice.kind in STICKY:
                self._sticky.setdefault(notice.kind, notice)
            else:
                self._queues.setdefault(notice.kind, deque()).append(notice)
            self._cond.notify_all()
        if notice.kind in STICKY:
            self.ended.set()

    def sticky(self, kind: str) -> Optional[Notice]:
        with self._cond:
            return self._sticky.get(kind)

    def mark(self, notice: Notice) -> None:
        """Record what a probe found (a lost notification reconstructed)."""
        self.push(notice)

    def wait(
        self,
        kind: str,
        timeout: Optional[float],
        *,
        operation: str,
        subject: Optional[str],
        probe: Optional[Callable[[], Optional[Notice]]] = None,
        abort_on_exit: bool = True,
    ) -> Notice:
        """Wait for ``kind``; fail early on SystemExited (unless awaited) and ServiceDisconnect.

        ``probe`` runs every now and then (50 ms, doubling to 1 s) while nothing arrives; a
        notice it returns is taken as the awaited one.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.05
        next_probe = time.monotonic() + interval
        while True:
            with self._cond:
                while True:
                    found = self._take(kind)
                    if found is not None:
                        return found
                    self._raise_if_aborted(kind, operation, subject, abort_on_exit)
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        raise errors.HcsTimeout(
                            operation, 0x80070102, subject=subject,
                            message=f"no {kind} notification within {timeout:g} s",
                        )
                    wake = next_probe if probe is not None else (deadline or now + 3600)
                    if deadline is not None:
                        wake = min(wake, deadline)
                    if now >= wake:
                        break
                    self._cond.wait(wake - now)
            if probe is not None:
                found = probe()
                if found is not None:
                    self.mark(found)
                interval = min(interval * 2, 1.0)
                next_probe = time.monotonic() + interval

    def _take(self, kind: str) -> Optional[Notice]:
        if kind in STICKY:
            return self._sticky.get(kind)
        q = self._queues.get(kind)
        if q:
            return q.popleft()
        return None

    def _raise_if_aborted(self, kind: str, operation: str, subject: Optional[str], abort_on_exit: bool) -> None:
        gone = self._sticky.get("ServiceDisconnect")
        if gone is not None and kind != "ServiceDisconnect":
            raise errors.ServiceDisconnected(operation, 0x8037011E, subject=subject)
        exited = self._sticky.get("SystemExited")
        if abort_on_exit and exited is not None and kind not in ("SystemExited", "ProcessExited"):
            raise errors.UnexpectedExit(operation, 0xC0370106, subject=subject, result=exited.data)


class CallbackRegistry:
    """token -> sink; unknown tokens (late callbacks) are dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 1
        self._sinks: dict[int, EventSink] = {}

    def add(self, sink: EventSink) -> int:
        with self._lock:
            token = self._next
            self._next += 1
            self._sinks[token] = sink
            return token

    def remove(self, token: int) -> None:
        with self._lock:
            self._sinks.pop(token, None)

    def get(self, token: int) -> Optional[EventSink]:
        with self._lock:
            return self._sinks.get(token)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sinks)

    # -- native callbacks land here (HCS's threads) --

    def on_notification(self, ntype: int, token: int, status: int, data: Optional[str]) -> None:
        sink = self.get(token)
        if sink is None:
            return
        flags_failed = bool(ntype & 0x80000000)
        kind = GEN2_TYPES.get(ntype & 0x0FFFFFFF, f"Notification0x{ntype & 0x0FFFFFFF:X}")
        sink.push(Notice(kind, status, data, failed=flags_failed or bool(status & 0x80000000)))

    def on_event(self, etype: int, token: int, data: Optional[str]) -> None:
        sink = self.get(token)
        if sink is None:
            return
        sink.push(Notice(GEN3_TYPES.get(etype, f"Event0x{etype:X}"), 0, data))


REGISTRY = CallbackRegistry()

_callbacks: dict[str, Any] = {}
_callbacks_lock = threading.Lock()


def _process_callback(kind: str, factory: Callable[[], Any]) -> Any:
    with _callbacks_lock:
        cb = _callbacks.get(kind)
        if cb is None:
            cb = _callbacks[kind] = factory()
        return cb


def notification_callback() -> Any:
    """The process-wide gen2 HCS_NOTIFICATION_CALLBACK (alive for the life of the process)."""
    return _process_callback("gen2", lambda: library.notification_callback(REGISTRY.on_notification))


def event_callback() -> Any:
    """The process-wide gen3 HCS_EVENT_CALLBACK (alive for the life of the process)."""
    return _process_callback("gen3", lambda: library.event_callback(REGISTRY.on_event))
