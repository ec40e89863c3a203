"""The image store: an OCI image layout over unpacked layer folders.

Layout under ``<state>/images/``::

    oci-layout               {"imageLayoutVersion":"1.0.0"}
    index.json               one entry per image manifest; tags as annotations
                             (io.containerd.image.name = full name, org.opencontainers.image.ref.name = tag)
    blobs/sha256/<hex>       image configs, manifests, and the layer tars we keep
    layers/<chain-hex>.json  a layer: diff ID, parent chain ID, its folder, its blob (if kept)
    leases/<pid>-<n>.json    objects a running operation is creating (gc leaves them alone)
    tmp/                     files being written
    lock                     held while index.json or a layer record changes

Every file is written to ``tmp/``, fsynced and renamed into place, and in this order: blobs,
then layer folders and their records, then ``index.json``. A process killed at any moment
therefore leaves at worst unreferenced objects, which :meth:`ImageStore.fsck` reports as
garbage (not errors) and :meth:`ImageStore.gc` removes; a tag never points at something missing.
Image IDs are ``sha256:`` of the config bytes, as Docker's.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    Iterator,
    Optional,
    Sequence,
    Union,
)

import attrs

from wincontainers.layers.progress import ProgressArg
from wincontainers import errors
from wincontainers._native import oshandle
from wincontainers.images.reference import Reference, ReferenceError_, parse_reference
from wincontainers.statefiles import read_optional_json

if TYPE_CHECKING:
    from wincontainers.host import Host
    from wincontainers.images.archive import LoadResult
    from wincontainers.records import DamagedContainer

__all__ = ["ImageStore", "Image", "LayerRecord", "FsckReport", "GcReport", "chain_id", "digest_of",
           "MEDIA_MANIFEST", "MEDIA_CONFIG", "MEDIA_LAYER", "MEDIA_INDEX", "ImageNotFound"]

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
log = logging.getLogger("wincontainers.images")
REPAIR_HINT = "`wincontainers image fsck --repair` moves damaged files aside and rebuilds what it can"
INDEX_HINT = "`wincontainers image fsck --repair` rebuilds the index from the manifests in the store"
OWNER = "images"  # Layer.owner of the folders the image store makes (it may collect them)
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
_COPY_CHUNK = 1 << 20


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
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_id(diff_ids: Sequence[str]) -> str:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    if not diff_ids:
        raise ValueError("no layers")
    chain = diff_ids[0]
    for diff in diff_ids[1:]:
        chain = digest_of(f"{chain} {diff}".encode())
    return chain


def _hex(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise errors.BadInput(f"not a sha256 digest: {digest!r}")
    return value


def canonical_json(doc: Any) -> bytes:
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
class Image:
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


class ImageStore:
    """``host.images``."""

    def __init__(self, host: "Host", root: Optional[Path] = None) -> None:
        self.host = host
        self.root = Path(root) if root is not None else host.state_dir / "images"
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.leases_dir = self.root / "leases"
        self.tmp_dir = self.root / "tmp"
        #: JSON documents (index, layer records, leases, build cache) go through kernel32
        self.files = host.files
        for folder in (self.blobs_dir, self.layers_dir, self.leases_dir, self.tmp_dir):
            self.files.makedirs(folder)
        if not self.files.exists(self.root / "oci-layout"):
            self._write_file(self.root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if not self.files.exists(self.root / "index.json"):
            self._write_index({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []})
        self._lease_counter = itertools.count()
        self._lock_owner = threading.local()  # how deep this thread is in locked()
        self._thread_lock = threading.Lock()  # the file lock is the process's; threads take turns
        #: Docker's data root (``C:\\ProgramData\\docker``): its windowsfilter images are usable as FROM
        self.docker_root: Optional[Path] = _default_docker_root()

    # -- atomic files ----------------------------------------------------------------------------

    def _tmp_file(self, suffix: str = "") -> tuple[int, str]:
        return tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=suffix, dir=self.tmp_dir)

    def _write_file(self, path: Path, data: bytes) -> None:
        """Replace a JSON document of the store: durable, atomic for readers, retried while a
        reader on Windows holds the old one (:mod:`wincontainers.statefiles`)."""
        self.files.write(path, data, durable=True)

    def _write_blob(self, path: Path, data: bytes) -> None:
        """A new blob, written in ``tmp/`` first (a blob name is its digest: never replaced
        while read, so a plain rename serves)."""
        fd, tmp = self._tmp_file()
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store's write lock (across processes and threads; a thread holding it may take
        it again)."""
        depth = getattr(self._lock_owner, "depth", 0)
        if depth:
            self._lock_owner.depth = depth + 1
            try:
                yield
            finally:
                self._lock_owner.depth = depth
            return
        with self._thread_lock:
            fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                oshandle.lock_file(fd)
                self._lock_owner.depth = 1
                try:
                    yield
                finally:
                    self._lock_owner.depth = 0
                    oshandle.unlock_file(fd)
            finally:
                os.close(fd)

    # -- leases: what an operation in progress is making -------------------------------------------

    @contextlib.contextmanager
    def lease(self) -> Iterator["Lease"]:
        """Objects named in a live lease are never collected; a killed process's lease is ignored."""
        path = self.leases_dir / f"{os.getpid()}-{next(self._lease_counter)}-{time.monotonic_ns()}.json"
        lease = Lease(self, path)
        lease.save()
        try:
            yield lease
        finally:
            self.files.remove(path)

    def hold_layers(self, lease: "Lease", records: Sequence[LayerRecord]) -> bool:
        """Hold ``records`` (a chain an operation goes on to use) in ``lease``; False when one of
        them was collected before the hold took effect (the caller must not use the chain)."""
        if not records:
            return True
        lease.hold(*(r.chain_id for r in records))
        # gc looks at leases under the store lock: what it missed is gone
        return all(self.usable_layer(record.chain_id) is not None for record in records)

    def _live_leases(self) -> tuple[set[str], set[str], dict[str, builtins.list[str]]]:
        """One pass over the leases: (objects held by live leases, folders live leases are
        making (normalized), lease files of dead processes with the folders they name)."""
        held: set[str] = set()
        making: set[str] = set()
        stale: dict[str, builtins.list[str]] = {}
        for name in self.files.names(self.leases_dir, ".json"):
            path = self.leases_dir / name
            pid = int(name.split("-", 1)[0]) if name.split("-", 1)[0].isdigit() else -1
            doc = read_optional_json(self.files, path)
            folders = [f for f in (doc.get("folders") or []) if isinstance(f, str)] if isinstance(doc, dict) else []
            if not self.host.win32.process_alive(pid):
                stale[str(path)] = folders
                continue
            if isinstance(doc, dict):
                held.update(str(o) for o in doc.get("objects", []) if isinstance(o, str))
            making.update(os.path.normcase(os.path.abspath(f)) for f in folders)
        return held, making, stale

    # -- blobs -----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise errors.NotFound("read", subject=f"blob {digest}", message="the blob is not in the store",
                                  hint="`wincontainers image fsck` checks the store") from None

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob. The caller keeps it from a gc (a lease, or the index written
        under the same lock): "already there" is decided under the lock, as gc decides."""
        digest = digest_of(data)
        with self.locked():
            if not self.has_blob(digest):
                self._write_blob(self.blob_path(digest), data)
        return digest

    def put_blob_file(self, path: Union[str, "os.PathLike[str]"], digest: Optional[str] = None) -> str:
        """Move a finished file into the blobs (hashing it unless ``digest`` is known)."""
        if digest is None:
            digest = _file_digest(Path(path))
        target = self.blob_path(digest)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        with self.locked():  # a gc deleting the same blob right now must not win over the move
            if target.exists():
                os.unlink(path)
                return digest
            os.replace(path, target)
        _fsync_dir(target.parent)
        return digest

    def new_temp_file(self, suffix: str = "") -> Path:
        fd, name = self._tmp_file(suffix)
        os.close(fd)
        return Path(name)

    # -- layers ----------------------------------------------------------------------------------

    def _layer_path(self, chain: str) -> Path:
        return self.layers_dir / f"{_hex(chain)}.json"

    def get_layer(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain; None when there is none, :class:`errors.DamagedRecord`
        when it cannot be read."""
        path = self._layer_path(chain)
        try:
            doc = self.files.read_document(path, hint=REPAIR_HINT)
        except FileNotFoundError:
            return None
        try:
            return LayerRecord.from_json(doc)
        except (TypeError, ValueError) as exc:
            raise errors.DamagedRecord(path, f"not a layer record: {exc}", REPAIR_HINT) from None

    def put_layer(self, record: LayerRecord) -> LayerRecord:
        """Record a layer; the first record of a chain wins. When another process recorded the
        same chain with a folder of its own meanwhile, that record is returned and the caller's
        folder is the caller's to remove (see :meth:`add_layer`)."""
        with self.locked():
            if record.parent is not None and self.get_layer(record.parent) is None:
                raise errors.BadInput(f"layer {record.chain_id}: parent {record.parent} is not in the store")
            existing = self.find_layer(record.chain_id)
            if existing is not None and existing.folder and existing.folder != record.folder and \
                    Path(existing.folder).is_dir():
                if record.blob and not existing.blob and not existing.descriptor:
                    existing = attrs.evolve(existing, blob=record.blob, media_type=record.media_type)
                    self._write_file(self._layer_path(record.chain_id), canonical_json(existing.to_json()))
                return existing
            self._write_file(self._layer_path(record.chain_id), canonical_json(record.to_json()))
        return record

    def usable_layer(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain when its layer can be used: recorded, and its folder (a
        foreign layer has none) still there. :class:`errors.DamagedRecord` as :meth:`get_layer`."""
        record = self.get_layer(chain)
        if record is None or (record.folder is not None and not Path(record.folder).is_dir()):
            return None
        return record

    def find_layer(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain, or None when it is missing or cannot be read (listings
        show what they can; :meth:`get_layer` says why)."""
        try:
            return self.get_layer(chain)
        except (OSError, ValueError, TypeError, KeyError, errors.WincontainersError):
            return None

    def chain_folders(self, top: Optional[LayerRecord]) -> builtins.list[str]:
        """Folders of ``top`` and its parents, nearest first (empty for no layer)."""
        folders: builtins.list[str] = []
        record = top
        while record is not None:
            if record.folder is None:
                raise errors.NotFound("layers", subject=f"layer {record.chain_id[:19]}",
                                      message="a foreign layer that is not on this host",
                                      hint="load an archive that holds the layer first")
            folders.append(record.folder)
            record = self.get_layer(record.parent) if record.parent else None
        return folders

    def add_layer(self, source: Union[str, "os.PathLike[str]"], parent: Optional[LayerRecord], *,
                  lease: "Lease", keep_blob: bool = True, progress: ProgressArg = None) -> LayerRecord:
        """A layer tar (plain, gzip or zstd) on top of ``parent``: checked, imported into a new
        layer folder, its blob kept (so the image can be saved byte for byte). A layer already
        in the store (same chain) is reused. ``source`` is consumed (moved into the blobs)."""
        from wincontainers.layerfile import check_layer
        from wincontainers.layers.collection import LayerRejected

        parents = self.chain_folders(parent)
        report = check_layer(os.fspath(source), parents=[Path(p) for p in parents], base=parent is None)
        if not report.ok:
            raise LayerRejected(report)
        assert report.diff_id is not None
        chain = chain_id([parent.chain_id, report.diff_id]) if parent is not None else report.diff_id
        lease.hold(chain)
        existing = self.usable_layer(chain)
        if existing is not None:
            if keep_blob and existing.blob is None and existing.descriptor is None:
                kept, kept_media = self._keep(source, report.diff_id, lease)
                return self.put_layer(attrs.evolve(existing, blob=kept, media_type=kept_media))
            with contextlib.suppress(OSError):
                os.unlink(source)
            return existing
        media = MEDIA_LAYER
        blob: Optional[str] = None
        layer = self.host.layers.import_tar(os.fspath(source), parents=parents, base=parent is None, check=False,
                                            progress=progress, on_folder=lease.hold_folder, owner=OWNER)
        if layer.diff_id != report.diff_id:  # the file changed after it was checked: keep nothing of it
            self.host.layers.destroy(layer, force=True)
            raise errors.BadInput(f"the layer tar {os.fspath(source)!r} changed while it was imported "
                                  f"({report.diff_id[:19]} when checked, {str(layer.diff_id)[:19]} imported)")
        if keep_blob:
            blob, media = self._keep(source, report.diff_id, lease)
        record = LayerRecord(chain_id=chain, diff_id=report.diff_id, parent=parent.chain_id if parent else None,
                             folder=str(layer.path), size=layer.size or 0, blob=blob, media_type=media,
                             created=time.time())
        first = self.put_layer(record)
        if first.folder != record.folder:  # another process imported the same layer first: use its folder
            self._destroy_folder(str(layer.path))
        return first

    def _keep(self, source: Union[str, "os.PathLike[str]"], diff_id: str, lease: "Lease") -> tuple[str, str]:
        with open(source, "rb") as f:
            head = f.read(4)
        if head.startswith(b"\x1f\x8b"):
            media, digest = MEDIA_LAYER + "+gzip", None
        elif head == b"\x28\xb5\x2f\xfd":
            media, digest = MEDIA_LAYER + "+zstd", None
        else:
            media, digest = MEDIA_LAYER, diff_id
        if digest is None:
            digest = _file_digest(Path(source))
        lease.hold(digest)
        return self.put_blob_file(source, digest), media

    def layer_records(self) -> builtins.list[LayerRecord]:
        out = []
        for name in self.files.names(self.layers_dir, ".json"):
            with contextlib.suppress(OSError, ValueError, TypeError, errors.HcsError, errors.DamagedRecord):
                out.append(LayerRecord.from_json(self.files.read_json(self.layers_dir / name)))
        return out

    def layer_chain(self, image: ImageLike) -> builtins.list[LayerRecord]:
        """The image's layers, base first."""
        found = self.get(image)
        out = []
        for chain in found.chain_ids:
            record = self.get_layer(chain)
            if record is None:
                raise errors.NotFound("layers", subject=f"image {found.short_id}",
                                      message=f"layer {chain[:19]} is not in the store",
                                      hint="`wincontainers image fsck` checks the store")
            out.append(record)
        return out

    def layer_folders(self, image: ImageLike) -> builtins.list[str]:
        """Layer folders of the image, nearest first (as HCS and layerchain.json want them)."""
        folders = []
        for record in reversed(self.layer_chain(image)):
            if record.folder is None:
                raise errors.NotFound("layers", subject=f"layer {record.chain_id[:19]}",
                                      message="a foreign layer that is not on this host",
                                      hint="import the layer (or load an archive holding it) first")
            folders.append(record.folder)
        return folders

    # -- the index ---------------------------------------------------------------------------------

    def _read_index(self) -> dict[str, Any]:
        doc = self.files.read_document(self.root / "index.json", hint=INDEX_HINT)
        manifests = doc.get("manifests")
        doc["manifests"] = [e for e in manifests if isinstance(e, dict)] if isinstance(manifests, list) else []
        return doc

    def _write_index(self, doc: dict[str, Any]) -> None:
        self._write_file(self.root / "index.json", canonical_json(doc))

    def _images_from_index(self, doc: dict[str, Any]) -> builtins.list[Image]:
        by_digest: dict[str, tuple[dict[str, Any], builtins.list[Reference]]] = {}
        for entry in doc["manifests"]:
            digest = entry.get("digest")
            if not isinstance(digest, str):
                continue
            slot = by_digest.setdefault(digest, (entry, []))
            name = (entry.get("annotations") or {}).get(NAME_ANNOTATION)
            if name:
                with contextlib.suppress(ReferenceError_):
                    slot[1].append(parse_reference(name))
        images = []
        for digest, (_entry, tags) in by_digest.items():
            with contextlib.suppress(errors.NotFound, ValueError, KeyError):
                images.append(self._load_image(digest, tags))
        return images

    def _load_image(self, manifest_digest: str, tags: Sequence[Reference]) -> Image:
        manifest = json.loads(self.read_blob(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config_bytes = self.read_blob(config_digest)
        return Image(id=config_digest, manifest_digest=manifest_digest, config=json.loads(config_bytes),
                     config_bytes=config_bytes, manifest=manifest, tags=tuple(tags))

    # -- images ----------------------------------------------------------------------------------

    def list(self) -> builtins.list[Image]:
        """Every image (untagged ones too), newest first."""
        from wincontainers.images.config import parse_time

        images = self._images_from_index(self._read_index())
        epoch = parse_time("1970-01-01T00:00:00Z")
        return sorted(images, key=lambda i: parse_time(i.created) or epoch, reverse=True)  # type: ignore[arg-type,return-value]

    def get(self, ref: ImageLike) -> Image:
        """By tag (``app``, ``app:1.0``, full name), image ID (or a unique prefix) or manifest digest."""
        if isinstance(ref, Image):
            return ref
        text = ref.strip()
        images = self._images_from_index(self._read_index())
        bare = text[7:] if text.startswith("sha256:") else text
        if len(bare) >= 4 and all(c in "0123456789abcdef" for c in bare):
            matches = {i.id: i for i in images if i.id[7:].startswith(bare) or i.manifest_digest[7:].startswith(bare)}
            if len(matches) == 1:
                return next(iter(matches.values()))
            if len(matches) > 1:
                raise errors.BadInput(f"{text!r} matches {len(matches)} images; give more of the ID")
        try:
            wanted = parse_reference(text)
        except ReferenceError_:
            raise ImageNotFound(text) from None
        for image in images:
            for tag in image.tags:
                if tag.name == wanted.name and (tag.tag == wanted.tag or wanted.digest == image.manifest_digest):
                    return image
            if wanted.digest and wanted.digest == image.manifest_digest and any(t.name == wanted.name
                                                                                 for t in image.tags):
                return image
        raise ImageNotFound(text)

    def resolve(self, ref: ImageLike) -> Image:
        """:meth:`get`, or else a host OS image or an image of Docker's store, recorded on first use."""
        try:
            return self.get(ref)
        except ImageNotFound:
            if isinstance(ref, Image):
                raise
        from wincontainers.images import sources

        base = sources.find_host_image(self, ref)
        if base is not None:
            return sources.register_host_image(self, base)
        if self.docker_root is not None:
            docker = sources.DockerStore(self.docker_root)
            if docker.exists():
                found = docker.find(ref)
                if found is not None:
                    return sources.register_docker_image(self, found)
        raise ImageNotFound(ref, [f"{b.name.lower()}:{b.version}" for b in self.host.base_images()])

    def unregistered_host_images(self) -> builtins.list[Any]:
        """The host's base images no image of the store stands for yet (each is recorded the
        first time a name finds it): ``images`` lists them too."""
        tags = {str(t) for image in self.list() for t in image.tags}
        out = []
        for base in self.host.base_images():
            name = f"{base.name.lower()}:{base.version}"
            if str(parse_reference(name)) not in tags:
                out.append(base)
        return out

    def exists(self, ref: ImageLike) -> bool:
        try:
            self.get(ref)
            return True
        except errors.NotFound:
            return False

    def add(self, config: Union[dict[str, Any], bytes], layers: Sequence[LayerRecord],
            tags: Iterable[str] = ()) -> Image:
        """Record an image whose layers are already in the store (base first)."""
        config_bytes = config if isinstance(config, bytes) else canonical_json(config)
        parsed = json.loads(config_bytes)
        diff_ids = list((parsed.get("rootfs") or {}).get("diff_ids") or [])
        if [l.diff_id for l in layers] != diff_ids:
            raise errors.BadInput("the config's rootfs.diff_ids do not match the layers")
        refs = [parse_reference(t) for t in tags]
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": digest_of(config_bytes), "size": len(config_bytes)},
            "layers": [self._descriptor(record) for record in layers],
        }
        manifest_bytes = canonical_json(manifest)
        with self.locked():  # a gc sees the blobs and the index entry together, or neither
            for i, record in enumerate(layers):
                if record.chain_id != chain_id(diff_ids[:i + 1]) or self.get_layer(record.chain_id) is None:
                    raise errors.BadInput(f"layer {record.chain_id} is not in the store (or not in this chain)")
            self.put_blob(config_bytes)
            manifest_digest = self.put_blob(manifest_bytes)
            doc = self._read_index()
            entries = [e for e in doc["manifests"] if not self._entry_is_tag(e, refs)]
            base_entry = {"mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
                          "platform": _platform(parsed)}
            if refs:
                entries += [dict(base_entry, annotations={NAME_ANNOTATION: str(r), REF_ANNOTATION: r.tag or ""})
                            for r in refs]
            elif not any(e.get("digest") == manifest_digest for e in entries):
                entries.append(base_entry)
            entries = self._keep_untagged(entries, doc["manifests"])
            doc["manifests"] = entries
            self._write_index(doc)
        return self.get(manifest_digest[7:])

    def _descriptor(self, record: LayerRecord) -> dict[str, Any]:
        if record.descriptor is not None and record.blob is None:
            return dict(record.descriptor)
        digest = record.blob if record.blob is not None else record.diff_id
        media = record.media_type if record.blob is not None else MEDIA_LAYER
        return {"mediaType": media, "digest": digest, "size": record.size}

    @staticmethod
    def _entry_is_tag(entry: dict[str, Any], refs: Sequence[Reference]) -> bool:
        name = (entry.get("annotations") or {}).get(NAME_ANNOTATION)
        return bool(name) and any(name == str(r) for r in refs)

    @staticmethod
    def _keep_untagged(entries: builtins.list[dict[str, Any]],
                       before: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        """An image that lost its last tag stays, untagged (Docker's ``<none>``)."""
        present = {e.get("digest") for e in entries}
        for old in before:
            if old.get("digest") not in present:
                entries.append({k: v for k, v in old.items() if k != "annotations"})
                present.add(old.get("digest"))
        return entries

    def tag(self, image: ImageLike, ref: str) -> Reference:
        """``docker tag``: point ``ref`` at the image (moving it from another image)."""
        wanted = parse_reference(ref)
        if wanted.digest:
            raise errors.BadInput("a tag cannot hold a digest")
        with self.locked():
            found = self.get(image)
            doc = self._read_index()
            entries = [e for e in doc["manifests"] if not self._entry_is_tag(e, [wanted])]
            entries = [e for e in entries if not (e.get("digest") == found.manifest_digest and not e.get("annotations"))]
            entries.append({"mediaType": MEDIA_MANIFEST, "digest": found.manifest_digest,
                            "size": len(canonical_json(found.manifest)), "platform": _platform(found.config),
                            "annotations": {NAME_ANNOTATION: str(wanted), REF_ANNOTATION: wanted.tag or ""}})
            doc["manifests"] = self._keep_untagged(entries, doc["manifests"])
            self._write_index(doc)
        return wanted

    def remove(self, ref: str, *, force: bool = False, prune: bool = True) -> builtins.list[str]:
        """``docker rmi``: remove a tag; the image goes when no tag is left (or by ID with
        ``force``). Refused while a container uses it. Returns what was untagged/deleted."""
        done: builtins.list[str] = []
        with self.locked():  # decided on the index as it is: another process may tag it meanwhile
            found = self.get(ref)
            by_id = not any(str(t) == str(_safe_ref(ref)) for t in found.tags) if found.tags else True
            if by_id and len(found.tags) > 1 and not force:
                raise errors.InvalidState("rmi", subject=f"image {found.short_id}",
                                          message=f"it is tagged {', '.join(found.repo_tags)}",
                                          hint="remove the tags one by one, or use force")
            users = self._containers_using(found)
            removing_image = by_id or len(found.tags) <= 1
            if removing_image and users and not force:
                raise errors.InvalidState("rmi", subject=f"image {found.short_id}",
                                          message=f"containers {', '.join(u[:12] for u in users)} use it",
                                          hint="remove the containers first (wincontainers rm), or use force")
            doc = self._read_index()
            if removing_image:
                keep = [e for e in doc["manifests"] if e.get("digest") != found.manifest_digest]
                done += [f"Untagged: {t.familiar}" for t in found.tags] + [f"Deleted: {found.id}"]
            else:
                wanted = _safe_ref(ref)
                keep = [e for e in doc["manifests"] if not self._entry_is_tag(e, [wanted])]
                done.append(f"Untagged: {wanted.familiar}")
            doc["manifests"] = keep
            self._write_index(doc)
        if prune and removing_image:
            try:
                self.gc()
            except errors.DamagedRecord as exc:  # the image is removed; what it freed waits for a repair
                log.warning("not collecting after rmi: %s", exc)
        return done

    def _containers_using(self, image: Image) -> builtins.list[str]:
        """Containers created from this image (its top layer is their nearest parent)."""
        top = self._top_folder(image)
        if top is None:
            return []
        return sorted(c.id for c in self.host.records.all()
                      if c.layers and os.path.normcase(os.path.abspath(c.layers[0])) == top)

    def _top_folder(self, image: Image) -> Optional[str]:
        if image.top_chain_id is None:
            return None
        record = self.get_layer(image.top_chain_id)
        return os.path.normcase(os.path.abspath(record.folder)) if record and record.folder else None

    def history(self, ref: ImageLike) -> builtins.list[dict[str, Any]]:
        """``docker history``: newest first, with the layer each non-empty step made."""
        found = self.get(ref)
        diff_ids = list(found.diff_ids)
        rows = []
        layer_index = 0
        for entry in found.history:
            row = dict(entry)
            if not entry.get("empty_layer") and layer_index < len(diff_ids):
                row["diff_id"] = diff_ids[layer_index]
                layer_index += 1
            rows.append(row)
        return list(reversed(rows))

    def inspect(self, ref: ImageLike) -> dict[str, Any]:
        """``docker image inspect``-like document."""
        found = self.get(ref)
        records = [self.get_layer(c) for c in found.chain_ids]
        return {
            "Id": found.id,
            "RepoTags": found.repo_tags,
            "RepoDigests": [f"{t.familiar_name}@{found.manifest_digest}" for t in found.tags],
            "Created": found.created,
            "Author": found.config.get("author", ""),
            "Architecture": found.config.get("architecture"),
            "Os": found.config.get("os"),
            "OsVersion": found.os_version,
            "Config": found.container_config,
            "RootFS": {"Type": "layers", "Layers": list(found.diff_ids)},
            "Size": sum(r.size for r in records if r is not None),
            "GraphDriver": {"Name": "windowsfilter", "Data": {
                "dir": records[-1].folder if records and records[-1] else None}},
            "Manifest": found.manifest_digest,
        }

    # -- archives --------------------------------------------------------------------------------

    def save(self, images: Sequence[str], path: Union[str, "os.PathLike[str]"], *, format: str = "docker",
             progress: Optional[Callable[[int, int], None]] = None, overwrite: bool = False) -> Path:
        """``docker save``: see :func:`wincontainers.images.archive.save`."""
        from wincontainers.images.archive import save

        return save(self, images, path, format=format, progress=progress, overwrite=overwrite)

    def load(self, path: Union[str, "os.PathLike[str]"], *, repository: Optional[str] = None,
             progress: Optional[Callable[[int, int], None]] = None) -> "LoadResult":
        """``docker load``: see :func:`wincontainers.images.archive.load` (returns a LoadResult)."""
        from wincontainers.images.archive import load

        return load(self, path, repository=repository, progress=progress)

    # -- garbage ---------------------------------------------------------------------------------

    # -- the build cache (its configs and their layers are kept like images) -----------------------

    def _cache_file(self) -> Path:
        return self.root / "build-cache.json"

    def _read_cache(self) -> dict[str, str]:
        try:
            doc = self.files.read_json(self._cache_file())
        except (OSError, ValueError, errors.HcsError):
            return {}
        return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(
            doc, dict) else {}

    def cache_get(self, key: str) -> Optional[dict[str, Any]]:
        """The image config a build step with this key produced, if its layers are all here."""
        digest = self._read_cache().get(key)
        if digest is None or not self.has_blob(digest):
            return None
        try:
            return self._cached_config(digest)
        except (errors.DamagedRecord, ValueError):  # something it needs cannot be read: run the step again
            return None

    def _cached_config(self, digest: str) -> Optional[dict[str, Any]]:
        config = json.loads(self.read_blob(digest))
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if not all(self.usable_layer(chain_id(diff_ids[:i + 1])) is not None for i in range(len(diff_ids))):
            return None
        return config  # type: ignore[no-any-return]

    def cache_put(self, key: str, config: dict[str, Any]) -> str:
        with self.locked():  # the blob and the entry that keeps it, together for a gc
            digest = self.put_blob(canonical_json(config))
            cache = self._read_cache()
            cache[key] = digest
            self._write_file(self._cache_file(), canonical_json(cache))
        return digest

    def cache_keys(self) -> builtins.list[str]:
        """The keys of the build cache (one per build step that ran)."""
        return sorted(self._read_cache())

    def cache_remove(self, keys: Iterable[str]) -> int:
        """Forget these build cache entries (their images stay until :meth:`gc`); returns how many."""
        wanted = set(keys)
        if not wanted:
            return 0
        with self.locked():
            cache = self._read_cache()
            kept = {k: v for k, v in cache.items() if k not in wanted}
            if len(kept) != len(cache):
                self._write_file(self._cache_file(), canonical_json(kept))
        return len(cache) - len(kept)

    def cache_clear(self) -> int:
        with self.locked():
            count = len(self._read_cache())
            self._write_file(self._cache_file(), b"{}")
        return count

    def _referenced(self) -> tuple[set[str], set[str], builtins.list[str]]:
        """(blob digests, layer chain IDs) reachable from the index and the build cache, and
        errors met on the way."""
        problems: builtins.list[str] = []
        blobs: set[str] = set()
        chains: set[str] = set()
        doc = self._read_index()
        configs: builtins.list[tuple[str, str]] = []
        for entry in doc["manifests"]:
            digest = entry.get("digest")
            if not isinstance(digest, str):
                problems.append(f"index.json: an entry has no digest: {entry}")
                continue
            blobs.add(digest)
            try:
                manifest = json.loads(self.read_blob(digest))
                configs.append((manifest["config"]["digest"], f"image manifest {digest[:19]}"))
            except (errors.NotFound, ValueError, KeyError, TypeError) as exc:
                problems.append(f"image manifest {digest[:19]}: {exc}")
        cached = [(d, f"build cache entry {k[:19]}") for k, d in self._read_cache().items()
                  if self.cache_get(k) is not None]
        for config_digest, what in configs + cached:
            blobs.add(config_digest)
            try:
                config = json.loads(self.read_blob(config_digest))
                diff_ids = list(config["rootfs"]["diff_ids"])
            except (errors.NotFound, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{what}: {exc}")
                continue
            for i in range(len(diff_ids)):
                chain = chain_id(diff_ids[:i + 1])
                while chain and chain not in chains:
                    chains.add(chain)
                    try:
                        record = self.get_layer(chain)
                    except errors.DamagedRecord as exc:
                        problems.append(f"{what}: layer {chain[:19]}: {exc.reason}")
                        break
                    if record is None:
                        problems.append(f"{what}: layer {chain[:19]} has no record")
                        break
                    if record.blob:
                        blobs.add(record.blob)
                    chain = record.parent  # type: ignore[assignment]
        return blobs, chains, problems

    def _damage(self, path: Path, parse: Optional[Callable[[dict[str, Any]], object]] = None) -> Optional[str]:
        """What is wrong with the state file ``path`` (None: readable, or missing)."""
        try:
            doc = self.files.read_document(path, hint="")
            if parse is not None:
                parse(doc)
        except FileNotFoundError:
            return None
        except errors.DamagedRecord as exc:
            return exc.reason
        except (TypeError, ValueError, KeyError) as exc:
            return f"not the record it should be: {exc}"
        return None

    def _unreadable(self, *, records_only: bool = False,
                    containers: Optional[Sequence["DamagedContainer"]] = None) -> builtins.list[tuple[Path, str]]:
        """Every state file that cannot be read, with what is wrong: the index, the build cache,
        layer records, leases and container records (``containers``: those already found);
        ``records_only``: the index and layer records, what gc needs whole."""
        files: builtins.list[tuple[Path, Optional[Callable[[dict[str, Any]], object]]]] = [
            (self.root / "index.json", None)]
        if not records_only:
            files.append((self._cache_file(), None))
        files += [(self.layers_dir / name, LayerRecord.from_json) for name in self.files.names(self.layers_dir, ".json")]
        if not records_only:
            files += [(self.leases_dir / name, None) for name in self.files.names(self.leases_dir, ".json")]
        out = [(path, reason) for path, parse in files if (reason := self._damage(path, parse)) is not None]
        if not records_only:
            found = self.host.records.damaged() if containers is None else containers
            out += [(d.path, d.reason) for d in found]
        return out

    def _repair(self) -> tuple[builtins.list[str], builtins.list[str]]:
        """Move unreadable files to ``quarantine/<time>/``, remove what a damaged container
        record left, rebuild the index from the manifests present and layer records from the
        layer folders; (quarantined, repaired)."""
        quarantined: builtins.list[str] = []
        repaired: builtins.list[str] = []
        damaged_containers = self.host.records.damaged()
        damaged = self._unreadable(containers=damaged_containers)
        if not damaged:
            return quarantined, repaired
        box = self.root / "quarantine" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        containers = {d.path: d.id for d in damaged_containers}
        index_lost = False
        for path, reason in damaged:
            where = box / path.parent.name / path.name
            os.makedirs(where.parent, exist_ok=True)
            if path in containers:  # kept aside, then the container goes with what it left
                shutil.copyfile(path, where)
                with contextlib.suppress(errors.WincontainersError, OSError):
                    self.host.containers.remove_damaged(containers[path])
                    repaired.append(f"container {containers[path][:12]} removed (its record was damaged)")
            if path.exists():
                os.replace(path, where)
            quarantined.append(f"{path} -> {where}: {reason}")
            index_lost = index_lost or path == self.root / "index.json"
        if index_lost:
            found = self._manifests_present()
            self._write_index({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": found})
            repaired.append(f"index.json rebuilt from the {len(found)} image manifest(s) in the store "
                            "(untagged: the tags were in the damaged index)")
        repaired += self._rebuild_layer_records()
        return quarantined, repaired

    def _manifests_present(self) -> builtins.list[dict[str, Any]]:
        """Index entries for the image manifests among the blobs whose config is there too."""
        entries = []
        for path in sorted(self.blobs_dir.iterdir()):
            try:
                if path.stat().st_size > 4 << 20:
                    continue  # a layer, not a manifest
                doc = json.loads(path.read_bytes())
                config_digest = doc["config"]["digest"]
                if doc.get("mediaType", MEDIA_MANIFEST) != MEDIA_MANIFEST or not isinstance(doc.get("layers"), list):
                    continue
                config = json.loads(self.read_blob(config_digest))
            except (OSError, ValueError, KeyError, TypeError, errors.WincontainersError):
                continue
            entries.append({"mediaType": MEDIA_MANIFEST, "digest": f"sha256:{path.name}",
                            "size": path.stat().st_size, "platform": _platform(config)})
        return entries

    def _rebuild_layer_records(self) -> builtins.list[str]:
        """Records for the chains images and the cache need that have none, from the layer folder
        of that diff ID over the parent's folder (what import_tar wrote in its layer info)."""
        repaired: builtins.list[str] = []
        try:
            images = self._images_from_index(self._read_index())
        except errors.DamagedRecord:
            return repaired
        layers = [l for l in self.host.layers.list() if l.kind != "sandbox" and l.diff_id]
        for image in images:
            parent: Optional[LayerRecord] = None
            for i, diff_id in enumerate(image.diff_ids):
                chain = chain_id(list(image.diff_ids[:i + 1]))
                record = self.get_layer(chain)
                if record is None:
                    below = [os.path.normcase(parent.folder)] if parent is not None and parent.folder else []
                    match = [l for l in layers if l.diff_id == diff_id
                             and [os.path.normcase(str(p)) for p in l.parents[:1]] == below]
                    if len(match) != 1:
                        break
                    layer = match[0]
                    record = LayerRecord(chain_id=chain, diff_id=diff_id, parent=parent.chain_id if parent else None,
                                         folder=str(layer.path), size=layer.size or 0,
                                         blob=diff_id if self.has_blob(diff_id) else None,
                                         owned=layer.owner == OWNER, created=layer.created or time.time())
                    self._write_file(self._layer_path(chain), canonical_json(record.to_json()))
                    repaired.append(f"layer record {chain[:19]} rebuilt from folder {layer.path.name[:12]}")
                parent = record
        return repaired

    def fsck(self, *, deep: bool = False, repair: bool = False) -> FsckReport:
        """Check that everything the index reaches exists (``deep``: and hashes to its digest),
        naming every state file that cannot be read. ``repair`` first moves those to
        ``<store>/quarantine/``, removes containers whose record was damaged, rebuilds the index
        from the manifests present and missing layer records from their folders."""
        quarantined: builtins.list[str] = []
        repaired: builtins.list[str] = []
        if repair:
            with self.locked():
                quarantined, repaired = self._repair()
        unreadable = [f"{path}: {reason}" for path, reason in self._unreadable()]
        try:
            blobs, chains, problems = self._referenced()
        except errors.DamagedRecord as exc:  # the index: nothing else can be judged without it
            return FsckReport(tuple(unreadable or [str(exc)]), (), tuple(quarantined), tuple(repaired))
        found_errors = unreadable + list(problems)
        garbage: builtins.list[str] = []
        for digest in sorted(blobs):
            path = self.blob_path(digest)
            if not path.is_file():
                record_wants = any(r.blob == digest for r in map(self.find_layer, chains) if r)
                if record_wants or not any(r.diff_id == digest or (r.descriptor or {}).get("digest") == digest
                                           for r in map(self.find_layer, chains) if r):
                    found_errors.append(f"blob {digest[:19]} is missing")
            elif deep and _file_digest(path) != digest:
                found_errors.append(f"blob {digest[:19]} does not hash to its name")
        for chain in sorted(chains):
            record = self.find_layer(chain)
            if record is None:
                continue
            if record.folder is not None and not Path(record.folder).is_dir():
                found_errors.append(f"layer {chain[:19]}: folder {record.folder} is missing")
            if record.folder is None and record.descriptor is None and record.blob is None:
                found_errors.append(f"layer {chain[:19]} has neither a folder nor a blob")
        held, making, stale = self._live_leases()
        in_use = self._folders_in_use()
        for record in self.layer_records():
            if record.chain_id not in chains and record.chain_id not in held:
                if record.folder and os.path.normcase(os.path.abspath(record.folder)) in in_use:
                    if record.blob:  # a container or another layer rests on it: gc keeps it too
                        blobs.add(record.blob)
                    continue
                garbage.append(f"layer {record.chain_id[:19]} is not referenced")
        for path in sorted(self.blobs_dir.iterdir()):
            if f"sha256:{path.name}" not in blobs and f"sha256:{path.name}" not in held:
                garbage.append(f"blob {path.name[:12]} is not referenced")
        garbage += [f"stale lease {Path(p).name}" for p in sorted(stale)]
        garbage += [f"temporary file {p.name}" for p in sorted(self.tmp_dir.iterdir())
                    if not _owned_by_live(p.name, self.host.win32.process_alive)]
        garbage += [f"layer folder {name}: no layer record names it (an interrupted or lost import)"
                    for name in self._orphan_folders(held, making, stale)]
        garbage += [f"leftover {p.name} in the layers folder" for p in self.host.layers.leftovers()]
        return FsckReport(tuple(found_errors), tuple(garbage), tuple(quarantined), tuple(repaired))

    def _orphan_folders(self, held: set[str], making: set[str], stale: dict[str, builtins.list[str]]
                        ) -> builtins.list[str]:
        """Layer folders no record points at: those a dead operation named in its lease, and
        those the store made whose record another process wrote first (unless a live operation
        is still making them or a container runs on them). Arguments: :meth:`_live_leases`;
        gc leaves alone the first kind too while a container runs on one."""
        known = {os.path.normcase(os.path.abspath(r.folder)) for r in self.layer_records() if r.folder}
        containers = self._container_folders()
        orphans = []
        for folders in stale.values():
            for folder in folders:
                normalized = os.path.normcase(os.path.abspath(folder))
                if normalized not in known and folder not in held and Path(folder).exists():
                    orphans.append(folder)
        for layer in self.host.layers.list():
            normalized = os.path.normcase(os.path.abspath(str(layer.path)))
            if layer.owner == OWNER and normalized not in known and normalized not in making \
                    and normalized not in containers:
                orphans.append(str(layer.path))
        return sorted(set(orphans))

    def gc(self) -> GcReport:
        """Remove what nothing references: blobs, layers (and the folders the store made),
        temporary files, leases of dead processes. Layers containers use are kept."""
        removed_blobs: builtins.list[str] = []
        removed_layers: builtins.list[str] = []
        other: builtins.list[str] = []
        freed = 0
        with self.locked():
            # What a damaged record or index names cannot be known: collecting now could destroy
            # the very folders a repair would give back their records.
            damaged = self._unreadable(records_only=True)
            if damaged:
                path, reason = damaged[0]
                raise errors.DamagedRecord(path, reason, REPAIR_HINT + "; gc runs again after it")
            blobs, chains, _problems = self._referenced()
            held, making, stale = self._live_leases()
            # What killed operations left first: their folders would otherwise keep parents alive.
            containers = self._container_folders()
            for folder in self._orphan_folders(held, making, stale):
                if os.path.normcase(os.path.abspath(folder)) not in containers:
                    self._destroy_folder(folder)
                    other.append(f"layer folder {folder}")
            other += [f"leftover {p.name}" for p in self.host.layers.cleanup()]
            in_use = self._folders_in_use()
            for record in self.layer_records():
                if record.chain_id in chains or record.chain_id in held:
                    continue
                if record.folder and os.path.normcase(os.path.abspath(record.folder)) in in_use:
                    chains.add(record.chain_id)  # a container still runs on it
                    continue
                if record.owned and record.folder and Path(record.folder).exists():
                    self._destroy_folder(record.folder)
                self.files.remove(self._layer_path(record.chain_id))
                removed_layers.append(record.chain_id)
            # the blobs of layers kept: referenced, used, or held by an operation in progress
            keep_blobs = blobs | {r.blob for r in map(self.get_layer, chains | held) if r and r.blob}
            for path in list(self.blobs_dir.iterdir()):
                digest = f"sha256:{path.name}"
                if digest in keep_blobs or digest in held:
                    continue
                with contextlib.suppress(OSError):
                    freed += path.stat().st_size
                    path.unlink()
                    removed_blobs.append(digest)
            for lease_path in stale:
                if self.files.remove(lease_path):
                    other.append(f"lease {Path(lease_path).name}")
            for path in list(self.tmp_dir.iterdir()):
                if not _owned_by_live(path.name, self.host.win32.process_alive):
                    with contextlib.suppress(OSError):
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
                        other.append(f"temporary {path.name}")
        return GcReport(tuple(removed_blobs), tuple(removed_layers), tuple(other), freed)

    def _container_folders(self) -> set[str]:
        out: set[str] = set()
        for container in self.host.records.all():
            out.update(os.path.normcase(os.path.abspath(p)) for p in [*container.layers, container.sandbox])
        return out

    def _folders_in_use(self) -> set[str]:
        """Layer folders containers run on, and parents of layers made outside the store."""
        def norm(path: Union[str, Path]) -> str:
            return os.path.normcase(os.path.abspath(str(path)))

        used: set[str] = set()
        for container in self.host.records.all():
            used.update(norm(p) for p in container.layers)
        ours = {norm(r.folder) for r in self.layer_records() if r.folder}
        sandboxes = {norm(c.sandbox) for c in self.host.records.all()}
        for layer in self.host.layers.list():
            if norm(layer.path) not in ours and norm(layer.path) not in sandboxes:
                used.update(norm(p) for p in layer.parents)
        return used

    def _destroy_folder(self, folder: str) -> None:
        with contextlib.suppress(errors.WincontainersError, OSError):
            self.host.layers.destroy(folder, force=True)


class Lease:
    """The blobs, layer records and folders an operation is creating."""

    def __init__(self, store: ImageStore, path: Path) -> None:
        self.store = store
        self.path = path
        self.objects: list[str] = []
        self.folders: list[str] = []

    def save(self) -> None:
        self.store._write_file(self.path, canonical_json({"objects": self.objects, "folders": self.folders}))

    def hold(self, *objects: str) -> None:
        self.objects.extend(objects)
        self.save()

    def hold_folder(self, folder: Union[str, "os.PathLike[str]"]) -> None:
        self.folders.append(os.fspath(folder))
        self.save()


def _default_docker_root() -> Optional[Path]:
    if os.name == "nt":
        root = Path(os.environ.get("ProgramData", r"C:\ProgramData")) / "docker"
        return root if root.is_dir() else None
    return None


def _safe_ref(text: str) -> Reference:
    try:
        return parse_reference(text)
    except ReferenceError_:
        return Reference("", "")


def _owned_by_live(name: str, alive: Callable[[int], bool]) -> bool:
    pid_text = name.split("-", 1)[0]
    return pid_text.isdigit() and alive(int(pid_text))


def _platform(config: dict[str, Any]) -> dict[str, Any]:
    platform = {"architecture": config.get("architecture", "amd64"), "os": config.get("os", "windows")}
    if config.get("os.version"):
        platform["os.version"] = config["os.version"]
    return platform


def _file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def copy_into(src: IO[bytes], dst: IO[bytes]) -> int:
    total = 0
    while chunk := src.read(_COPY_CHUNK):
        dst.write(chunk)
        total += len(chunk)
    return total


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return  # Windows cannot open a directory for fsync; rename is durable there with NTFS journaling
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
