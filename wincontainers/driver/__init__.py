"""Drivers: one per HCS API generation, all behind the :class:`~wincontainers.driver.base.Driver` protocol.

Nothing above this package knows which generation runs.
"""

from __future__ import annotations

from wincontainers._native.library import Binding
from wincontainers.driver.base import Driver, ProcessRef, SystemRef

__all__ = ["open_driver", "Driver", "SystemRef", "ProcessRef"]


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
