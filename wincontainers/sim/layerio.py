"""Layer contents on the simulated host: what ImportLayer, ExportLayer and PrepareLayer do.

A layer folder holds its files under ``Files/`` (links as empty placeholders: the host never
follows a layer's links) and their Windows metadata in the tree's NTFS store.

Diff layers work as the container file system filter does: every folder a diff layer holds is
*complete*. ImportLayer fills each one with a placeholder (an empty entry with a container
placeholder reparse point, IO_REPARSE_TAG_WCI) for every entry the parent layers show there
that the layer does not replace. A placeholder means "see the layers below"; a name a folder
does not hold is deleted. So the deletions of a tar are applied by deleting placeholders after
ImportLayer, and a hard link that replaces a parent's file is made after deleting the
placeholder ImportLayer left at its name — which is what hcsshim does, and what this
simulator therefore demands.

- :func:`import_transport`: ImportLayer/HcsImportLayer: the legacy transport folder
  (``Files\\`` with a 4-byte attribute prefix + backup stream per file, ``<dir>.$wcidirs$`` for
  directory metadata, ``Hives\\``) into a new layer folder, then the placeholders. A reparse
  point HCS cannot import (WSL/LX symlinks and the like) fails it with E_UNEXPECTED,
  "Catastrophic failure", as on Windows.
- :func:`export_layer`: ExportLayer: a layer (or a sandbox's changes) into an existing folder,
  its deletions as ``tombstones.txt``.
- :func:`overlay`: PrepareLayer's merge of one layer into a sandbox's volume.

Why one file: ImportLayer, ExportLayer and PrepareLayer share the placeholder and tombstone rules
of diff layers; split, the rules would be stated twice.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import contextlib
import io
import os
import shutil
import stat
import struct
import time
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Sequence

import attrs

from wincontainers.layerfile.attributes import FileAttributes
from wincontainers.layerfile.backup import (
    HEADER,
    BackupReader,
    BackupWriter,
    StreamHeader,
    StreamId,
    copy_exact,
    read_up_to,
    streams_in,
    write_all,
)
from wincontainers.layerfile.reparse import IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK, OTHER_TAGS, reparse_tag
from wincontainers.layerfile.times import unix_ns_to_filetime
from wincontainers.sim import hive, ntfs
from wincontainers.sim.faults import Fail
from wincontainers.sim.ntfs import VOLUME_STORE, FileMeta, NtfsStore, host_path, is_internal, rel_from_host

__all__ = [
    "apply_backup", "backup_of", "import_transport", "export_layer", "process_base_image", "WCIDIRS",
    "LX_SYMLINK_TAG", "walk", "VOLUME_STORE", "overlay", "record_prepared_view", "layer_build", "PLACEHOLDER",
]

E_UNEXPECTED = 0x8000FFFF
E_INVALIDARG = 0x80070057
ERROR_PATH_NOT_FOUND = 0x80070003
ERROR_ALREADY_EXISTS = 0x800700B7
WCIDIRS = ".$wcidirs$"
LX_SYMLINK_TAG = 0xA000001D
IO_REPARSE_TAG_WCI = 0x80000018
#: The reparse buffer of a placeholder ImportLayer leaves (tag, no data).
PLACEHOLDER = struct.pack("<IHH", IO_REPARSE_TAG_WCI, 0, 0)
_HIVE_DELTAS = ("DefaultUser_Delta", "Sam_Delta", "Security_Delta", "Software_Delta", "System_Delta")


def _times_of(st: os.stat_result) -> tuple[int, int, int, int]:
    # Like NTFS since Windows Vista (NtfsDisableLastAccessUpdate), reading does not move the
    # last access time here: it is the last write, so exporting twice gives the same bytes.
    write = unix_ns_to_filetime(st.st_mtime_ns)
    return write, write, write, unix_ns_to_filetime(st.st_ctime_ns)


def _filled_times(meta: FileMeta, st: os.stat_result) -> tuple[int, int, int, int]:
    """``meta``'s four times, each one it lacks taken from the host file's (``_times_of``)."""
    kept = (meta.creation, meta.access, meta.write, meta.change)
    if all(t is not None for t in kept):
        return kept  # type: ignore[return-value]
    fallback = _times_of(st)
    return tuple(t if t is not None else f for t, f in zip(kept, fallback))  # type: ignore[return-value]


def apply_backup(
    store: NtfsStore,
    root: Path,
    rel: str,
    *,
    directory: bool,
    attributes: int,
    stream: "IO[bytes] | memoryview",
    times: Sequence[Optional[int]] = (None, None, None, None),
) -> FileMeta:
    """Create ``root/rel`` from a backup stream (BackupWrite with security processing), read
    from a file or held whole (most transport files: one read, streams found by offset)."""
    target = host_path(root, rel)
    meta = FileMeta(attributes=attributes)
    meta.creation, meta.access, meta.write, meta.change = (list(times) + [None] * 4)[:4]
    streams: list[tuple[str, bytes]] = []
    if directory:
        os.makedirs(target, exist_ok=True)
    if isinstance(stream, memoryview):
        _apply_whole(target, directory, meta, streams, stream)
        return _recorded(store, rel, meta, streams)
    out: Optional[IO[bytes]] = None
    try:
        for header, body in BackupReader(stream):
            if _took_metadata(meta, streams, header, body) or directory:
                continue
            if header.id == StreamId.DATA:
                out = out or open(target, "wb", buffering=0)
                copy_exact(body, out, header.size)
            elif header.id == StreamId.SPARSE_BLOCK:
                out = out or open(target, "wb", buffering=0)
                raw = body.read()
                (offset,) = struct.unpack_from("<q", raw)
                out.seek(offset)
                out.write(raw[8:])
        if out is None and not directory:
            out = open(target, "wb", buffering=0)  # a link placeholder, or an empty file
    finally:
        if out is not None:
            out.close()
    return _recorded(store, rel, meta, streams)


def _took_metadata(meta: FileMeta, streams: list[tuple[str, bytes]], header: StreamHeader, body: Any) -> bool:
    """Security, EAs, reparse data or an alternate stream, kept for the store; False for data."""
    if header.id == StreamId.SECURITY_DATA:
        meta.security = body.read()
    elif header.id == StreamId.EA_DATA:
        meta.eas = body.read()
    elif header.id == StreamId.REPARSE_DATA:
        meta.reparse = body.read()
    elif header.id == StreamId.ALTERNATE_DATA:
        name = header.name[1:] if header.name.startswith(":") else header.name
        name = name[: -len(":$DATA")] if name.endswith(":$DATA") else name
        streams.append((name, body.read()))
    else:
        return False
    return True


def _recorded(store: NtfsStore, rel: str, meta: FileMeta, streams: list[tuple[str, bytes]]) -> FileMeta:
    if meta.reparse is not None and not meta.attributes:
        meta.attributes = int(FileAttributes.REPARSE_POINT)
    store.put(rel, meta)
    for name, data in streams:
        store.put_stream(rel, name, data)
    return meta


def _apply_whole(target: bytes, directory: bool, meta: FileMeta, streams: list[tuple[str, bytes]],
                 stream: memoryview) -> None:
    """:func:`apply_backup` of a stream held whole: a file's data written with one call."""
    pieces: list[tuple[Optional[int], memoryview]] = []  # (offset of a sparse block, bytes), in order
    for header, body in streams_in(stream):
        if _took_metadata(meta, streams, header, body) or directory:
            continue
        if header.id == StreamId.DATA:
            pieces.append((None, body.getbuffer()))
        elif header.id == StreamId.SPARSE_BLOCK:
            raw = body.getbuffer()
            pieces.append((struct.unpack_from("<q", raw)[0], raw[8:]))
    if not directory:  # as open(target, "wb"): created or emptied, then written
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            for offset, data in pieces:
                if offset is not None:
                    os.lseek(fd, offset, os.SEEK_SET)
                _write_all_fd(fd, data)
        finally:
            os.close(fd)


