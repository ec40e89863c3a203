"""Host: the entry point. Opens the real HCS (Windows) or a simulated one, picks the driver.

    from wincontainers import Host

    with Host.open(sim="ws2019") as host:          # or Host.open() on Windows
        with host.containers.create("windowsservercore") as c:
            c.start()
            print(c.run('cmd /S /C "echo hello"').stdout)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sized, Union


from wincontainers import errors
from wincontainers._native import library, oshandle
from wincontainers.containers import ContainerCollection
from wincontainers.display import Cell, RichDisplay, Shown, Value
from wincontainers.driver import Driver, open_driver
from wincontainers.images.model import BaseImage
from wincontainers.images.sources import host_base_images
from wincontainers.layers import LayerCollection
from wincontainers.records import RecordStore
from wincontainers.statefiles import StateFiles

if TYPE_CHECKING:
    from wincontainers.images.store import ImageStore
    from wincontainers.networks import NetworkCollection

__all__ = ["Host", "BaseImage"]  # BaseImage lives in images.model; here for older imports


class Host(RichDisplay):
    """A Windows container host, real or simulated. Use :meth:`open`."""

    def __init__(
        self,
        binding: library.Binding,
        *,
        state_dir: Path,
        build: int,
        simulator: Any = None,
    ) -> None:
        self.binding = binding
        #: kernel32/advapi32 of this host (System32, or the simulated host's): files, processes, token
        self.win32 = binding.win32
        #: the library's small state files (records, claims, layer info, the image index)
        self.files = StateFiles(self.win32)
        self.driver: Driver = open_driver(binding)
        self.generation: int = binding.generation
        self.build = build
        self.simulator = simulator
        self.state_dir = state_dir
        self.layers_root = state_dir / "layers"
        self.files.makedirs(self.layers_root)
        self.records = RecordStore(self.files, state_dir)
        self.containers = ContainerCollection(self)
        self.layers = LayerCollection(self.driver, self.win32, self.files, self.layers_root,
                                      state_dir / "layer-info", self.records, self.containers.status_of)
        #: how to open this host again in another process (the monitor of a detached container)
        self.open_arguments: list[str] = []
        self._images: Optional["ImageStore"] = None
        self._networks: Optional["NetworkCollection"] = None

    @property
    def networks(self) -> "NetworkCollection":
        """Networks and endpoints (HNS, HCN, or TP3's NAT), created on first use."""
        if self._networks is None:
            from wincontainers.networks import NetworkCollection

            self._networks = NetworkCollection(self.binding, self.state_dir, self.files, self.records)
        return self._networks

    @property
    def images(self) -> "ImageStore":
        """The image store (created on first use under ``<state>/images``)."""
        if self._images is None:
            from wincontainers.images.model import OWNER

            self._images = self._image_store(self.state_dir / "images", OWNER)
        return self._images

    def image_store(self, root: Union[str, Path]) -> "ImageStore":
        """An image store at ``root`` over this host's layers and containers (``images`` is the
        one under the state folder; another serves as a second registry-like store).

        Each store marks the layer folders it makes as its own (``Layer.owner``), so that one
        store's ``gc`` never collects the layers of another on the same host.
        """
        import hashlib

        from wincontainers.images.model import OWNER

        where = os.path.normcase(os.path.abspath(os.fspath(root)))
        if where == os.path.normcase(os.path.abspath(self.state_dir / "images")):
            return self.images
        return self._image_store(Path(root), f"{OWNER}:{hashlib.sha256(where.encode()).hexdigest()[:16]}")

    def _image_store(self, root: Path, owner: str) -> "ImageStore":
        from wincontainers.images.store import ImageStore

        return ImageStore(root, driver=self.driver, win32=self.win32, files=self.files, layers=self.layers,
                          container_records=self.records, remove_damaged_container=self.containers.remove_damaged,
                          owner=owner, build=self.build)

    @classmethod
    def open(
        cls,
        *,
        sim: Optional[str] = None,
        root: Union[str, Path, None] = None,
        generation: Optional[int] = None,
    ) -> "Host":
        """Open this machine's HCS, or the simulated host ``sim`` (``tp3``, ``2016``, ``ws2019``).

        Without ``sim``, ``WINCONTAINERS_SIM`` is honoured; on a machine without HCS the error says
        to use the simulator. ``generation`` forces an API generation the host offers.
        """
        if generation is not None and generation not in (1, 2, 3):
            raise errors.BadInput(f"generation is 1, 2 or 3, not {generation!r}")
        sim = sim or os.environ.get("WINCONTAINERS_SIM") or None
        if sim is not None:
            return cls.simulated(sim, root=root, generation=generation)
        system_dir = oshandle.system_directory()
        if system_dir is None or not (system_dir / "vmcompute.dll").exists():
            raise errors.HcsUnavailable(
                "no Host Compute Service on this machine (vmcompute.dll not found); use the simulated host: "
                "Host.open(sim='ws2019') or `wincontainers --sim ws2019 ...`"
            )
        binding = library.load(system_dir, generation)
        program_data = Path(os.environ.get("ProgramData", r"C:\ProgramData"))
        state = Path(root) if root is not None else program_data / "wincontainers"
        version = getattr(sys, "getwindowsversion", None)
        build = int(version().build) if version is not None else 0
        host = cls(binding, state_dir=state, build=build)
        host.open_arguments = ["--root", str(state)] + (["--generation", str(generation)] if generation else [])
        return host

    @classmethod
    def simulated(
        cls,
        profile: str = "ws2019",
        *,
        root: Union[str, Path, None] = None,
        generation: Optional[int] = None,
    ) -> "Host":
        """Open (starting it if needed) the simulated host ``profile`` under ``root``."""
        if sys.platform == "win32":
            raise errors.HcsUnavailable("the simulated host runs on POSIX systems; on Windows use Host.open()")
        from wincontainers.sim.control import SimulatedHost

        simulator = SimulatedHost(profile, root).start()
        binding = library.load(simulator.system_directory, generation)
        host = cls(binding, state_dir=simulator.root / "wincontainers", build=simulator.profile.build,
                   simulator=simulator)
        host.open_arguments = (["--sim", simulator.profile.name, "--root", str(simulator.root)]
                               + (["--generation", str(generation)] if generation else []))
        return host

    def _shown_(self) -> Shown:
        def count(what: Callable[[], Sized]) -> Value:
            try:
                return len(what())
            except errors.HcsError as exc:  # a display never raises: it says what it could not ask
                return f"? ({type(exc).__name__})"

        where = f"simulated {self.simulator.profile.name}" if self.simulator else "this machine"
        return Shown("Host", where, fields=(
            ("Windows build", self.build), ("API generation", self.generation),
            ("state folder", Cell(self.state_dir.name, title=str(self.state_dir))),
            ("containers", count(lambda: list(self.records.all()))), ("images", count(self.images.list)),
            ("layers", count(self.layers.list)), ("networks", count(self.networks.list))))

    def __repr__(self) -> str:
        where = f"simulated {self.simulator.profile.name}" if self.simulator else "local"
        return f"<Host {where} build {self.build} gen{self.generation}>"

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.driver.close()

    # -- facts -------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        return f"10.0.{self.build}.0"

    @property
    def is_simulated(self) -> bool:
        return self.simulator is not None

    def base_images(self) -> list[BaseImage]:
        """The host's base OS images (GetBaseImages)."""
        return host_base_images(self.driver)

    def info(self) -> dict[str, Any]:
        """A summary like ``docker info``."""
        props = self.driver.service_properties()
        return {
            "simulated": self.is_simulated,
            "profile": self.simulator.profile.name if self.simulator else None,
            "build": self.build,
            "version": self.version,
            "generation": self.generation,
            "system_directory": str(self.binding.system_dir),
            "state_directory": str(self.state_dir),
            "schema_versions": [f"{v.get('Major')}.{v.get('Minor')}" for v in props.get("SupportedSchemaVersions", [])],
            "base_images": [f"{i.name} {i.version}" for i in self.base_images()],
            "containers": len(list(self.records.all())),
            # The simulated host confines its containers' processes with bubblewrap when it can.
            "confinement": (self.simulator.status() or {}).get("confinement") if self.simulator else None,
        }
