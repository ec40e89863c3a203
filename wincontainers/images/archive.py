"""Image archives: ``docker save`` tars and OCI image layouts, written and read.

``save(store, images, path)`` writes Docker 25's archive: an OCI layout (``oci-layout``,
``index.json``, ``blobs/sha256/``) plus the ``manifest.json`` and ``repositories`` files older
Docker and skopeo read, with every layer as the uncompressed tar named by its diff ID.
``format="oci"`` writes an OCI image layout, as a folder or (``.tar`` path) an archive, with the
layers as the store keeps them. Archives are deterministic: entries sorted, times and owners
fixed, so saving twice gives the same bytes.

``load(store, path)`` reads both (``manifest.json`` first, as ``docker load`` does), checks each
layer against the config's diff IDs while importing it, and keeps a foreign layer whose blob is
absent as a reference (its descriptor and URLs), as Docker does for old Windows base layers.

Why one file: save and load share the two layouts' names, the determinism rules and the error
translation (whatever a damaged archive raises below becomes an ArchiveError); split, each half
would restate them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

import attrs

from wincontainers import errors
from wincontainers.images.reference import Reference, ReferenceError_, parse_reference
from wincontainers.layerfile.codec import decompressed
from wincontainers.progress import ProgressLike, check_progress, operation_progress, progress_for
from wincontainers.images.model import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    NAME_ANNOTATION,
    REF_ANNOTATION,
    Image,
    LayerRecord,
    canonical_json,
    chain_id,
    digest_of,
)

if TYPE_CHECKING:
    from wincontainers.images.store import ImageStore

__all__ = ["save", "load", "LoadResult", "ArchiveError", "inspect_archive", "ArchiveImage"]

_FOREIGN = ("application/vnd.docker.image.rootfs.foreign.diff.tar",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_CHUNK = 1 << 20


class ArchiveError(errors.BadInput):
    """The archive is not a docker-save archive or OCI layout we can read, or it is corrupt."""


#: what reading a hostile or damaged archive raises below us (json, tarfile, gzip, lzma, bz2)
_DAMAGE = (ValueError, KeyError, IndexError, AttributeError, TypeError, RecursionError, EOFError, tarfile.TarError,
           zlib.error, lzma.LZMAError)


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[None]:
    """Errors met reading ``archive`` become typed ones that say what is wrong with it."""
    try:
        yield
    except ArchiveError as exc:
        if archive.name in str(exc):
            raise
        raise ArchiveError(f"{archive.name}: {exc}") from None
    except errors.WincontainersError:
        raise
    except _DAMAGE as exc:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, RecursionError):
            what = "its documents refer to one another in a cycle"
        elif isinstance(exc, (KeyError, AttributeError, TypeError, IndexError)):
            what = f"a document lacks a field or has one of the wrong type ({what})"
        raise ArchiveError(f"{archive.name} is damaged or not an image archive: {what}") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise errors.StorageFull(f"no space left while loading {archive.name} ({exc.filename or 'the store'})") \
                from None
        raise ArchiveError(f"cannot read {archive.name}: {exc.strerror or exc}") from None


@attrs.frozen
class LoadResult:
    images: tuple[Image, ...]
    layers_imported: int
    layers_reused: int
    foreign_layers: int


# -- writing -----------------------------------------------------------------------------------------


class _Writer:
    """A deterministic sink: a tar archive or a folder."""

    def __init__(self, target: Path, as_tar: bool) -> None:
        self.target = target
        self.as_tar = as_tar
        self.tar: Optional[tarfile.TarFile] = None
        self.names: set[str] = set()

    def __enter__(self) -> "_Writer":
        if self.as_tar:
            self.tar = tarfile.open(self.target, "w", format=tarfile.PAX_FORMAT)
        else:
            self.target.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tar is not None:
            self.tar.close()

    def _dirs(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            if folder not in self.names:
                self.names.add(folder)
                if self.tar is not None:
                    info = tarfile.TarInfo(folder)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 0
                    self.tar.addfile(info)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_stream(name, io.BytesIO(data), len(data))

    def add_stream(self, name: str, stream: IO[bytes], size: int) -> None:
        if name in self.names:
            return
        self._dirs(name)
        self.names.add(name)
        if self.tar is not None:
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o644
            info.mtime = 0
            self.tar.addfile(info, stream)
        else:
            path = self.target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                shutil.copyfileobj(stream, out, _CHUNK)


def _layer_file(store: "ImageStore", record: LayerRecord, *, uncompressed: bool) -> Iterator[tuple[Path, str, str]]:
    """(file, digest, media type) of a layer's tar as it goes into an archive."""
    if record.blob is not None and store.has_blob(record.blob):
        path = store.blob_path(record.blob)
        if not uncompressed or record.media_type == MEDIA_LAYER:
            yield path, record.blob, record.media_type
            return
        tmp = store.new_temp_file(".tar")
        try:
            with open(path, "rb") as raw:
                stream, _kind = decompressed(raw)  # the decoders the import uses
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(stream, out, _CHUNK)
            yield tmp, record.diff_id, MEDIA_LAYER
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return
    if record.folder is not None:  # a borrowed layer (host OS image): export it, same bytes every time
        tmp = store.new_temp_file(".tar")
        try:
            result = store.layers.export_tar(record.folder, tmp)
            if result.diff_id != record.diff_id:
                raise ArchiveError(f"layer {record.chain_id[:19]}: exporting {record.folder} gives "
                                   f"{result.diff_id}, not the recorded {record.diff_id}")
            yield tmp, record.diff_id, MEDIA_LAYER
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return
    raise _Absent(record)