def _write_all_fd(fd: int, data: "bytes | memoryview") -> None:
    view = memoryview(data)
    while len(view):
        view = view[os.write(fd, view):]


@attrs.define
class _FilePart:
    """A file's data inside a backup stream: the open file and the size its header gave."""

    file: IO[bytes]
    size: int


class _Concat(io.RawIOBase):
    """Bytes, then a file, then bytes: a backup stream without copying the file into memory."""

    def __init__(self, parts: "list[bytes | _FilePart]") -> None:
        super().__init__()
        self.parts = parts
        self.index = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: object) -> int:
        view = memoryview(b)  # type: ignore[arg-type]
        if not len(view):
            return 0
        while self.index < len(self.parts):
            part = self.parts[self.index]
            if isinstance(part, bytes):
                if not part:
                    self.index += 1
                    continue
                n = min(len(view), len(part))
                view[:n] = part[:n]
                self.parts[self.index] = part[n:]
                return n
            data = part.file.read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            part.file.close()
            self.index += 1
        return 0

    def copy_to(self, out: IO[bytes], prefix: bytes = b"") -> None:
        """``prefix`` and what is left, written to ``out``: a small file's stream with one write,
        a large file's data by the kernel where it can
        (:func:`~wincontainers.layerfile.backup.copy_exact`)."""
        pending = bytearray(prefix)
        for part in self.parts[self.index:]:
            self.index += 1
            if isinstance(part, bytes):
                pending += part
                continue
            try:
                if part.size < _READ_WHOLE:
                    data = read_up_to(part.file, part.size)
                    if len(data) < part.size:
                        raise OSError(f"the file ended {part.size - len(data)} bytes early")
                    pending += data
                else:
                    write_all(out, pending)
                    pending.clear()
                    copy_exact(part.file, out, part.size)
            finally:
                part.file.close()
        write_all(out, pending)

    def close(self) -> None:
        for part in self.parts[self.index:]:
            if isinstance(part, _FilePart):
                part.file.close()
        self.index = len(self.parts)
        super().close()


