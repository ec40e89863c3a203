"""Handles, the call log and notifications of the simulated service: ids, handles per client
connection, the per-client call and document logs tests read, and events to the handles that
registered for them (a fault may drop one).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

from typing import TYPE_CHECKING, Any, Optional, Sequence

from wincontainers.sim.faults import Fail
from wincontainers.sim.model import EVENTS, NOTIFICATIONS, ComputeSystem, Handle

if TYPE_CHECKING:
    from wincontainers.sim.daemon import Connection
from wincontainers.sim.calls import E_HANDLE, Call, signed32
from wincontainers.sim.host_state import HostState

__all__ = ["HandleTable"]


class HandleTable(HostState):
    """Ids and handles per client connection, the call and document logs, notifications."""

    def new_id(self) -> int:
        with self.lock:
            n = self._next_id
            self._next_id += 1
            return n

    def new_handle(self, kind: str, obj: Any, conn: "Connection") -> Handle:
        with self.lock:
            h = Handle(self.new_id(), kind, obj, conn, 3 if conn.gen == 3 else 2)
            self.handles[h.id] = h
            conn.handles.add(h.id)
            if kind in ("system", "process"):
                obj.handles.add(h)
            return h

    def handle(self, call: Call, hid: int, kind: str) -> Handle:
        with self.lock:
            h = self.handles.get(hid)
            if h is None or h.kind != kind or h.conn is not call.conn:
                raise Fail(E_HANDLE, f"invalid {kind} handle")
            return h

    def log_call(self, pid: int, function: str) -> None:
        with self.lock:
            log = self.call_log.setdefault(pid, [])
            log.append(function)
            if len(log) > 20000:
                del log[:10000]

    def log_documents(self, pid: int, function: str, inputs: Sequence[Any]) -> None:
        """Keep the JSON documents a client sent (with the call's other string arguments, such
        as HNSCall's method and path), so a test can compare them with the reference."""
        strings = [a for a in inputs if isinstance(a, str)]
        if not any(a.lstrip().startswith(("{", "[")) for a in strings):
            return
        with self.lock:
            log = self.document_log.setdefault(pid, [])
            log.append({"function": function, "args": strings})
            if len(log) > 2000:
                del log[:1000]

    # -- notifications -------------------------------------------------------------------------

    def notify(self, handles: Sequence[Handle], name: str, status: int = 0, data: Optional[str] = None) -> None:
        for h in handles:
            if h.api == 2 and name in NOTIFICATIONS:
                if self.faults.should_drop(name, h.conn.pid):
                    continue
                h.conn.send_event("N", [h.id, NOTIFICATIONS[name], signed32(status), data])
            elif h.api == 3 and name in EVENTS:
                if self.faults.should_drop(name, h.conn.pid):
                    continue
                h.conn.send_event("V", [h.id, EVENTS[name], data])

    def notify_system(self, system: ComputeSystem, name: str, status: int = 0, data: Optional[str] = None) -> None:
        with self.lock:
            handles = list(system.handles)
        self.notify(handles, name, status, data)
