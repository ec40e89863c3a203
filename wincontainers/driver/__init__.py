"""Drivers: one per HCS API generation, all behind the :class:`~wincontainers.driver.base.Driver` protocol.

Nothing above this package knows which generation runs.
"""

from __future__ import annotations

from typing import Any

from wincontainers._native.library import Binding
from wincontainers.driver.base import Driver, ProcessRef, SystemRef
from wincontainers.driver.networking import NetworkBackend

__all__ = ["open_driver", "open_networking", "Driver", "SystemRef", "ProcessRef", "NetworkBackend"]


def open_driver(binding: Binding) -> Driver:
    """The driver for the binding's generation."""
    if binding.generation == 1:
        from wincontainers.driver.gen1 import Gen1Driver

        return Gen1Driver(binding)
    if binding.generation == 2:
        from wincontainers.driver.gen2 import Gen2Driver

        return Gen2Driver(binding)
    from wincontainers.driver.gen3 import Gen3Driver

    return Gen3Driver(binding)


def open_networking(binding: Binding, state_dir: Any) -> NetworkBackend:
    """The networking of the binding's generation: TP3's NAT devices, HNS (HNSCall) or HCN."""
    if binding.generation == 1:
        from wincontainers.driver.networking import Gen1Networking
        from wincontainers.statefiles import StateFiles

        return Gen1Networking(StateFiles(binding.win32), state_dir)
    if binding.generation == 2:
        from wincontainers.driver.hns import HnsNetworking

        return HnsNetworking(binding.vmcompute)
    from wincontainers.driver.hcn import HcnNetworking

    return HcnNetworking(binding.computenetwork)