class _Absent(Exception):
    def __init__(self, record: LayerRecord) -> None:
        self.record = record


def _is_our_archive(path: Path) -> bool:
    """Whether ``path`` is an archive :func:`save` writes (its first member is ``oci-layout``)."""
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
            first = tar.next()
            return first is not None and first.name == "oci-layout"
    except (OSError, tarfile.TarError, EOFError):
        return False


def _is_our_layout(path: Path) -> bool:
    """Whether folder ``path`` is an OCI layout :func:`save` writes (and holds nothing else)."""
    try:
        names = {e.name for e in os.scandir(path)}
    except OSError:
        return False
    return {"oci-layout", "index.json"} <= names <= {"oci-layout", "index.json", "blobs"} and \
        not (path / "oci-layout").is_symlink() and (path / "oci-layout").is_file()


def _check_target(target: Path, as_tar: bool, overwrite: bool) -> None:
    """Refuse a target whose loss the caller did not ask for: save never deletes what it did
    not write. An archive or layout of ours is replaced (as ``docker save -o`` replaces its
    file), an empty file or folder too; anything else only with ``overwrite`` and never a
    folder that is not an OCI layout."""
    try:
        st = target.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if as_tar:
            raise errors.BadInput(f"{target} is a folder; a docker-save archive is a file (name the file to write)")
        if not any(os.scandir(target)):
            return
        if _is_our_layout(target):
            if overwrite:
                return
            raise errors.BadInput(f"{target} already holds an OCI layout. Hint: pass overwrite=True (--force) "
                                  "to replace it")
        raise errors.BadInput(f"{target} is a folder that is not empty and not an OCI layout; save writes only "
                              "into a new or empty folder")
    if stat.S_ISREG(st.st_mode) and (st.st_size == 0 or _is_our_archive(target) or overwrite):
        return
    if stat.S_ISLNK(st.st_mode) and overwrite:
        return  # the link itself is replaced, never what it points to
    raise errors.BadInput(f"{target} exists and is not an archive saved by wincontainers. Hint: choose another "
                          "name, or pass overwrite=True (--force) to replace it")