def backup_of(store: NtfsStore, root: Path, rel: str, st: Optional[os.stat_result] = None,
              ) -> tuple[int, tuple[Optional[int], ...], IO[bytes], bool]:
    """(attributes, times, backup stream, is_directory) of ``root/rel`` (BackupRead); ``st``:
    its lstat, when the caller has it."""
    path = host_path(root, rel)
    st = st if st is not None else os.lstat(path)
    directory = stat.S_ISDIR(st.st_mode)
    meta = store.get(rel)
    lx_link = stat.S_ISLNK(st.st_mode)
    if meta is None:
        meta = FileMeta(attributes=int(FileAttributes.DIRECTORY if directory else FileAttributes.ARCHIVE))
    if lx_link:
        # A POSIX symlink made inside a container (ln -s): what WSL, Cygwin and MSYS create on
        # Windows, an IO_REPARSE_TAG_LX_SYMLINK reparse point.
        target = os.readlink(path)
        meta.reparse = struct.pack("<IHH", LX_SYMLINK_TAG, 4 + len(target), 0) + struct.pack("<I", 2) + target
        meta.attributes = (meta.attributes or 0) | FileAttributes.REPARSE_POINT
    head = io.BytesIO()
    writer = BackupWriter(head)
    if meta.security is not None:
        writer.security(meta.security)
    if meta.eas is not None:
        writer.eas(meta.eas)
    if meta.reparse is not None:
        writer.reparse(meta.reparse)
    parts: "list[bytes | _FilePart]" = [head.getvalue()]
    if not directory and meta.reparse is None:
        size = st.st_size
        parts.append(struct.pack("<IIqI", StreamId.DATA, 0, size, 0))
        parts.append(_FilePart(open(path, "rb", buffering=0), size))
    tail = io.BytesIO()
    tail_writer = BackupWriter(tail)
    for name, data in store.streams(rel):
        tail_writer.alternate(name, len(data), io.BytesIO(data))
    parts.append(tail.getvalue())
    attributes = meta.attributes if meta.attributes is not None else 0
    return attributes, _filled_times(meta, st), _Concat(parts), directory  # type: ignore[return-value]


def _listing(folder: bytes) -> list[tuple[str, bool]]:
    """A folder's names as NTFS sorts them, the simulator's own files left out, each with
    whether it is a regular file (from the listing itself: no stat)."""
    with os.scandir(folder) as entries:
        found = [(rel_from_host(e.name), e.is_file(follow_symlinks=False)) for e in entries if not is_internal(e.name)]
    return sorted(found, key=lambda c: (c[0].upper(), c[0]))


def _names(folder: bytes) -> list[str]:
    """:func:`_listing`'s names alone."""
    return [name for name, _regular in _listing(folder)]


def walk(root: Path, top: str) -> Iterator[str]:
    """Relative paths under ``root/top`` (top included), parents first, names sorted as NTFS does."""
    for rel, _is_folder in walk_entries(root, top):
        yield rel


def walk_entries(root: Path, top: str) -> Iterator[tuple[str, bool]]:
    """(relative path, is a folder) under ``root/top``, as :func:`walk`; links are not followed.
    One lstat for ``top``, then the folders' listings (scandir: their types come with the names)."""
    base = host_path(root, top)
    try:
        st = os.lstat(base)
    except (FileNotFoundError, NotADirectoryError):
        return
    folder = stat.S_ISDIR(st.st_mode)
    yield top, folder
    if folder:
        yield from _below(base, top)


def _below(host: bytes, rel: str) -> Iterator[tuple[str, bool]]:
    with os.scandir(host) as listing:
        children = [(rel_from_host(e.name), e.is_dir(follow_symlinks=False), e.name)
                    for e in listing if not is_internal(e.name)]
    children.sort(key=lambda c: (c[0].upper(), c[0]))
    for name, folder, raw in children:
        child = f"{rel}/{name}" if rel else name
        yield child, folder
        if folder:
            yield from _below(host + b"/" + raw, child)


# -- the merged view of a layer chain -----------------------------------------------------------------


