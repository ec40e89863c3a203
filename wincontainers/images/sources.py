"""Images the store did not make but can use as ``FROM``, without copying their layer folders.

- **The host's OS images** (``GetBaseImages``: TP3's ``Images\\CN=Microsoft_<Name>_<Version>``
  central store, layer-format.md 2.6): registered as ``<name>:latest`` and ``<name>:<version>``.
  Their diff ID is the digest of the layer tar an export of the folder gives (computed once).
- **Docker's windowsfilter store** (``imagedb`` and ``layerdb``, layer-format.md 2.5): an image
  found there is recorded with Docker's config bytes (so the same image ID) and layer records
  pointing at Docker's layer folders, which the store never modifies or removes.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

import attrs

from wincontainers import errors
from wincontainers.images.model import BaseImage, LayerRecord, chain_id
from wincontainers.images.reference import Reference, ReferenceError_, parse_reference
from wincontainers.statefiles import read_optional_json

if TYPE_CHECKING:
    from wincontainers.driver import Driver
    from wincontainers.images.store import Image, ImageStore

__all__ = ["host_base_images", "register_host_image", "find_host_image", "published_names", "published_build",
           "PUBLISHED_NAMES",
           "DockerStore", "DockerImage",
           "register_docker_image", "default_docker_root"]

DEFAULT_CMD = ["c:\\windows\\system32\\cmd.exe"]


class _Discard:
    """A writable that only counts (the export is hashed by the tar writer)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def host_base_images(driver: "Driver") -> list[BaseImage]:
    """The host's base OS images (GetBaseImages)."""
    return [BaseImage(i.name, i.version, i.path, i.size, i.created) for i in driver.base_images()]


def default_docker_root() -> Optional[Path]:
    """Docker's data root on this machine (``C:\\ProgramData\\docker``), if there is one."""
    if os.name == "nt":
        root = Path(os.environ.get("ProgramData", r"C:\ProgramData")) / "docker"
        return root if root.is_dir() else None
    return None


#: The names Microsoft published each build's OS images under (the tags Dockerfiles name), by
#: build and image: a host whose own OS image is that build's answers to them, as a host that
#: pulled them would. ``{build}`` tags (``10.0.17763.1234``) are any revision of the build.
PUBLISHED_NAMES: Mapping[int, Mapping[str, tuple[str, ...]]] = {
    14393: {
        "windowsservercore": ("mcr.microsoft.com/windows/servercore:ltsc2016", "microsoft/windowsservercore:ltsc2016",
                              "microsoft/windowsservercore:10.0.14393.{revision}"),
        "nanoserver": ("mcr.microsoft.com/windows/nanoserver:sac2016", "microsoft/nanoserver:sac2016",
                       "microsoft/nanoserver:10.0.14393.{revision}"),
    },
    17763: {
        "windowsservercore": ("mcr.microsoft.com/windows/servercore:ltsc2019", "mcr.microsoft.com/windows/servercore:1809",
                              "mcr.microsoft.com/windows/servercore:10.0.17763.{revision}"),
        "nanoserver": ("mcr.microsoft.com/windows/nanoserver:1809", "mcr.microsoft.com/windows/nanoserver:ltsc2019",
                       "mcr.microsoft.com/windows/nanoserver:10.0.17763.{revision}"),
    },
}


def published_names(base: BaseImage) -> list[str]:
    """The published names of a host OS image (its revision filled in)."""
    try:
        build, revision = (int(p) for p in base.version.split(".")[2:4])
    except ValueError:
        return []
    names = PUBLISHED_NAMES.get(build, {}).get(base.name.lower(), ())
    return [n.format(revision=revision) for n in names]


def _published_match(wanted: Reference, base: BaseImage) -> bool:
    try:
        build = int(base.version.split(".")[2])
    except (ValueError, IndexError):
        return False
    for name in PUBLISHED_NAMES.get(build, {}).get(base.name.lower(), ()):
        if "{revision}" in name:
            pattern = parse_reference(name.replace("{revision}", "0"))
            if (pattern.domain, pattern.path) == (wanted.domain, wanted.path) and wanted.tag and re.fullmatch(
                    rf"10\.0\.{build}\.[0-9]+", wanted.tag):
                return True
        elif parse_reference(name) == wanted:
            return True
    return False


def published_build(ref: str) -> Optional[int]:
    """The Windows build a published OS image name stands for (``...servercore:ltsc2019`` ->
    17763), or None for any other name."""
    try:
        wanted = parse_reference(ref)
    except ReferenceError_:
        return None
    for build, images in PUBLISHED_NAMES.items():
        for name, names in images.items():
            if _published_match(wanted, BaseImage(name, f"10.0.{build}.0", "")):
                return build
    return None


def find_host_image(store: "ImageStore", ref: str) -> Optional[BaseImage]:
    """The host base image ``ref`` names: ``windowsservercore``, ``nanoserver:10.0.17763.0``, or
    a name Microsoft published that build under (``mcr.microsoft.com/windows/servercore:ltsc2019``)."""
    try:
        wanted = parse_reference(ref)
    except ReferenceError_:
        return None
    for image in store.base_images():
        if wanted.domain == "docker.io" and wanted.path.startswith("library/") and \
                image.name.lower() == wanted.path[len("library/"):] and wanted.tag in ("latest", image.version):
            return image
        if _published_match(wanted, image):
            return image
    return None


