"""The simulated host's state: its storage, tokens, files, leases, faults, compute systems,
handles and logs, all guarded by one re-entrant lock. The service's jobs (handle_table,
system_networks, systems, processes, inspection) are layered on it, each in its own module.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import threading
from pathlib import Path
from typing import Any, Optional

from wincontainers.sim import ntfs
from wincontainers.sim import storage as st
from wincontainers.sim.faults import Faults
from wincontainers.sim.leases import Leases
from wincontainers.sim.model import ComputeSystem, Handle
from wincontainers.sim.network import Networks
from wincontainers.sim.tokens import Tokens
from wincontainers.sim.winfs import WinFs, privilege_bits

__all__ = ["HostState"]


class HostState:
    """State of the simulated host; every mutation happens under ``self.lock``."""

    def __init__(self, root: Path, socket_path: Path, *, elevated: bool = True) -> None:
        self.root = root
        self.socket_path = socket_path
        self.lock = threading.RLock()
        ntfs.set_volume_root(root)
        self.storage = st.Storage(root)
        self.tokens = Tokens(elevated)
        self.files = WinFs(root, self.tokens, self._volume_content)
        self.leases = Leases(lambda pid: privilege_bits(self.tokens.of(pid)))
        self.leases.adopt = lambda lease, hid, access, share, flags, directory, rel: self.files.adopt(
            hid, lease.pid, lease.owner, lease.path_of(rel), access, share, flags, directory)
        self.files.through_link = lambda host: self.leases.touched([host], None)
        self.faults = Faults()
        self.systems: dict[str, ComputeSystem] = {}
        self.handles: dict[int, Handle] = {}
        self._next_id = 1
        self.call_log: dict[int, list[str]] = {}
        self.document_log: dict[int, list[dict[str, Any]]] = {}
        self.misuse: dict[int, list[str]] = {}
        self.host_networks: dict[str, Networks] = {}
        self.version = "10.0"  # the profile's build, as `ver` shows it (set by the daemon)
        self.zygote_log = root / "daemon" / "processes.log"

    def _volume_content(self, guid: str) -> Optional[Path]:
        """``\\\\?\\Volume{guid}\\`` -> the folder that plays that mounted sandbox volume."""
        with self.lock:
            vol = self.storage.volumes.get(guid.lower())
            return vol.content if vol is not None else None
