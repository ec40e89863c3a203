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

:class:`ImageStore` composes the parts, one module each: :mod:`.blobs` (blobs, temporary files,
the lock), :mod:`.index` (index.json: images and tags), :mod:`.layer_records`, :mod:`.build_cache`,
:mod:`.leases`, :mod:`.maintenance` (fsck, gc) and :mod:`.sources` (host and Docker images). It
owns the resolution of an image reference to its layer folders; what it needs of the host (the
driver, the layers, the container records) it is given.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import logging
import os
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence, Union, cast

import attrs

from wincontainers import errors
from wincontainers.display import RichDisplay, Shown, Value, human_size, short_id, when
from wincontainers.driver.base import LayerRef
from wincontainers.images import archive, maintenance, sources
from wincontainers.images.blobs import Blobs, BlobWriteFailed, StoreLock, TeeReader, compression_of
from wincontainers.images.build_cache import BuildCache
from wincontainers.images.config import parse_time
from wincontainers.images.index import ImageIndex
from wincontainers.images.layer_records import LayerRecords
from wincontainers.images.leases import Lease, Leases
from wincontainers.images.model import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    OWNER,
    BaseImage,
    FsckReport,
    GcReport,
    Image,
    ImageLike,
    ImageNotFound,
    LayerRecord,
    canonical_json,
    chain_id,
    digest_of,
    file_digest,
    safe_ref,
)
from wincontainers.images.reference import Reference, parse_reference
from wincontainers.progress import ProgressLike

if TYPE_CHECKING:
    from wincontainers._native.win32 import Win32
    from wincontainers.driver import Driver
    from wincontainers.layers import Layer, LayerCollection
    from wincontainers.records import RecordStore
    from wincontainers.statefiles import StateFiles

#: a layer blob's media type, by its compression
_LAYER_MEDIA = {"none": MEDIA_LAYER, "gzip": MEDIA_LAYER + "+gzip", "zstd": MEDIA_LAYER + "+zstd"}

__all__ = ["ImageStore", "Image", "LayerRecord", "Lease", "FsckReport", "GcReport", "ImageLike", "ImageNotFound",
           "chain_id", "digest_of", "canonical_json", "MEDIA_MANIFEST", "MEDIA_CONFIG", "MEDIA_LAYER", "MEDIA_INDEX"]

log = logging.getLogger("wincontainers.images")


