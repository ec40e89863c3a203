"""wincontainers: Windows Server containers from Python, at the level of the Host Compute Service.

Start with :class:`Host`::

    from wincontainers import Host

    host = Host.open(sim="ws2019")       # the simulated host; Host.open() on Windows
"""

from wincontainers.container import (
    Container,
    ContainerExit,
    ContainerInfo,
    ContainerProcess,
    ContainerStats,
    StopResult,
)
from wincontainers.errors import BadInput, HcsError, HcsUnavailable, NotSupported, WincontainersError
from wincontainers.host import BaseImage, Host
from wincontainers.process import CalledProcessError, CompletedProcess, Process, TimeoutExpired

__version__ = "0.1.0"

__all__ = [
    "Host",
    "BaseImage",
    "Container",
    "ContainerExit",
    "ContainerInfo",
    "ContainerProcess",
    "ContainerStats",
    "StopResult",
    "Process",
    "CompletedProcess",
    "CalledProcessError",
    "TimeoutExpired",
    "WincontainersError",
    "HcsError",
    "HcsUnavailable",
    "BadInput",
    "NotSupported",
]
