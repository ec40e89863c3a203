"""wincontainers: Windows Server containers from Python, at the level of the Host Compute Service.

Start with :class:`Host`::

    from wincontainers import Host

    host = Host.open(sim="ws2019")       # the simulated host; Host.open() on Windows

The names below are loaded on first use (PEP 562): ``import wincontainers.layerfile`` or
``wincontainers.build.dockerfile`` (pure Python, any OS) loads neither cffi nor a driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wincontainers._lazy import exports

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "Container": "wincontainers.container",
    "ContainerExit": "wincontainers.container_types",
    "ContainerInfo": "wincontainers.container_types",
    "ContainerProcess": "wincontainers.container_types",
    "ContainerStats": "wincontainers.container_types",
    "StopResult": "wincontainers.container_types",
    "BadInput": "wincontainers.errors",
    "HcsError": "wincontainers.errors",
    "HcsUnavailable": "wincontainers.errors",
    "NotSupported": "wincontainers.errors",
    "WincontainersError": "wincontainers.errors",
    "BaseImage": "wincontainers.images.model",
    "Host": "wincontainers.host",
    "CalledProcessError": "wincontainers.process",
    "CompletedProcess": "wincontainers.process",
    "Process": "wincontainers.process",
    "TimeoutExpired": "wincontainers.process",
    # the types of what public parameters take
    "ImageLike": "wincontainers.images.model",
    "NetworkLike": "wincontainers.networks",
    "AttachLike": "wincontainers.networks",
    "PortsLike": "wincontainers.networks",
    "ProgressLike": "wincontainers.progress",
}

if TYPE_CHECKING:
    from wincontainers.container import Container
    from wincontainers.container_types import ContainerExit, ContainerInfo, ContainerProcess, ContainerStats, StopResult
    from wincontainers.errors import BadInput, HcsError, HcsUnavailable, NotSupported, WincontainersError
    from wincontainers.host import Host
    from wincontainers.images.model import BaseImage, ImageLike
    from wincontainers.progress import ProgressLike
    from wincontainers.networks import AttachLike, NetworkLike, PortsLike
    from wincontainers.process import CalledProcessError, CompletedProcess, Process, TimeoutExpired

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
    "ImageLike",
    "NetworkLike",
    "AttachLike",
    "PortsLike",
    "ProgressLike",
]


__getattr__, __dir__ = exports(__name__, _LAZY)