def _remove_ours(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def save(store: "ImageStore", images: Sequence[str], path: Union[str, "os.PathLike[str]"], *, format: str = "docker",
         progress: ProgressLike = None, overwrite: bool = False) -> Path:
    """Write ``images`` (references or IDs) to ``path``. ``format``: ``docker`` (a docker-save
    tar) or ``oci`` (an OCI layout: a folder, or a tar when ``path`` ends in ``.tar``).

    An existing ``path`` is replaced only when it is an archive or layout written by save (or
    empty); ``overwrite`` replaces any file, and a layout of ours. A folder that is not a layout
    is never deleted. The archive is written under a new name beside ``path``, then renamed.
    """
    if format not in ("docker", "oci"):
        raise errors.BadInput("format is 'docker' or 'oci'")
    check_progress(progress)
    if not images:
        raise errors.BadInput("name at least one image to save")
    target = Path(path)
    as_tar = format == "docker" or target.suffix == ".tar"
    _check_target(target, as_tar, overwrite)
    chosen: list[tuple[Image, list[Reference]]] = []
    for ref in images:
        image = store.get(ref)
        tags = [t for t in image.tags if _names(ref, t)] or ([] if _is_id(ref, image) else list(image.tags))
        existing = next((c for c in chosen if c[0].id == image.id), None)
        if existing is not None:
            existing[1].extend(t for t in tags if t not in existing[1])
        else:
            chosen.append((image, list(tags)))
    # a name of our own beside the target (same volume, so the rename is atomic); nothing of
    # the caller's is ever in the way
    if as_tar:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or ".")
        os.close(fd)
        partial = Path(temp)
    else:
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or "."))
    done = [0]
    try:
        with progress_for(progress, desc=f"save {target.name}") as report, _Writer(partial, as_tar) as out:
            out.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            index_entries: list[dict[str, Any]] = []
            legacy: list[dict[str, Any]] = []
            repositories: dict[str, dict[str, str]] = {}
            for image, tags in chosen:
                config_hex = image.id.split(":", 1)[1]
                out.add_bytes(f"blobs/sha256/{config_hex}", image.config_bytes)
                descriptors: list[dict[str, Any]] = []
                layer_paths: list[str] = []
                sources: dict[str, dict[str, Any]] = {}
                for record in store.layer_chain(image):
                    try:
                        for file, digest, media in _layer_file(store, record, uncompressed=format == "docker"):
                            size = file.stat().st_size
                            with open(file, "rb") as f:
                                out.add_stream(f"blobs/sha256/{digest.split(':', 1)[1]}", f, size)
                            descriptors.append({"mediaType": media, "digest": digest, "size": size})
                            done[0] += size
                            if report is not None:
                                report(done[0], len(out.names))
                    except _Absent:
                        assert record.descriptor is not None or record.blob is not None
                        descriptor = dict(record.descriptor or {"mediaType": record.media_type,
                                                                "digest": record.blob, "size": record.size})
                        descriptors.append(descriptor)
                        sources[record.diff_id] = descriptor
                    last_digest = str(descriptors[-1]["digest"])
                    layer_paths.append(f"blobs/sha256/{record.diff_id.split(':', 1)[1]}" if format == "docker"
                                       else f"blobs/sha256/{last_digest.split(':', 1)[1]}")
                manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                            "config": {"mediaType": MEDIA_CONFIG, "digest": image.id, "size": len(image.config_bytes)},
                            "layers": descriptors}
                manifest_bytes = canonical_json(manifest)
                manifest_digest = digest_of(manifest_bytes)
                out.add_bytes(f"blobs/sha256/{manifest_digest.split(':', 1)[1]}", manifest_bytes)
                base = {"mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes)}
                if tags:
                    for tag in tags:
                        index_entries.append(dict(base, annotations={NAME_ANNOTATION: str(tag),
                                                                     REF_ANNOTATION: tag.tag or ""}))
                else:
                    index_entries.append(base)
                entry: dict[str, Any] = {"Config": f"blobs/sha256/{config_hex}",
                                         "RepoTags": [t.familiar for t in tags], "Layers": layer_paths}
                if sources:
                    entry["LayerSources"] = sources
                legacy.append(entry)
                if tags and image.diff_ids:
                    top = image.diff_ids[-1].split(":", 1)[1]
                    for tag in tags:
                        repositories.setdefault(tag.familiar_name, {})[tag.tag or "latest"] = top
            out.add_bytes("index.json", canonical_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                                        "manifests": index_entries}))
            if format == "docker":
                out.add_bytes("manifest.json", canonical_json(legacy))
                if repositories:
                    out.add_bytes("repositories", canonical_json(repositories))
        _check_target(target, as_tar, overwrite)  # as it is now, not as it was before the writing
        if not as_tar and os.path.lexists(target):
            _remove_ours(target)  # a folder is not replaced by a rename: an empty one, or our layout
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            _remove_ours(partial)
        raise
    return target


