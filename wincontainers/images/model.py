"""The image store's values: images, layer records, reports, the digests and names of the OCI
image layout, and the small pure functions over them. No I/O beyond reading a file to hash it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any, Optional, Sequence, Union

import attrs

from wincontainers import errors
from wincontainers.display import RichDisplay, Shown, short_id, when
from wincontainers.images.reference import Reference, ReferenceError_, parse_reference

__all__ = ["MEDIA_INDEX", "MEDIA_MANIFEST", "MEDIA_CONFIG", "MEDIA_LAYER", "REPAIR_HINT", "INDEX_HINT", "OWNER",
           "NAME_ANNOTATION", "REF_ANNOTATION", "COPY_CHUNK", "ImageNotFound", "BaseImage", "LayerRecord", "Image",
           "ImageLike", "FsckReport", "GcReport", "digest_of", "chain_id", "hex_of", "canonical_json", "safe_ref",
           "platform_of", "file_digest", "copy_into"]

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"

REPAIR_HINT = "`wincontainers image fsck --repair` moves damaged files aside and rebuilds what it can"
INDEX_HINT = "`wincontainers image fsck --repair` rebuilds the index from the manifests in the store"
OWNER = "images"  # Layer.owner of the folders the image store makes (it may collect them)
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
COPY_CHUNK = 1 << 20


@attrs.frozen
class BaseImage:
    """A base OS image of the host (from GetBaseImages), usable as a container image name."""

    name: str
    version: str
    path: str
    size: int = 0
    created: str = ""

    @property
    def tag(self) -> str:
        return f"{self.name.lower()}:{self.version}"


class ImageNotFound(errors.NotFound):
    """No image of the store, nor a base image of the host, has that name; ``offered``: the
    host's base images (``name:version``), which a name like ``windowsservercore`` finds."""

    def __init__(self, ref: str, offered: Sequence[str] = ()) -> None:
        self.ref = ref
        self.offered = tuple(offered)
        super().__init__("find image", subject=f"{ref!r}", message="no such image",
                         hint="`wincontainers images` lists the store's images and the host's base images")

    def __str__(self) -> str:
        text = f"no such image: {self.ref!r}"
        if self.offered:
            text += f" (base images on this host: {', '.join(self.offered)})"
        return f"{self.context}: {text}. Hint: {self.hint}" if self.context else f"{text}. Hint: {self.hint}"


def digest_of(data: bytes) -> str:
    """The OCI digest of these bytes (``sha256:<hex>``)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_id(diff_ids: Sequence[str]) -> str:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    if not diff_ids:
        raise ValueError("no layers")
    chain = diff_ids[0]
    for diff in diff_ids[1:]:
        chain = digest_of(f"{chain} {diff}".encode())
    return chain


def hex_of(digest: str) -> str:
    """The hex of a sha256 digest (a blob's file name); BadInput for anything else."""
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise errors.BadInput(f"not a sha256 digest: {digest!r}")
    return value


def canonical_json(doc: Any) -> bytes:
    """The bytes the store writes a document as (compact, UTF-8): a digest names them."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@attrs.frozen
class LayerRecord:
    """One layer of the store, keyed by its chain ID.

    ``folder`` is the layer folder (None for a foreign layer that is not on this host);
    ``blob`` the digest of the layer tar we keep, if any; ``owned`` says the store made the
    folder (gc may destroy it) rather than borrowing it (a host base image, Docker's store).
    """

    chain_id: str
    diff_id: str
    parent: Optional[str] = None
    folder: Optional[str] = None
    size: int = 0
    blob: Optional[str] = None
    media_type: str = MEDIA_LAYER
    owned: bool = True
    descriptor: Optional[dict[str, Any]] = None  # a foreign layer's descriptor (urls), as loaded
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "LayerRecord":
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in fields})


@attrs.frozen
class Image(RichDisplay):
    """An image: its config (parsed; ``config_bytes`` as stored), manifest and tags."""

    id: str
    manifest_digest: str
    config: dict[str, Any] = attrs.field(repr=False)
    config_bytes: bytes = attrs.field(repr=False)
    manifest: dict[str, Any] = attrs.field(repr=False)
    tags: tuple[Reference, ...] = ()

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple((self.config.get("rootfs") or {}).get("diff_ids") or ())

    @property
    def chain_ids(self) -> tuple[str, ...]:
        ids = self.diff_ids
        return tuple(chain_id(ids[:i + 1]) for i in range(len(ids)))

    @property
    def top_chain_id(self) -> Optional[str]:
        return chain_id(self.diff_ids) if self.diff_ids else None

    @property
    def created(self) -> Optional[str]:
        value = self.config.get("created")
        return value if isinstance(value, str) else None

    @property
    def os_version(self) -> Optional[str]:
        value = self.config.get("os.version")
        return value if isinstance(value, str) else None

    @property
    def container_config(self) -> dict[str, Any]:
        value = self.config.get("config")
        return value if isinstance(value, dict) else {}

    @property
    def history(self) -> list[dict[str, Any]]:
        value = self.config.get("history")
        return list(value) if isinstance(value, list) else []

    @property
    def repo_tags(self) -> list[str]:
        return [t.familiar for t in self.tags]

    def _shown_(self) -> Shown:
        config = self.container_config
        command = config.get("Entrypoint") or config.get("Cmd")
        return Shown("Image", self.repo_tags[0] if self.tags else short_id(self.id), fields=(
            ("ID", short_id(self.id)), ("tags", ", ".join(self.repo_tags) or "<none>"),
            ("created", when(self.created)), ("OS version", self.os_version), ("layers", len(self.diff_ids)),
            ("command", " ".join(command) if isinstance(command, list) else command),
            ("history", f"{len(self.history)} steps" if self.history else None)))


@attrs.frozen
class FsckReport:
    """``errors``: references to missing or corrupt objects (a broken store); ``garbage``:
    unreferenced objects (what an interrupted operation leaves; ``gc()`` removes them)."""

    errors: tuple[str, ...] = ()
    garbage: tuple[str, ...] = ()
    #: with ``repair``: files moved to the quarantine folder (each with what was wrong), and
    #: what was rebuilt
    quarantined: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [f"quarantined: {q}" for q in self.quarantined] + [f"repaired: {r}" for r in self.repaired]
        lines += [f"error: {e}" for e in self.errors] + [f"garbage: {g}" for g in self.garbage]
        return "\n".join(lines) or "clean"


@attrs.frozen
class GcReport:
    blobs: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    other: tuple[str, ...] = ()
    bytes_freed: int = 0


ImageLike = Union[Image, str]


def safe_ref(text: str) -> Reference:
    """The reference ``text`` names, or an empty one that matches no tag."""
    try:
        return parse_reference(text)
    except ReferenceError_:
        return Reference("", "")


def platform_of(config: dict[str, Any]) -> dict[str, Any]:
    """The OCI platform of an image config (an index entry's ``platform``)."""
    platform = {"architecture": config.get("architecture", "amd64"), "os": config.get("os", "windows")}
    if config.get("os.version"):
        platform["os.version"] = config["os.version"]
    return platform


def file_digest(path: Path) -> str:
    """The digest of a file, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def copy_into(src: IO[bytes], dst: IO[bytes]) -> int:
    """Copy a stream to its end in chunks; the number of bytes."""
    total = 0
    while chunk := src.read(COPY_CHUNK):
        dst.write(chunk)
        total += len(chunk)
    return total
