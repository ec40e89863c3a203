"""The simulated vmcompute service: what every exported HCS function does.

Handlers are registered per DLL and export name with the same marshalling format string the C
client uses (see native/wcsim.h), so the daemon knows which arguments are inputs and which are
out parameters. A handler gets the inputs, and returns a :class:`Reply` (or raises
:class:`~wincontainers.sim.faults.Fail`). gen3 handlers complete their operation through
``call.complete``; gen2 handlers that return PENDING schedule their completion notification.

The service is one state (:mod:`.host_state`) with its jobs layered on it, one module each, each
using the ones below: :mod:`.handle_table` (handles, call log, notifications),
:mod:`.system_networks`, :mod:`.systems`, :mod:`.processes` (and consoles), :mod:`.inspection`
(queries and test controls). :class:`Service` adds what crosses them all: closing a handle.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

from wincontainers.sim.calls import (
    HANDLERS,
    PENDING,
    S_OK,
    Api,
    Call,
    Reply,
    api,
    guid_of,
)
from wincontainers.sim.inspection import Inspection
from wincontainers.sim.model import ComputeSystem, SimProcess

__all__ = ["Service", "Reply", "Call", "HANDLERS", "Api", "PENDING", "S_OK", "api", "guid_of"]


class Service(Inspection):
    """The simulated host's service (see the module docstring for its parts)."""

    def close_handle(self, hid: int) -> None:
        with self.lock:
            h = self.handles.pop(hid, None)
            if h is None:
                return
            h.conn.handles.discard(hid)
            # A callback registration dies with the handle it was registered on.
            for dependent in [d for d in self.handles.values() if d.kind == "callback" and d.obj is h]:
                self.close_handle(dependent.id)
            if h.kind == "system":
                system: ComputeSystem = h.obj
                system.handles.discard(h)
                if not system.handles:
                    if system.state != "Stopped" and system.terminate_on_last_close:
                        self.kill_system(system, "ForcedExit")
                    if system.state == "Stopped":
                        self.systems.pop(system.id.lower(), None)
            elif h.kind == "process":
                proc: SimProcess = h.obj
                proc.handles.discard(h)
                self.forget_if_done(proc)



# Registers the handlers (import for side effects).
from wincontainers.sim import handlers as _handlers  # noqa: E402,F401
from wincontainers.sim import k32_handlers as _k32_handlers  # noqa: E402,F401
from wincontainers.sim import net_handlers as _net_handlers  # noqa: E402,F401
