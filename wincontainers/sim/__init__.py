"""The simulated host: client DLLs exporting the real HCS, kernel32 and advapi32 functions, and
a daemon that behaves like the HCS service. Its public face is :class:`SimulatedHost` (start,
stop, status, fault injection); ``Host.open(sim=PROFILE)`` starts it on demand.

``SimulatedHost`` is loaded on first use (PEP 562): the daemon imports this package's modules
without the control side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wincontainers._lazy import exports

__all__ = ["SimulatedHost"]

__getattr__, __dir__ = exports(__name__, {"SimulatedHost": "wincontainers.sim.control"})

if TYPE_CHECKING:
    from wincontainers.sim.control import SimulatedHost