def _names(ref: str, tag: Reference) -> bool:
    try:
        wanted = parse_reference(ref)
    except ReferenceError_:
        return False
    return wanted.name == tag.name and wanted.tag == tag.tag


def _is_id(ref: str, image: Image) -> bool:
    bare = ref[7:] if ref.startswith("sha256:") else ref
    return image.id[7:].startswith(bare)


# -- reading -----------------------------------------------------------------------------------------


class _Source:
    """Files of an archive (tar) or layout folder by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: Optional[tarfile.TarFile] = None
        if path.is_dir():
            self.members: dict[str, Any] = {}
        elif tarfile.is_tarfile(path):
            self.tar = tarfile.open(path, "r:*")
            self.members = {}
            for member in self.tar:
                if member.isfile() or member.issym() or member.islnk():
                    self.members[_clean(member.name)] = member
        else:
            raise ArchiveError(f"{path} is neither a tar archive nor an OCI layout folder")

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    def exists(self, name: str) -> bool:
        if self.tar is None:
            return (self.path / name).is_file()
        return _clean(name) in self.members

    def open(self, name: str) -> IO[bytes]:
        if self.tar is None:
            target = (self.path / name).resolve()
            if self.path.resolve() not in target.parents:
                raise ArchiveError(f"{name!r} leaves the layout folder")
            return open(target, "rb")
        member = self.members.get(_clean(name))
        for _ in range(8):  # links inside the archive (Docker < 25 links identical layers)
            if member is None or not (member.issym() or member.islnk()):
                break
            link = member.linkname if member.islnk() else os.path.normpath(
                os.path.join(os.path.dirname(member.name), member.linkname))
            member = self.members.get(_clean(link))
        if member is None:
            raise ArchiveError(f"{self.path.name} has no {name}")
        if member.issym() or member.islnk():
            raise ArchiveError(f"{name} in {self.path.name} is a link in a cycle (or a chain of more than 8)")
        handle = self.tar.extractfile(member)
        assert handle is not None
        return handle

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ArchiveError(f"{name} is larger than {limit} bytes")
        return data


def _clean(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


@attrs.frozen
class _Entry:
    config_name: str
    tags: tuple[str, ...]
    layers: tuple[Optional[str], ...]  # file names in the archive (None: absent)
    descriptors: tuple[Optional[dict[str, Any]], ...] = ()  # OCI: the manifest's layer descriptors
    layer_sources: dict[str, Any] = attrs.field(factory=dict)  # docker: LayerSources, by diff ID

    def descriptor(self, index: int, diff_id: str) -> Optional[dict[str, Any]]:
        """The layer's descriptor when it is foreign or absent (what a reference keeps)."""
        found = self.layer_sources.get(diff_id) if self.layer_sources else (
            self.descriptors[index] if index < len(self.descriptors) else None)
        if not isinstance(found, dict):
            return None
        if found.get("mediaType") in _FOREIGN:
            return found
        return None  # a layer that should be in the archive: absent, it is an error (see _reference)


def _entries(source: _Source) -> list[_Entry]:
    if source.exists("manifest.json"):
        doc = json.loads(source.read("manifest.json"))
        if not isinstance(doc, list):
            raise ArchiveError("manifest.json is not a list")
        out = []
        for item in doc:
            layers = [_clean(str(p)) for p in item.get("Layers") or []]
            out.append(_Entry(config_name=_clean(str(item["Config"])), tags=tuple(item.get("RepoTags") or ()),
                              layers=tuple(p if source.exists(p) else None for p in layers),
                              layer_sources=dict(item.get("LayerSources") or {})))
        return out
    if source.exists("index.json") and source.exists("oci-layout"):
        return _oci_entries(source)
    raise ArchiveError(f"{source.path.name} has neither manifest.json (docker save) nor index.json and "
                       "oci-layout (OCI)")