class ImageStore(RichDisplay):
    """``host.images``: images and their layers, over the parts of the OCI layout.

    ``driver``, ``layers`` and ``container_records`` are the host's (the host composes them);
    ``remove_damaged_container`` is how a repair removes a container whose record is damaged.
    ``owner`` marks the layer folders this store makes (:attr:`Layer.owner`): what gc and
    repair may treat as the store's own; stores on one host have different owners.
    """

    def __init__(self, root: Path, *, driver: "Driver", win32: "Win32", files: "StateFiles",
                 layers: "LayerCollection", container_records: "RecordStore",
                 remove_damaged_container: Callable[[str], str], owner: str = OWNER,
                 build: Optional[int] = None) -> None:
        self.root = Path(root)
        self.owner = owner
        self.build = build  # the host's Windows build: what a pull picks from an index
        self.driver = driver
        self.files = files  # JSON documents (index, layer records, leases, build cache) go through kernel32
        self.layers = layers
        self.container_records = container_records
        self.remove_damaged_container = remove_damaged_container
        self.process_alive: Callable[[int], bool] = win32.process_alive
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.leases_dir = self.root / "leases"
        self.tmp_dir = self.root / "tmp"
        for folder in (self.blobs_dir, self.layers_dir, self.leases_dir, self.tmp_dir):
            files.makedirs(folder)
        if not files.exists(self.root / "oci-layout"):
            files.write(self.root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', durable=True)
        self.lock = StoreLock(self.root / "lock")
        self.blobs = Blobs(self.blobs_dir, self.tmp_dir, self.lock)
        #: layer records by chain ID
        self.chains = LayerRecords(self.layers_dir, files, self.lock)
        self.index = ImageIndex(self.root / "index.json", files, self.blobs, self.chains, self.lock)
        self.cache = BuildCache(self.root / "build-cache.json", files, self.blobs, self.lock, self.chains.usable)
        self.leases = Leases(self.leases_dir, files, self.process_alive)
        #: Docker's data root (``C:\\ProgramData\\docker``): its windowsfilter images are usable as FROM
        self.docker_root: Optional[Path] = sources.default_docker_root()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store's write lock (across processes and threads; a thread holding it may take
        it again)."""
        with self.lock.held():
            yield

    # -- leases: what an operation in progress is making -------------------------------------------

    def lease(self) -> "contextlib.AbstractContextManager[Lease]":
        """Objects named in a live lease are never collected; a killed process's lease is ignored."""
        return self.leases.open()

    def hold_layers(self, lease: Lease, records: Sequence[LayerRecord]) -> bool:
        """Hold ``records`` (a chain an operation goes on to use) in ``lease``; False when one of
        them was collected before the hold took effect (the caller must not use the chain)."""
        if not records:
            return True
        lease.hold(*(r.chain_id for r in records))
        # gc looks at leases under the store lock: what it missed is gone
        return all(self.chains.usable(record.chain_id) is not None for record in records)

    # -- blobs -----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs.path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blobs.has(digest)

    def read_blob(self, digest: str) -> bytes:
        return self.blobs.read(digest)

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob (see :meth:`Blobs.put`)."""
        return self.blobs.put(data)

    def put_blob_file(self, path: Union[str, "os.PathLike[str]"], digest: Optional[str] = None) -> str:
        """Move a finished file into the blobs (hashing it unless ``digest`` is known)."""
        return self.blobs.put_file(path, digest)

    def new_temp_file(self, suffix: str = "") -> Path:
        """A new empty file in the store's ``tmp/`` (collected if this process dies)."""
        return self.blobs.temp_file(suffix)

    # -- layers ----------------------------------------------------------------------------------

    def get_layer(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain (:meth:`LayerRecords.get`)."""
        return self.chains.get(chain)

    def put_layer(self, record: LayerRecord) -> LayerRecord:
        """Record a layer; the first record of a chain wins (:meth:`LayerRecords.put`)."""
        return self.chains.put(record)

    def usable_layer(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain whose layer can be used (:meth:`LayerRecords.usable`)."""
        return self.chains.usable(chain)

    def find_layer(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain, None when missing or unreadable."""
        return self.chains.find(chain)

    def chain_folders(self, top: Optional[LayerRecord]) -> builtins.list[str]:
        """Folders of ``top`` and its parents, nearest first (empty for no layer)."""
        return self.chains.chain_folders(top)

    def layer_records(self) -> builtins.list[LayerRecord]:
        """Every readable layer record."""
        return self.chains.all()

    def add_layer(self, source: Union[str, "os.PathLike[str]", IO[bytes]], parent: Optional[LayerRecord], *,
                  lease: "Lease", keep_blob: bool = True, progress: ProgressLike = None) -> LayerRecord:
        """A layer tar (plain, gzip or zstd) on top of ``parent``, checked as it is imported (one
        pass; nothing kept of a rejected tar), its blob kept to save the image byte for byte. A
        layer already in the store (same chain) is reused. ``source``: a file, consumed (moved
        into the blobs), or a stream (an archive's member) whose bytes go to the blob as read."""
        options: dict[str, Any] = dict(parents=self.chains.chain_folders(parent), base=parent is None,
                                       progress=progress, on_folder=lease.hold_folder, owner=self.owner)
        if isinstance(source, (str, os.PathLike)):
            layer = self.layers.import_tar(os.fspath(source), **options)
            kept = self._keep(source, str(layer.diff_id), lease) if keep_blob else None
        else:
            kept, layer = self._import_stream(source, keep_blob, lease, options)
        diff_id = str(layer.diff_id)
        chain = chain_id([parent.chain_id, diff_id]) if parent is not None else diff_id
        lease.hold(chain)
        existing = self.chains.usable(chain)
        if existing is not None:  # the same layer is in the store already: ours is not needed
            self.destroy_folder(str(layer.path))
            if kept is not None and existing.blob is None and existing.descriptor is None:
                return self.chains.put(attrs.evolve(existing, blob=kept[0], media_type=kept[1]))
            return existing
        blob, media = kept or (None, MEDIA_LAYER)
        record = LayerRecord(chain_id=chain, diff_id=diff_id, parent=parent.chain_id if parent else None,
                             folder=str(layer.path), size=layer.size or 0, blob=blob, media_type=media,
                             created=time.time())
        first = self.chains.put(record)
        if first.folder != record.folder:  # another process imported the same layer first: use its folder
            self.destroy_folder(str(layer.path))
        return first

    def _import_stream(self, source: IO[bytes], keep_blob: bool, lease: "Lease", options: dict[str, Any],
                       ) -> tuple[Optional[tuple[str, str]], "Layer"]:
        """Import from a stream, its bytes written to a new blob as they are read (a compressed
        one's digest hashed from the same bytes; an uncompressed one's is its diff ID)."""
        if not keep_blob:
            return None, self.layers.import_tar(source, **options)
        tmp = self.new_temp_file(".tar")
        try:
            # closing: the compressed stream's hash thread ends however the import ends
            with open(tmp, "wb") as out, contextlib.closing(TeeReader(source, out)) as tee:
                try:
                    layer = self.layers.import_tar(cast(IO[bytes], tee), **options)
                except BlobWriteFailed as failed:  # the layer was not kept: the store's disk said why
                    raise failed.error from None
                try:
                    tee.drain()  # what follows the tar's end (a compressed stream's trailer) is the blob's too
                except BaseException:
                    self.destroy_folder(str(layer.path))
                    raise
            digest = tee.digest() if tee.compression != "none" else str(layer.diff_id)
            lease.hold(digest)
            return (self.blobs.put_file(tmp, digest), _LAYER_MEDIA[tee.compression or "none"]), layer
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _keep(self, source: Union[str, "os.PathLike[str]"], diff_id: str, lease: "Lease") -> tuple[str, str]:
        with open(source, "rb") as f:
            compression = compression_of(f.read(4))
        digest = diff_id if compression == "none" else file_digest(Path(source))
        lease.hold(digest)
        return self.blobs.put_file(source, digest), _LAYER_MEDIA[compression]

    def layer_chain(self, image: ImageLike) -> builtins.list[LayerRecord]:
        """The image's layers, base first."""
        found = self.get(image)
        out = []
        for chain in found.chain_ids:
            record = self.chains.get(chain)
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

    # -- images ----------------------------------------------------------------------------------

    def _shown_(self) -> Shown:
        def rows() -> Iterator[tuple[Value, ...]]:
            for image in self.list():
                size = sum(r.size for r in self.layer_chain(image) if r is not None)
                for tag in image.repo_tags or ["<none>"]:
                    yield tag, short_id(image.id), when(image.created), human_size(size)

        return Shown.table("Images", ("Tag", "ID", "Created", "Size"), rows(), empty="no image")

    def list(self) -> builtins.list[Image]:
        """Every image (untagged ones too), newest first."""
        images = self.index.images()
        epoch = parse_time("1970-01-01T00:00:00Z")
        return sorted(images, key=lambda i: parse_time(i.created) or epoch, reverse=True)  # type: ignore[arg-type,return-value]

    def get(self, ref: ImageLike) -> Image:
        """By tag (``app``, ``app:1.0``, full name), image ID (or a unique prefix) or manifest digest."""
        return self.index.get(ref)

    def find(self, ref: Union[str, Sequence[str]]) -> Optional[Image]:
        """The store's image ``ref`` names, or None (a base name not yet recorded, a layer list,
        a name not found): containers take their defaults (Env, WorkingDir, User) from it."""
        if not isinstance(ref, str):
            return None
        try:
            return self.get(ref.strip())
        except (errors.NotFound, errors.BadInput):
            return None

    def resolve(self, ref: ImageLike) -> Image:
        """:meth:`get`, or else a host OS image or an image of Docker's store, recorded on first use."""
        try:
            return self.get(ref)
        except ImageNotFound:
            if isinstance(ref, Image):
                raise
        base = sources.find_host_image(self, ref)
        if base is not None:
            return sources.register_host_image(self, base)
        if self.docker_root is not None:
            docker = sources.DockerStore(self.docker_root)
            if docker.exists():
                found = docker.find(ref)
                if found is not None:
                    return sources.register_docker_image(self, found)
        raise ImageNotFound(ref, [f"{b.name.lower()}:{b.version}" for b in self.base_images()])

    def unregistered_host_images(self) -> builtins.list[Any]:
        """The host's base images no image of the store stands for yet (each is recorded the
        first time a name finds it): ``images`` lists them too."""
        tags = {str(t) for image in self.list() for t in image.tags}
        out = []
        for base in self.base_images():
            name = f"{base.name.lower()}:{base.version}"
            if str(parse_reference(name)) not in tags:
                out.append(base)
        return out

    def base_images(self) -> builtins.list[BaseImage]:
        """The host's base OS images (GetBaseImages)."""
        return sources.host_base_images(self.driver)

    def layers_for(self, image: Union[str, Sequence[str]]) -> tuple[str, builtins.list[LayerRef]]:
        """What a container of ``image`` is made on: (the name to show, its layers nearest
        first). ``image`` is a host base image's name, any name :meth:`resolve` finds, or a
        list of layer folders (absolute, nearest first)."""
        if isinstance(image, (list, tuple)):
            if not image:
                raise errors.BadInput("the layer list is empty")
            parents = []
            for path in image:
                folder = Path(path)
                if not folder.is_absolute() or not folder.is_dir():
                    raise errors.BadInput(f"layer folder {path!r} does not exist (absolute paths, nearest parent first)")
                parents.append(self._layer_ref(str(folder)))
            return Path(image[0]).name, parents
        if not isinstance(image, str) or not image.strip():
            raise errors.BadInput("the image name is empty")
        name = image.strip()
        wanted, _, version = name.lower().partition(":")
        for candidate in self.driver.base_images():
            if candidate.name.lower() == wanted and (not version or candidate.version == version or version == "latest"):
                return f"{candidate.name.lower()}:{candidate.version}", [self._layer_ref(candidate.path)]
        stored = self.resolve(name)  # ImageNotFound names the base images the host offers
        parents = [self._layer_ref(folder) for folder in self.layer_folders(stored)]
        shown = next((t.familiar for t in stored.tags if name in (t.familiar, str(t), t.familiar_name)),
                     stored.repo_tags[0] if stored.tags else stored.short_id)
        return shown, parents

    def _layer_ref(self, folder: str) -> LayerRef:
        return LayerRef(self.driver.name_to_guid(Path(folder).name), folder)

    def exists(self, ref: ImageLike) -> bool:
        try:
            self.get(ref)
            return True
        except errors.NotFound:
            return False

    def add(self, config: Union[dict[str, Any], bytes], layers: Sequence[LayerRecord],
            tags: Iterable[str] = (), *, manifest: Optional[bytes] = None) -> Image:
        """Record an image whose layers are already in the store (base first); ``manifest``: its
        manifest as a registry has it (kept byte for byte, so the digest stays the registry's)."""
        return self.index.add(config, layers, tags, manifest=manifest)

    def pull(self, reference: str, *, platform: Optional[str] = None, isolation: Optional[str] = None,
             allow_nondistributable: bool = False, username: Optional[str] = None, password: Optional[str] = None,
             progress: ProgressLike = None,
             layer_progress: Optional[Callable[[str, int, int], None]] = None) -> Image:
        """``docker pull``: the image ``reference`` names, from its registry, into this store.

        From an index, the windows/amd64 image of the host's build (``platform``: another
        ``os.version``, e.g. ``10.0.14393``; ``isolation="hyperv"`` may take an older build).
        Credentials come from the arguments, the environment or Docker's config (``login``).
        Layers the store has are not downloaded; the others come in parallel, checked. A
        non-distributable (Windows base) layer must be on this host already, unless
        ``allow_nondistributable`` lets it come from its URLs. ``progress``: the whole pull (a
        bar, or ``f(bytes_done, layers_done)``); ``layer_progress(digest, bytes_done, size)``
        each layer (with ``progress=True`` each also gets a bar while it comes)."""
        from wincontainers.images import transfer

        return transfer.pull(self, reference, build=self.build, os_version=platform, hyperv=isolation == "hyperv",
                             allow_nondistributable=allow_nondistributable, username=username, password=password,
                             progress=progress, layer_progress=layer_progress).image

    async def pull_async(self, reference: str, **options: Any) -> Image:
        """:meth:`pull`, awaited (same arguments; on the shared pool of :mod:`wincontainers.aio`).
        Cancelling the awaiting task stops the transfer at its next piece of data; what it
        downloaded is removed, and the store's lease lets gc collect any layer it had imported."""
        from wincontainers import aio

        wanted = options.pop("layer_progress", None)

        def run(cancel: threading.Event) -> Image:
            def each(digest: str, done: int, size: int) -> None:
                if cancel.is_set():
                    raise errors.Cancelled(f"the pull of {reference} was cancelled")
                if wanted is not None:
                    wanted(digest, done, size)

            return self.pull(reference, layer_progress=each, **options)

        return await aio.call_cancellable(run)

    def login(self, registry: str, username: str, password: str) -> str:
        """``docker login``: check the credentials against ``registry``, then keep them where
        Docker keeps them (its credential helper, or ``config.json``); returns where."""
        from wincontainers.images import credentials, transfer

        return credentials.login(transfer.registry_host(registry), username, password)

    def logout(self, registry: str) -> bool:
        """``docker logout``: forget the credentials of ``registry``; whether there were any."""
        from wincontainers.images import credentials, transfer

        return credentials.logout(transfer.registry_host(registry))

    def push(self, image: str, target: Optional[str] = None, *, allow_nondistributable: bool = False,
             username: Optional[str] = None, password: Optional[str] = None, chunk_size: Optional[int] = None,
             progress: ProgressLike = None,
             layer_progress: Optional[Callable[[str, int, int], None]] = None) -> str:
        """``docker push``: the image to its registry (under ``target`` when given); returns the
        pushed manifest's digest. Blobs the registry has are not sent again. A layer of the
        host's OS image is left out, marked non-distributable, unless ``allow_nondistributable``."""
        from wincontainers.images import transfer

        return transfer.push(self, image, target, allow_nondistributable=allow_nondistributable, username=username,
                             password=password, chunk_size=chunk_size, progress=progress,
                             layer_progress=layer_progress).manifest_digest

    def tag(self, image: ImageLike, ref: str) -> Reference:
        """``docker tag``: point ``ref`` at the image (moving it from another image)."""
        wanted = parse_reference(ref)
        if wanted.digest:
            raise errors.BadInput("a tag cannot hold a digest")
        self.index.tag(image, wanted)
        return wanted

    def remove(self, ref: str, *, force: bool = False, prune: bool = True) -> builtins.list[str]:
        """``docker rmi``: remove a tag; the image goes when no tag is left (or by ID with
        ``force``). Refused while a container uses it. Returns what was untagged/deleted."""
        done: builtins.list[str] = []
        with self.locked():  # decided on the index as it is: another process may tag it meanwhile
            found = self.get(ref)
            by_id = not any(str(t) == str(safe_ref(ref)) for t in found.tags) if found.tags else True
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
            if removing_image:
                self.index.drop_image(found)
                done += [f"Untagged: {t.familiar}" for t in found.tags] + [f"Deleted: {found.id}"]
            else:
                wanted = safe_ref(ref)
                self.index.untag(wanted)
                done.append(f"Untagged: {wanted.familiar}")
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
        return sorted(c.id for c in self.container_records.all()
                      if c.layers and os.path.normcase(os.path.abspath(c.layers[0])) == top)

    def _top_folder(self, image: Image) -> Optional[str]:
        if image.top_chain_id is None:
            return None
        record = self.chains.get(image.top_chain_id)
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
        records = [self.chains.get(c) for c in found.chain_ids]
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
             progress: ProgressLike = None, overwrite: bool = False) -> Path:
        """``docker save``: see :func:`wincontainers.images.archive.save`."""
        return archive.save(self, images, path, format=format, progress=progress, overwrite=overwrite)

    def load(self, path: Union[str, "os.PathLike[str]"], *, repository: Optional[str] = None,
             progress: ProgressLike = None) -> "archive.LoadResult":
        """``docker load``: see :func:`wincontainers.images.archive.load` (returns a LoadResult)."""
        return archive.load(self, path, repository=repository, progress=progress)

    # -- the build cache (its configs and their layers are kept like images) -----------------------

    def cache_get(self, key: str) -> Optional[dict[str, Any]]:
        """The image config a build step with this key produced, if its layers are all here."""
        return self.cache.get(key)

    def cache_put(self, key: str, config: dict[str, Any]) -> str:
        return self.cache.put(key, config)

    def cache_keys(self) -> builtins.list[str]:
        """The keys of the build cache (one per build step that ran)."""
        return sorted(self.cache.entries())

    def cache_remove(self, keys: Iterable[str]) -> int:
        """Forget these build cache entries (their images stay until :meth:`gc`); returns how many."""
        return self.cache.remove(keys)

    def cache_clear(self) -> int:
        return self.cache.clear()

    # -- upkeep ----------------------------------------------------------------------------------

    def fsck(self, *, deep: bool = False, repair: bool = False) -> FsckReport:
        """Check that everything the index reaches exists (``deep``: and hashes to its digest),
        naming every state file that cannot be read. ``repair`` first moves those to
        ``<store>/quarantine/``, removes containers whose record was damaged, rebuilds the index
        from the manifests present and missing layer records from their folders."""
        return maintenance.fsck(self, deep=deep, repair=repair)

    def gc(self) -> GcReport:
        """Remove what nothing references: blobs, layers (and the folders the store made),
        temporary files, leases of dead processes. Layers containers use are kept."""
        return maintenance.gc(self)

    def destroy_folder(self, folder: str) -> None:
        """Remove a layer folder the store made (a failure is logged: gc tries again)."""
        try:
            self.layers.destroy(folder, force=True)
        except (errors.WincontainersError, OSError) as exc:
            log.warning("could not remove layer folder %s (the next gc tries again): %s", folder, exc)