class _Layer:
    """One layer folder with its placeholders (read once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        store = ntfs.open_view(path)
        try:
            self.placeholders = frozenset(
                rel.lower() for rel, meta in store.items()
                if meta.reparse is not None and reparse_tag(meta.reparse) == IO_REPARSE_TAG_WCI)
        finally:
            store.close()

    def lookup(self, rel: str) -> str:
        """What this layer says of ``rel``: "dir", "file", "below" (a placeholder: the layers
        below have it) or "absent" (this layer's folder is complete and has no such name)."""
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            host = host_path(self.path, prefix)
            try:
                st = os.lstat(host)
            except (FileNotFoundError, NotADirectoryError):
                return "absent" if depth > 1 else "below"
            if prefix.lower() in self.placeholders:
                return "below"
            if depth == len(parts):
                return "dir" if stat.S_ISDIR(st.st_mode) else "file"
            if not stat.S_ISDIR(st.st_mode):
                return "absent"
        return "absent"

    def listing(self, rel: str) -> dict[str, str]:
        """lower-case name -> name, of folder ``rel`` of this layer (placeholders included)."""
        return {n.lower(): n for n in _names(host_path(self.path, rel))}


def _chain(parents: Sequence[Path]) -> list[_Layer]:
    return [_Layer(p) for p in parents]


def merged(chain: Sequence[_Layer], rel: str) -> tuple[Optional[_Layer], str]:
    """(the layer that holds ``rel`` in the merged view of ``chain``, its kind), or (None, "absent")."""
    for layer in chain:  # nearest first
        kind = layer.lookup(rel)
        if kind == "below":
            continue
        if kind == "absent":
            return None, "absent"
        return layer, kind
    return None, "absent"


def merged_listing(chain: Sequence[_Layer], rel: str) -> dict[str, tuple[_Layer, str]]:
    """lower-case name -> (layer holding it, its name) of folder ``rel`` in the merged view."""
    owner, kind = merged(chain, rel)
    if owner is None or kind != "dir":
        return {}
    out = {}
    for low, name in owner.listing(rel).items():
        holder, _kind = merged(chain, f"{rel}/{name}")
        if holder is not None:
            out[low] = (holder, name)
    return out


def _expand(layer: Path, store: NtfsStore, chain: Sequence[_Layer]) -> None:
    """Give every folder of a new diff layer a placeholder for each entry the parents show
    there that the layer does not replace (what the container file system filter needs)."""
    if not chain or not (layer / "Files").is_dir():
        return
    for rel in [rel for rel, folder in walk_entries(layer, "Files") if folder]:
        host = host_path(layer, rel)
        mine = {n.lower() for n in _names(host)}
        for low, (holder, name) in merged_listing(chain, rel).items():
            if low in mine or is_internal(name):
                continue
            source = host_path(holder.path, f"{rel}/{name}")
            st = os.lstat(source)
            target = host_path(layer, f"{rel}/{name}")
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(target)
            else:
                open(target, "wb").close()
            holder_store = ntfs.open_view(holder.path)
            try:
                lower = holder_store.get(f"{rel}/{name}")
            finally:
                holder_store.close()
            base = lower.attributes if lower is not None and lower.attributes is not None else (
                int(FileAttributes.DIRECTORY) if stat.S_ISDIR(st.st_mode) else int(FileAttributes.ARCHIVE))
            times = (lower.creation, lower.access, lower.write, lower.change) if lower else _times_of(st)
            store.put(f"{rel}/{name}", FileMeta(attributes=base | int(FileAttributes.REPARSE_POINT),
                                                creation=times[0], access=times[1], write=times[2],
                                                change=times[3], reparse=PLACEHOLDER))


# -- ImportLayer ---------------------------------------------------------------------------------


def import_transport(folder: Path, layer: Path, parents: Sequence[Path]) -> None:
    if not folder.is_dir():
        raise Fail(ERROR_PATH_NOT_FOUND, f"import folder {folder} does not exist")
    if layer.exists() and any(not is_internal(p.name) for p in layer.iterdir()):
        raise Fail(ERROR_ALREADY_EXISTS, f"layer folder {layer} is not empty")
    staging = ntfs.open_view(folder)
    layer.mkdir(parents=True, exist_ok=True)
    store = NtfsStore.at(layer)
    try:
        with store.batch():
            store.set_info("parents", [str(p) for p in parents])
            staged_metas = {rel.lower(): meta for rel, meta in staging.items()}  # one query, not one per file
            for rel, directory in walk_entries(folder, "Files"):
                if rel.endswith(WCIDIRS):
                    continue
                meta_rel = rel + WCIDIRS if directory else rel
                try:
                    prefix, stream = _open_transport(host_path(folder, meta_rel))
                except FileNotFoundError:
                    if not directory:
                        raise
                    os.makedirs(host_path(layer, rel), exist_ok=True)
                    store.put(rel, FileMeta(attributes=int(FileAttributes.DIRECTORY)))
                    continue
                with contextlib.nullcontext() if isinstance(stream, memoryview) else stream:
                    if len(prefix) < 4:
                        raise Fail(E_UNEXPECTED, f"transport file {rel} is shorter than its attribute prefix")
                    (attributes,) = struct.unpack("<I", prefix)
                    staged = staged_metas.get(meta_rel.lower())
                    times = (staged.creation, staged.access, staged.write, staged.change) if staged else (None,) * 4
                    meta = apply_backup(store, layer, rel, directory=directory, attributes=attributes,
                                        stream=stream, times=times)
                if meta.reparse is not None:
                    tag = reparse_tag(meta.reparse)
                    if tag not in (IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_MOUNT_POINT):
                        # What vmcompute does with a reparse point it cannot import.
                        raise Fail(E_UNEXPECTED, f"{rel}: cannot import reparse tag 0x{tag:08X} "
                                                 f"({OTHER_TAGS.get(tag, 'unknown')})")
            _copy_hives(folder, staging, layer, store)
            _expand(layer, store, _chain(parents))
            tomb = folder / "tombstones.txt"
            if tomb.exists():
                for rel in _read_tombstones(tomb):
                    _delete(layer, store, rel)
    except Fail:
        store.close()
        raise
    except (OSError, ValueError) as exc:
        store.close()
        raise Fail(E_UNEXPECTED, f"import failed: {exc}") from None
    finally:
        staging.close()
    store.close()


#: a transport file up to this size is read whole with one read (nearly every file of a layer)
_READ_WHOLE = 1 << 16


def _open_transport(path: bytes) -> "tuple[bytes, IO[bytes] | memoryview]":
    """A transport file's attribute prefix (short if the file is) and the backup stream after
    it: a small file's read whole at once (open, read, close), a larger one's as the file,
    which lets its data be copied by the kernel. Links are not followed."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        head = os.read(fd, _READ_WHOLE)
        if len(head) >= _READ_WHOLE:
            os.lseek(fd, 4, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    if len(head) < _READ_WHOLE:
        os.close(fd)
        return head[:4], memoryview(head)[4:]
    return head[:4], open(fd, "rb")  # the file object owns the descriptor from here


def _delete(root: Path, store: NtfsStore, rel: str) -> None:
    path = host_path(root, rel)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    store.remove(rel)


def _read_tombstones(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8-sig", "surrogateescape")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "Version 1.0":
        raise Fail(E_UNEXPECTED, "tombstones.txt does not start with 'Version 1.0'")
    out = []
    for line in lines[1:]:
        rel = line.strip().lstrip("\\").replace("\\", "/")
        if not rel:
            continue
        if ".." in rel.split("/"):
            raise Fail(E_INVALIDARG, f"bad tombstone {line!r}")
        out.append("Files/" + rel)
    return out


# -- ExportLayer ---------------------------------------------------------------------------------


def _write_transport(folder: Path, rel: str, attributes: int, stream: IO[bytes], times: Sequence[Optional[int]],
                     directory: bool, staging: NtfsStore) -> None:
    target = host_path(folder, rel + (WCIDIRS if directory else ""))
    if directory:
        os.makedirs(host_path(folder, rel), exist_ok=True)
    with open(target, "wb", buffering=0) as out:
        if isinstance(stream, _Concat):
            stream.copy_to(out, prefix=struct.pack("<I", attributes))
        else:
            write_all(out, struct.pack("<I", attributes))
            shutil.copyfileobj(stream, out, 1 << 20)
    staging.put(rel + (WCIDIRS if directory else ""),
                FileMeta(creation=times[0], access=times[1], write=times[2], change=times[3]))


def export_layer(layer: Path, folder: Path, *, volume: Optional[Path] = None, parents: Sequence[Path] = ()) -> None:
    """Write ``layer`` (or, for a sandbox, the changes in ``volume``) into the existing ``folder``;
    a read-only layer's deletions are what ``parents`` show that its complete folders lack."""
    if not folder.is_dir():
        raise Fail(ERROR_PATH_NOT_FOUND, f"export folder {folder} does not exist (ExportLayer writes into an existing "
                                         "folder)")
    staging = ntfs.open_view(folder)
    try:
        with staging.batch():
            if volume is not None:
                _export_changes(layer, volume, folder, staging)
            else:
                _export_files(layer, folder, staging, parents)
    except (OSError, ValueError) as exc:
        raise Fail(E_UNEXPECTED, f"export failed: {exc}") from None
    finally:
        staging.close()


def _export_files(layer: Path, folder: Path, staging: NtfsStore, parents: Sequence[Path]) -> None:
    store = ntfs.open_view(layer)
    try:
        chain = _chain(parents)
        own = _Layer(layer)
        links: dict[tuple[int, int], str] = {}
        deleted: list[str] = []

        with_streams = store.stream_owners()
        ahead = _ReadAhead()

        def export(rel: str, siblings: Optional[dict[str, FileMeta]] = None) -> None:
            src = host_path(layer, rel)
            fd = ahead.take(src)
            if fd is None:
                export_entry(rel, src, os.lstat(src), None, siblings)
                return
            try:
                export_entry(rel, src, os.fstat(fd), fd, siblings)
            finally:
                os.close(fd)

        def export_entry(rel: str, src: bytes, st: os.stat_result, fd: Optional[int],
                         siblings: Optional[dict[str, FileMeta]]) -> None:
            low = rel.lower()
            if low in own.placeholders:
                return  # the layers below have it
            key = (st.st_dev, st.st_ino)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in links:
                os.link(host_path(folder, links[key]), host_path(folder, rel))  # keep the hard link
                staged = staging.get(links[key])  # a hard link shares its file's metadata
                if staged is not None:
                    staging.put(rel, staged)
                return
            if siblings is not None and stat.S_ISREG(st.st_mode) and st.st_size < _READ_WHOLE \
                    and low not in with_streams:
                meta = siblings.get(rel.rpartition("/")[2].lower())
                if meta is None or meta.reparse is None:
                    _small_transport(src, fd, host_path(folder, rel), rel, meta, st, staging)
                    if st.st_nlink > 1:
                        links[key] = rel
                    return
            attributes, times, stream, directory = backup_of(store, layer, rel, st)
            try:
                _write_transport(folder, rel, attributes, stream, times, directory, staging)
            finally:
                stream.close()
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                links[key] = rel
            if directory and not _is_reparse(store, rel):
                listing = _listing(src)
                mine = {n.lower() for n, _regular in listing}
                for low, (_holder, name) in merged_listing(chain, rel).items():
                    if low not in mine:
                        deleted.append(f"{rel}/{name}")
                children = store.children(rel)  # one query for the folder, not one per file
                for i, (name, _regular) in enumerate(listing):
                    if i % _AHEAD == 0:
                        ahead.start([host_path(src, n) for n, regular in listing[i:i + _AHEAD] if regular])
                    export(f"{rel}/{name}", children)

        if (layer / "Files").is_dir():
            try:
                with store.reading():  # one read transaction: no lock taken per file's rows
                    export("Files")
            finally:
                ahead.close()
        _write_tombstones(folder, sorted(deleted))
        _copy_hives(layer, store, folder, staging)
    finally:
        store.close()


#: files of a folder whose reading ExportLayer starts together
_AHEAD = 64
#: descriptors read-ahead keeps for the export (a window per folder level of a deep tree)
_AHEAD_KEPT = 512


class _ReadAhead:
    """Reads of a folder's next files, started together (WILLNEED returns at once), and their
    descriptors kept for the export to read them with.

    Read one at a time, a layer not in the cache waits for the disk once per file; started
    together, the reads are queued and merged, and the disk's time overlaps ours (a 50,000-file
    layer read from disk: 3.5-3.9 s one by one, 0.9-1.0 s in windows of 64). Only regular files
    are opened (without following links, non-blocking); one that cannot be is read the usual way."""

    def __init__(self) -> None:
        self._fds: dict[bytes, int] = {}

    def start(self, paths: Sequence[bytes]) -> None:
        for path in paths:
            if path in self._fds:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:  # gone, or a link: read (or refused) the usual way
                continue
            try:
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, 0, _READ_WHOLE, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            if len(self._fds) < _AHEAD_KEPT:
                self._fds[path] = fd
            else:
                os.close(fd)

    def take(self, path: bytes) -> Optional[int]:
        """The descriptor of ``path``, if read-ahead opened it (the caller closes it)."""
        return self._fds.pop(path, None)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _small_transport(src: bytes, fd: Optional[int], target: bytes, rel: str, meta: Optional[FileMeta],
                     st: os.stat_result, staging: NtfsStore) -> None:
    """:func:`backup_of` and :func:`_write_transport` of a small plain file (no reparse data, no
    alternate stream; ``meta`` its row, if it has one): read with one call, its transport file
    written with one. Most files of a layer are these, and the general path's file objects and
    chained streams cost more than the calls."""
    if meta is None:
        meta = FileMeta(attributes=int(FileAttributes.ARCHIVE))
    if fd is not None:  # read-ahead's (its owner closes it)
        data = os.read(fd, _READ_WHOLE)
    else:
        fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            data = os.read(fd, _READ_WHOLE)
        finally:
            os.close(fd)
    parts = [struct.pack("<I", meta.attributes or 0)]
    if meta.security is not None:
        parts += [HEADER.pack(StreamId.SECURITY_DATA, 0, len(meta.security), 0), meta.security]
    if meta.eas is not None:
        parts += [HEADER.pack(StreamId.EA_DATA, 0, len(meta.eas), 0), meta.eas]
    parts += [HEADER.pack(StreamId.DATA, 0, len(data), 0), data]
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        _write_all_fd(fd, b"".join(parts))
    finally:
        os.close(fd)
    creation, access, write, change = _filled_times(meta, st)
    staging.put(rel, FileMeta(creation=creation, access=access, write=write, change=change))


def _is_reparse(store: NtfsStore, rel: str) -> bool:
    meta = store.get(rel)
    return meta is not None and meta.reparse is not None


def _export_changes(layer: Path, volume: Path, folder: Path, staging: NtfsStore) -> None:
    """A sandbox: what the container changed since PrepareLayer, plus deletions."""
    vstore = NtfsStore(layer / VOLUME_STORE)
    try:
        manifest = vstore.info("manifest", {}) or {}
        assert isinstance(manifest, dict)
        seen = set()
        written: set[str] = set()
        (folder / "Files").mkdir(parents=True, exist_ok=True)

        def export(rel: str) -> None:
            attributes, times, stream, directory = backup_of(vstore, volume, rel)
            try:
                _write_transport(folder, "Files/" + rel, attributes, stream, times, directory, staging)
            finally:
                stream.close()
            written.add(rel.lower())

        for rel in walk(volume, ""):
            if not rel:
                continue
            rel = rel.lstrip("/")
            seen.add(rel.lower())
            st = os.lstat(host_path(volume, rel))
            before = manifest.get(rel.lower())
            now = [st.st_size, st.st_mtime_ns, stat.S_IFMT(st.st_mode)]
            if before == now and not stat.S_ISLNK(st.st_mode):
                continue
            # A change deep in an unchanged directory: its directories come along, as on Windows.
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                ancestor = "/".join(parts[:depth])
                if ancestor.lower() not in written:
                    export(ancestor)
            export(rel)
        deleted = [k for k in manifest if k not in seen]
        names = manifest_names(vstore)
        for key in deleted:
            # A deletion changes its folder: the folder comes along (a reader lists the
            # deletions of each folder it walks, as hcsshim's does).
            parts = key.split("/")
            for depth in range(1, len(parts)):
                ancestor = "/".join(parts[:depth])
                if ancestor not in written and ancestor in seen:
                    export(str(names.get(ancestor, ancestor)))
        _write_tombstones(folder, ["Files/" + str(names.get(k, k)) for k in sorted(deleted)])
        hives = folder / "Hives"
        hives.mkdir(exist_ok=True)
        # The container's registry deltas, copied with their own (stable) times.
        recorded = vstore.info("prepared_at")
        when = recorded if isinstance(recorded, int) else unix_ns_to_filetime(os.stat(layer).st_mtime_ns)
        for name in _HIVE_DELTAS:
            (hives / name).write_bytes(b"regf" + b"\0" * 4092)
            staging.put(f"Hives/{name}", FileMeta(creation=when, access=when, write=when, change=when))
        staging.put("Hives", FileMeta(attributes=int(FileAttributes.DIRECTORY), creation=when, access=when,
                                      write=when, change=when))
    finally:
        vstore.close()


def manifest_names(vstore: NtfsStore) -> dict[str, str]:
    names = vstore.info("manifest_names", {}) or {}
    return names if isinstance(names, dict) else {}


def _write_tombstones(folder: Path, paths: Sequence[str]) -> None:
    lines = ["Version 1.0"] + ["\\" + p[len("Files/"):].replace("/", "\\") for p in paths if p.startswith("Files/")]
    if len(lines) > 1:
        (folder / "tombstones.txt").write_bytes(
            b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")


def _copy_hives(src: Path, src_store: NtfsStore, dst: Path, dst_store: NtfsStore) -> None:
    """``Hives\\`` with the times of the folder and of each hive file."""
    hives = src / "Hives"
    if not hives.is_dir():
        return
    (dst / "Hives").mkdir(exist_ok=True)
    names = ["Hives"] + [f"Hives/{h.name}" for h in sorted(hives.iterdir()) if h.is_file() and not is_internal(h.name)]
    for rel in names[1:]:
        shutil.copyfile(src / rel, dst / rel)
    for rel in names:
        # The folder's own metadata travels as ``Hives.$wcidirs$`` (hcsshim's writer makes one
        # for every folder entry); the folder itself is what a plain copy left.
        marker = src_store.get(rel + WCIDIRS) if rel == "Hives" else None
        meta = attrs.evolve(marker, attributes=int(FileAttributes.DIRECTORY)) if marker is not None else src_store.get(rel)
        if meta is not None:
            dst_store.put(rel, meta)


# -- PrepareLayer ------------------------------------------------------------------------------------


def overlay(layer: Path, volume: Path, vstore: NtfsStore, *, diff: bool) -> None:
    """Merge one layer's ``Files`` into a sandbox's volume (layers are merged base first).

    A base layer is copied whole. In a diff layer every folder is complete: what the volume has
    in it that the layer's folder lacks is deleted, a placeholder keeps what is below, and real
    entries replace what is there. Metadata follows into the volume's store.
    """
    files = layer / "Files"
    if not files.is_dir():
        return
    src_store = ntfs.open_view(layer)
    try:
        placeholders = {rel.lower() for rel, meta in src_store.items()
                        if meta.reparse is not None and reparse_tag(meta.reparse) == IO_REPARSE_TAG_WCI}
        _overlay_folder(layer, "Files", volume, "", src_store, vstore, placeholders, diff)
    finally:
        src_store.close()


def _overlay_folder(layer: Path, rel: str, volume: Path, vrel: str, src_store: NtfsStore, vstore: NtfsStore,
                    placeholders: set[str], diff: bool) -> None:
    src = host_path(layer, rel)
    dest = host_path(volume, vrel)
    names = _names(src)
    if diff:
        mine = {n.lower() for n in names}
        for existing in _names(dest):
            if existing.lower() not in mine:
                _delete(volume, vstore, f"{vrel}/{existing}" if vrel else existing)
    for name in names:
        child = f"{rel}/{name}"
        vchild = f"{vrel}/{name}" if vrel else name
        if child.lower() in placeholders:
            continue
        s = host_path(layer, child)
        d = host_path(volume, vchild)
        st = os.lstat(s)
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(d) and not os.path.isdir(d):
                os.unlink(d)
            os.makedirs(d, exist_ok=True)
        else:
            if os.path.isdir(d) and not os.path.islink(d):
                shutil.rmtree(d)
            elif os.path.lexists(d):
                os.unlink(d)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            else:
                shutil.copy2(s, d)
        meta = src_store.get(child)
        vstore.remove(vchild, recursive=not stat.S_ISDIR(st.st_mode))
        if meta is not None:
            vstore.put(vchild, meta)
        for stream_name, data in src_store.streams(child):
            vstore.put_stream(vchild, stream_name, data)
        if stat.S_ISDIR(st.st_mode) and not (meta is not None and meta.reparse is not None):
            _overlay_folder(layer, child, volume, vchild, src_store, vstore, placeholders, diff)


def record_prepared_view(layer: Path, volume: Path) -> None:
    """Remember what PrepareLayer put into the volume, so ExportLayer can find the changes."""
    vstore = NtfsStore(layer / VOLUME_STORE)
    try:
        manifest: dict[str, list[int]] = {}
        names: dict[str, str] = {}
        for rel in walk(volume, ""):
            if not rel:
                continue
            rel = rel.lstrip("/")
            st = os.lstat(host_path(volume, rel))
            manifest[rel.lower()] = [st.st_size, st.st_mtime_ns, stat.S_IFMT(st.st_mode)]
            names[rel.lower()] = rel
        with vstore.batch():
            vstore.set_info("manifest", manifest)
            vstore.set_info("manifest_names", names)
            vstore.set_info("prepared_at", unix_ns_to_filetime(time.time_ns()))
    finally:
        vstore.close()


def process_base_image(layer: Path) -> None:
    """ProcessBaseImage: hives from Files/Windows/System32/config, the scratch templates, and the
    image's Windows build (read from its SOFTWARE hive), which process isolation checks."""
    config = layer / "Files" / "Windows" / "System32" / "config"
    hives = layer / "Hives"
    hives.mkdir(exist_ok=True)
    for name, base in (("SYSTEM", "SYSTEM_BASE"), ("SOFTWARE", "SOFTWARE_BASE"), ("SAM", "SAM_BASE"),
                       ("SECURITY", "SECURITY_BASE"), ("DEFAULT", "DEFAULTUSER_BASE")):
        src = config / name
        (hives / base).write_bytes(src.read_bytes() if src.is_file() else b"regf")
    for template in ("blank-base.vhdx", "blank.vhdx"):
        (layer / template).write_bytes(b"vhdxfile (simulated)\n")


def layer_build(layer: Path) -> Optional[int]:
    """The Windows build of a base layer, from its processed SOFTWARE hive (None: unknown)."""
    for candidate in (layer / "Hives" / "SOFTWARE_BASE", layer / "Files" / "Windows" / "System32" / "config" / "SOFTWARE"):
        try:
            data = candidate.read_bytes()
        except OSError:
            continue
        build = hive.current_build(data)
        if build is not None:
            return build
    return None