def _oci_entries(source: _Source) -> list[_Entry]:
    index = json.loads(source.read("index.json"))
    out: list[_Entry] = []
    for entry in _manifests(source, index):
        tags: list[str] = []
        annotations = entry.get("annotations") or {}
        name = annotations.get(NAME_ANNOTATION)
        ref_name = annotations.get(REF_ANNOTATION)
        if name:
            tags.append(str(name))
        elif ref_name:  # OCI's ref.name is just the tag: it needs a repository (load(repository=...))
            tags.append(str(ref_name) if ":" in str(ref_name) or "/" in str(ref_name) else f":{ref_name}")
        manifest = json.loads(source.read(_blob_name(entry["digest"])))
        layers, descriptors = [], []
        for descriptor in manifest.get("layers") or []:
            name_in = _blob_name(descriptor["digest"])
            present = source.exists(name_in)
            layers.append(name_in if present else None)
            descriptors.append(descriptor)
        out.append(_Entry(config_name=_blob_name(manifest["config"]["digest"]), tags=tuple(tags), layers=tuple(layers),
                          descriptors=tuple(descriptors)))
    return out


def _manifests(source: _Source, index: dict[str, Any], seen: frozenset[str] = frozenset()) -> Iterator[dict[str, Any]]:
    if len(seen) > 8:
        raise ArchiveError("image indexes nested more than 8 deep")
    for entry in index.get("manifests") or []:
        media = entry.get("mediaType")
        if media in (MEDIA_INDEX, _DOCKER_LIST):
            digest = str(entry["digest"])
            if digest in seen:
                raise ArchiveError(f"the image index {digest[:19]} contains itself")
            nested = json.loads(source.read(_blob_name(digest)))
            for child in _manifests(source, nested, seen | {digest}):
                if entry.get("annotations") and not child.get("annotations"):
                    child = dict(child, annotations=entry["annotations"])
                platform = child.get("platform") or {}
                if platform.get("os", "windows") == "windows":
                    yield child
        elif media in (MEDIA_MANIFEST, _DOCKER_MANIFEST, None):
            yield entry