def register_host_image(store: "ImageStore", base: BaseImage) -> "Image":
    """Record a host base image (once): its layer points at the host's folder."""
    name, version, folder = base.name.lower(), base.version, str(base.path)
    marker = store.root / "host-images" / f"{name}-{version}.json"
    known: Optional[dict[str, Any]] = None
    doc = read_optional_json(store.files, marker)
    known = doc if isinstance(doc, dict) else None
    if known is None or known.get("folder") != folder:
        result = store.layers.export_tar(folder, _Discard())  # type: ignore[arg-type]
        known = {"folder": folder, "diff_id": result.diff_id, "size": result.size}
        store.files.makedirs(marker.parent)
        store.files.write(marker, json.dumps(known).encode(), durable=True)
    diff_id = known["diff_id"]
    record = LayerRecord(chain_id=diff_id, diff_id=diff_id, folder=folder, size=int(known["size"]), owned=False,
                         created=time.time())
    if store.get_layer(record.chain_id) is None:
        store.put_layer(record)
    created = base.created or "1970-01-01T00:00:00Z"
    config = {
        "architecture": "amd64",
        "config": {"Cmd": DEFAULT_CMD},
        "created": created,
        "history": [{"created": created, "created_by": f"Apply image {base.name} {version}"}],
        "os": "windows",
        "os.version": version,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    return store.add(config, [record], tags=[f"{name}:latest", f"{name}:{version}", *published_names(base)])


# -- Docker's windowsfilter store --------------------------------------------------------------------


@attrs.frozen
class DockerImage:
    id: str
    config_bytes: bytes
    tags: tuple[str, ...]
    layers: tuple[LayerRecord, ...]  # base first, folders in Docker's windowsfilter


class DockerStore:
    """Read-only view of ``<data-root>\\image\\windowsfilter`` and ``<data-root>\\windowsfilter``."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = Path(data_root)
        self.meta = self.data_root / "image" / "windowsfilter"

    def exists(self) -> bool:
        return (self.meta / "imagedb").is_dir()

    def repositories(self) -> dict[str, str]:
        """``name:tag`` (familiar) -> image ID."""
        try:
            doc = json.loads((self.meta / "repositories.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        out: dict[str, str] = {}
        for refs in (doc.get("Repositories") or {}).values():
            for ref, image_id in (refs or {}).items():
                if "@" not in ref:
                    out[ref] = image_id
        return out

    def find(self, ref: str) -> Optional[DockerImage]:
        try:
            wanted = parse_reference(ref)
        except ReferenceError_:
            wanted = None
        repos = self.repositories()
        image_id = None
        for name, candidate in repos.items():
            try:
                if wanted is not None and parse_reference(name) == wanted:
                    image_id = candidate
                    break
            except ReferenceError_:
                continue
        if image_id is None:
            bare = ref[7:] if ref.startswith("sha256:") else ref
            matches = [i for i in set(repos.values()) if i[7:].startswith(bare)] if len(bare) >= 4 else []
            if len(matches) == 1:
                image_id = matches[0]
        if image_id is None:
            return None
        return self.load(image_id, tags=[n for n, i in repos.items() if i == image_id])

    def load(self, image_id: str, tags: list[str]) -> DockerImage:
        hex_id = image_id.split(":", 1)[-1]
        config_path = self.meta / "imagedb" / "content" / "sha256" / hex_id
        try:
            config_bytes = config_path.read_bytes()
        except OSError:
            raise errors.NotFound("docker image", subject=f"image {image_id}",
                                  message=f"{config_path} is missing from Docker's store") from None
        config = json.loads(config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        layers: list[LayerRecord] = []
        for i, diff_id in enumerate(diff_ids):
            chain = chain_id(diff_ids[:i + 1])
            layerdb = self.meta / "layerdb" / "sha256" / chain.split(":", 1)[1]
            try:
                cache_id = (layerdb / "cache-id").read_text(encoding="utf-8").strip()
                size = int((layerdb / "size").read_text(encoding="utf-8").strip() or 0)
                if not re.fullmatch(r"[0-9a-f]{64}", cache_id):
                    raise ValueError(f"cache-id {cache_id[:80]!r} is not a layer ID")
            except (OSError, ValueError):
                raise errors.NotFound("docker image", subject=f"layer {chain[:19]}",
                                      message=f"{layerdb} is incomplete in Docker's store") from None
            descriptor = None
            if (layerdb / "descriptor.json").exists():
                descriptor = json.loads((layerdb / "descriptor.json").read_text(encoding="utf-8"))
            folder = self.data_root / "windowsfilter" / cache_id
            if not folder.is_dir():
                raise errors.NotFound("docker image", subject=f"layer {chain[:19]}",
                                      message=f"the layer folder {folder} is missing")
            layers.append(LayerRecord(chain_id=chain, diff_id=diff_id, parent=layers[-1].chain_id if layers else None,
                                      folder=str(folder), size=size, owned=False, descriptor=descriptor,
                                      created=os.path.getmtime(folder)))
        return DockerImage(id=image_id, config_bytes=config_bytes, tags=tuple(tags), layers=tuple(layers))


def register_docker_image(store: "ImageStore", image: DockerImage) -> "Image":
    """Record a Docker image by reference (no layer folder is copied)."""
    for record in image.layers:
        if store.get_layer(record.chain_id) is None:
            store.put_layer(record)
    return store.add(image.config_bytes, list(image.layers), tags=list(image.tags))