def _blob_name(digest: str) -> str:
    algorithm, _, value = str(digest).partition(":")
    if algorithm != "sha256" or len(value) != 64:
        raise ArchiveError(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{value}"


@attrs.frozen
class ArchiveImage:
    """One image of an archive, as read (nothing imported)."""

    config: dict[str, Any]
    config_digest: str
    tags: tuple[str, ...]
    diff_ids: tuple[str, ...]
    layers_present: tuple[bool, ...]
    foreign: tuple[Optional[dict[str, Any]], ...]


def inspect_archive(path: Union[str, "os.PathLike[str]"]) -> list[ArchiveImage]:
    """What an archive holds: images, tags, which layers are in it and which are foreign."""
    with _reading(Path(path)):
        return _inspect(Path(path))


def _inspect(path: Path) -> list[ArchiveImage]:
    source = _Source(path)
    try:
        out = []
        for entry in _entries(source):
            config_bytes = source.read(entry.config_name)
            config = json.loads(config_bytes)
            diff_ids = tuple((config.get("rootfs") or {}).get("diff_ids") or ())
            out.append(ArchiveImage(config, digest_of(config_bytes), entry.tags, diff_ids,
                                    tuple(name is not None for name in entry.layers),
                                    tuple(entry.descriptor(i, d) for i, d in enumerate(diff_ids))))
        return out
    finally:
        source.close()


def load(store: "ImageStore", path: Union[str, "os.PathLike[str]"], *, repository: Optional[str] = None,
         progress: ProgressLike = None) -> LoadResult:
    """Load every image of a docker-save archive or OCI layout (folder or tar) into the store.

    An OCI layout may name an image by its tag alone (``org.opencontainers.image.ref.name``):
    it is tagged ``<repository>:<tag>`` when ``repository`` is given, and left untagged otherwise.
    """
    archive = Path(path)
    with _reading(archive), operation_progress(progress, desc=f"load {archive.name}") as shared:
        return _load(store, archive, repository, shared)


def _load(store: "ImageStore", archive: Path, repository: Optional[str], progress: ProgressLike) -> LoadResult:
    source = _Source(archive)
    path = archive
    imported = reused = foreign = 0
    loaded: list[Image] = []
    try:
        entries = _entries(source)
        if not entries:
            raise ArchiveError(f"{Path(path).name} holds no image")
        for entry in entries:
            config_bytes = source.read(entry.config_name)
            config_digest = digest_of(config_bytes)
            if entry.config_name.startswith("blobs/sha256/") and config_digest[7:] != entry.config_name[13:]:
                raise ArchiveError(f"{entry.config_name} does not hash to its name")
            config = json.loads(config_bytes)
            diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(entry.layers):
                raise ArchiveError(f"{entry.config_name}: {len(diff_ids)} diff IDs for {len(entry.layers)} layers")
            records: list[LayerRecord] = []
            with store.lease() as lease:
                for i, name in enumerate(entry.layers):
                    descriptor = entry.descriptor(i, diff_ids[i])
                    chain = chain_id(diff_ids[:i + 1])
                    parent = records[-1] if records else None
                    existing = store.usable_layer(chain)
                    if existing is not None:
                        records.append(existing)
                        reused += 1
                        continue
                    if name is None or (parent is not None and parent.folder is None):
                        records.append(_reference(store, chain, diff_ids[i], parent, descriptor, name, source, lease))
                        foreign += 1
                        continue
                    with source.open(name) as src:  # imported as it is read: no copy of it first
                        record = store.add_layer(src, parent, lease=lease, progress=progress)
                    if record.diff_id != diff_ids[i]:
                        raise ArchiveError(f"layer {i + 1} of {entry.config_name} has diff ID {record.diff_id}, "
                                           f"but the config says {diff_ids[i]}")
                    records.append(record)
                    imported += 1
                tags = [(f"{repository}{t}" if repository else "") if t.startswith(":") else t for t in entry.tags]
                tags = [t for t in tags if t and _valid_tag(t)]
                loaded.append(store.add(config_bytes, records, tags=tags))
    finally:
        source.close()
    return LoadResult(tuple(loaded), imported, reused, foreign)


def _reference(store: "ImageStore", chain: str, diff_id: str, parent: Optional[LayerRecord],
               descriptor: Optional[dict[str, Any]], name: Optional[str], source: _Source, lease: Any) -> LayerRecord:
    """A layer we cannot (or need not) unpack: its descriptor, and its blob when the archive has it."""
    blob = None
    media = MEDIA_LAYER
    if name is not None:  # present, but over an absent foreign layer: keep the blob only
        tmp = store.new_temp_file(".tar")
        try:
            sha = hashlib.sha256()
            with source.open(name) as src, open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
            digest = "sha256:" + sha.hexdigest()
            lease.hold(digest)
            blob = store.put_blob_file(tmp, digest)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        media = (descriptor or {}).get("mediaType", MEDIA_LAYER) if digest != diff_id else MEDIA_LAYER
    if descriptor is None and blob is None:
        raise ArchiveError(f"layer {diff_id[:19]} is missing from the archive (and is not a foreign layer, which "
                           "may be left out)")
    lease.hold(chain)
    record = LayerRecord(chain_id=chain, diff_id=diff_id, parent=parent.chain_id if parent else None, folder=None,
                         size=int((descriptor or {}).get("size") or 0), blob=blob, media_type=media, owned=True,
                         descriptor=dict(descriptor) if descriptor and blob is None else None, created=time.time())
    return store.put_layer(record)


def _valid_tag(text: str) -> bool:
    try:
        parse_reference(text)
        return True
    except ReferenceError_:
        return False
