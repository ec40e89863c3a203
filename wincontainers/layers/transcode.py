"""Tar entries <-> layer folders, as hcsshim's layer writers and readers do.

- :class:`TransportWriter` writes a diff layer's entries into vmcompute's import folder (the
  legacy transport format: ``Files\\<path>`` = 4-byte attributes + Win32 backup stream,
  ``<dir>.$wcidirs$`` for directories, ``Hives\\`` raw). Hard links, deletions, directory times
  and UtilityVM content are applied after ImportLayer (:class:`PendingWork`), as hcsshim does:
  vmcompute never sees a tombstones.txt from a tar (CVE-2018-8115).
- :class:`BaseLayerWriter` writes a base layer's entries straight into the layer folder with
  backup semantics (then ProcessBaseImage makes its hives).
- :func:`read_tree` turns an export folder (or a base layer folder) back into entries, in a
  fixed order, so exporting the same layer twice gives the same tar.
"""

from __future__ import annotations

import base64
import io
import struct
from typing import IO, Iterator, Optional, cast

import attrs

from wincontainers._native.layerfs import LayerFolder, Times
from wincontainers.layerfile.attributes import FileAttributes
from wincontainers.layerfile.backup import BackupReader, BackupWriter, Readable, StreamId
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layerfile.reparse import (
    IO_REPARSE_TAG_MOUNT_POINT,
    IO_REPARSE_TAG_SYMLINK,
    ReparseError,
    decode_reparse,
    encode_reparse,
    reparse_tag,
)
from wincontainers.layerfile.validate import REPARSE_EXTENSION

__all__ = ["TransportWriter", "BaseLayerWriter", "PendingWork", "read_tree", "WCIDIRS", "ZERO_TIMES"]

WCIDIRS = ".$wcidirs$"
ZERO_TIMES: Times = (None, None, None, None)


@attrs.define
class PendingWork:
    """What is applied to the new layer after ImportLayer."""

    hardlinks: list[tuple[str, str]] = attrs.field(factory=list)  # (name, target)
    tombstones: list[str] = attrs.field(factory=list)
    directory_times: list[tuple[str, Times]] = attrs.field(factory=list)
    has_utility_vm: bool = False


def _metadata_streams(writer: BackupWriter, entry: LayerEntry) -> None:
    """SECURITY, EA and REPARSE streams, in the order BackupWrite wants them."""
    from wincontainers.layerfile.ea import encode_eas

    if entry.security is not None:
        writer.security(entry.security)
    if entry.xattrs:
        writer.eas(encode_eas(sorted(entry.xattrs.items())))
    if entry.kind in (EntryKind.SYMLINK, EntryKind.JUNCTION):
        writer.reparse(encode_reparse(entry.link_target or "", junction=entry.kind is EntryKind.JUNCTION))
    elif REPARSE_EXTENSION in entry.pax_extra:
        writer.reparse(base64.b64decode(entry.pax_extra[REPARSE_EXTENSION]))


def _times(entry: LayerEntry) -> Times:
    # Tars from other tools may lack creation/access/change times: use the write time.
    write = entry.last_write_time
    return (
        entry.creation_time if entry.creation_time is not None else write,
        entry.last_access_time if entry.last_access_time is not None else write,
        write,
        entry.change_time if entry.change_time is not None else write,
    )


def _attributes(entry: LayerEntry) -> int:
    attrs_ = entry.effective_attributes
    if entry.kind in (EntryKind.SYMLINK, EntryKind.JUNCTION):
        attrs_ |= FileAttributes.REPARSE_POINT
    return int(attrs_)


class TransportWriter:
    """Entries of a diff layer -> vmcompute's import folder (``staging``); UtilityVM content goes
    straight into the destination layer (``layer``), as hcsshim writes it."""

    def __init__(self, staging: LayerFolder, layer: Optional[LayerFolder] = None) -> None:
        self.staging = staging
        self.layer = layer
        self.pending = PendingWork()
        self._open: Optional[tuple[str, IO[bytes], BackupWriter, Times]] = None

    def _finish_open(self) -> None:
        if self._open is not None:
            rel, handle, _writer, times = self._open
            handle.close()
            self.staging.set_times(rel, times)
            self._open = None

    def add(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        name = entry.name
        kind = entry.kind
        if kind is EntryKind.STREAM:
            if self._open is None or self._open[0] not in (entry.stream_owner, entry.stream_owner + WCIDIRS):
                raise ValueError(f"{name}: stream without its file")
            assert data is not None
            self._open[2].alternate(entry.stream_name, entry.size, data)
            return
        self._finish_open()
        if name.startswith("UtilityVM"):
            self._utility_vm(entry, data)
            return
        if kind is EntryKind.WHITEOUT:
            self.pending.tombstones.append(entry.whiteout_target)
            return
        if kind is EntryKind.HARDLINK:
            self.pending.hardlinks.append((name, entry.link_target or ""))
            return
        if name == "Hives" or name.startswith("Hives/"):
            if kind is EntryKind.DIRECTORY:
                self.staging.mkdir(name)
                self.staging.set_times(name, _times(entry))
            elif kind is EntryKind.FILE:
                assert data is not None
                with self.staging.open_write(name) as out:
                    _copy(data, out, entry.size)
                self.staging.set_times(name, _times(entry))
            return
        directory = kind is EntryKind.DIRECTORY or entry.is_directory_link
        rel = name + WCIDIRS if directory else name
        if directory:
            self.staging.mkdir(name)
            self.pending.directory_times.append((name, _times(entry)))
        handle = self.staging.open_write(rel)
        handle.write(struct.pack("<I", _attributes(entry)))
        writer = BackupWriter(handle)
        _metadata_streams(writer, entry)
        if kind is EntryKind.FILE:
            assert data is not None
            writer.data(entry.size, data)
        self._open = (rel, handle, writer, _times(entry))

    def _utility_vm(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        if self.layer is None:
            raise ValueError("UtilityVM content needs the destination layer")
        self.pending.has_utility_vm = True
        _write_in_place(self.layer, entry, data, self.pending)

    def close(self) -> PendingWork:
        self._finish_open()
        return self.pending


def _copy(src: Readable, dst: IO[bytes], size: int) -> None:
    remaining = size
    while remaining:
        chunk = src.read(min(1 << 20, remaining))
        if not chunk:
            raise ValueError("entry data ended early")
        dst.write(chunk)
        remaining -= len(chunk)


def _write_in_place(folder: LayerFolder, entry: LayerEntry, data: Optional[Readable], pending: PendingWork) -> None:
    """One entry into a layer folder with BackupWrite (base layers, UtilityVM)."""
    kind = entry.kind
    if kind is EntryKind.HARDLINK:
        pending.hardlinks.append((entry.name, entry.link_target or ""))
        return
    if kind is EntryKind.WHITEOUT:
        pending.tombstones.append(entry.whiteout_target)
        return
    directory = kind is EntryKind.DIRECTORY or entry.is_directory_link
    head = io.BytesIO()
    writer = BackupWriter(head)
    _metadata_streams(writer, entry)
    stream: IO[bytes] = head
    if kind is EntryKind.FILE:
        head.write(struct.pack("<IIqI", StreamId.DATA, 0, entry.size, 0))
        assert data is not None
        stream = cast(IO[bytes], _Chain(head.getvalue(), data, entry.size))
    else:
        head.seek(0)
    folder.write_entry(entry.name, directory=directory, attributes=_attributes(entry), stream=stream,
                       times=_times(entry))
    if directory:
        pending.directory_times.append((entry.name, _times(entry)))


class _Chain(io.RawIOBase):
    """``head`` bytes, then exactly ``size`` bytes of ``data``."""

    def __init__(self, head: bytes, data: Readable, size: int) -> None:
        super().__init__()
        self.head = head
        self.data = data
        self.remaining = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: object) -> int:
        view = memoryview(b)  # type: ignore[arg-type]
        if not len(view):
            return 0
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        if self.remaining <= 0:
            return 0
        chunk = self.data.read(min(len(view), self.remaining))
        if not chunk:
            raise ValueError("entry data ended early")
        view[: len(chunk)] = chunk
        self.remaining -= len(chunk)
        return len(chunk)


class BaseLayerWriter:
    """Entries of a base layer, written in place into the layer folder."""

    def __init__(self, layer: LayerFolder) -> None:
        self.layer = layer
        self.pending = PendingWork()
        self._last_file: Optional[str] = None

    def add(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        if entry.kind is EntryKind.STREAM:
            if self._last_file != entry.stream_owner:
                raise ValueError(f"{entry.name}: stream without its file")
            assert data is not None
            self.layer.write_stream(entry.stream_owner, entry.stream_name, entry.size, data)
            return
        self._last_file = entry.name
        if entry.name.startswith("UtilityVM"):
            self.pending.has_utility_vm = True
        _write_in_place(self.layer, entry, data, self.pending)

    def close(self) -> PendingWork:
        return self.pending


# -- reading ---------------------------------------------------------------------------------------


def _entries_from_backup(
    name: str, attributes: int, times: Times, stream: IO[bytes], directory: bool,
) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """The main entry (with its data) and its alternate data streams, from one backup stream."""
    from wincontainers.layerfile.ea import decode_eas

    creation, access, write, change = times
    entry = LayerEntry(name, EntryKind.DIRECTORY if directory else EntryKind.FILE, attributes=attributes,
                       creation_time=creation, last_access_time=access, last_write_time=write, change_time=change)
    main_done = False
    for header, body in BackupReader(stream):
        if header.id == StreamId.SECURITY_DATA:
            entry.security = body.read()
        elif header.id == StreamId.EA_DATA:
            entry.xattrs = dict(decode_eas(body.read()))
        elif header.id == StreamId.REPARSE_DATA:
            raw = body.read()
            tag = reparse_tag(raw)
            if tag in (IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_MOUNT_POINT):
                try:
                    point = decode_reparse(raw)
                except ReparseError:
                    entry.pax_extra[REPARSE_EXTENSION] = base64.b64encode(raw).decode("ascii")
                else:
                    entry.kind = EntryKind.JUNCTION if point.junction else EntryKind.SYMLINK
                    entry.link_target = point.target
            else:  # a reparse point tars cannot carry: keep it whole, for the caller to decide
                entry.kind = EntryKind.FILE
                entry.pax_extra[REPARSE_EXTENSION] = base64.b64encode(raw).decode("ascii")
        elif header.id == StreamId.DATA and not directory and not main_done:
            entry.size = header.size
            main_done = True
            yield entry, body  # type: ignore[misc]
        elif header.id == StreamId.ALTERNATE_DATA:
            if not main_done:
                main_done = True
                yield entry, io.BytesIO(b"") if entry.kind is EntryKind.FILE else None
            stream_name = header.name[1:] if header.name.startswith(":") else header.name
            if stream_name.endswith(":$DATA"):
                stream_name = stream_name[: -len(":$DATA")]
            ads = LayerEntry(f"{name}:{stream_name}", EntryKind.STREAM, size=header.size,
                             last_access_time=access, last_write_time=write, change_time=change)
            yield ads, body  # type: ignore[misc]
    if not main_done:
        yield entry, io.BytesIO(b"") if entry.kind is EntryKind.FILE else None


def read_tree(folder: LayerFolder, *, transport: bool) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """Entries of an export folder (``transport=True``) or of a base layer folder, in tar order:
    Files (whiteouts after their directory), then Hives (transport) or UtilityVM (base)."""
    tombstones = _tombstones(folder) if transport else []
    by_parent: dict[str, list[str]] = {}
    for path in tombstones:
        by_parent.setdefault(path.rpartition("/")[0].lower(), []).append(path)
    emitted: set[str] = set()
    first_names: dict[tuple[int, int], str] = {}

    def whiteouts(directory: str) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
        for path in sorted(by_parent.get(directory.lower(), [])):
            head, _, base = path.rpartition("/")
            emitted.add(path)
            yield LayerEntry(f"{head}/.wh.{base}", EntryKind.WHITEOUT), None

    def walk(rel: str) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
        is_dir = folder.is_dir(rel)
        if transport:
            meta_rel = rel + WCIDIRS if is_dir else rel
            if folder.exists(meta_rel):
                times = folder.get_times(meta_rel)
                with folder.open_read(meta_rel) as f:
                    (attributes,) = struct.unpack("<I", f.read(4) or b"\0\0\0\0")
                    yield from _with_hardlinks(folder, rel, is_dir, first_names, transport,
                                               _entries_from_backup(rel, attributes, times, f, is_dir))
            else:
                yield LayerEntry(rel, EntryKind.DIRECTORY, attributes=int(FileAttributes.DIRECTORY),
                                 ), None
        else:
            read = folder.read_entry(rel)
            try:
                yield from _with_hardlinks(folder, rel, is_dir, first_names, transport,
                                           _entries_from_backup(rel, read.attributes, read.times, read.stream,
                                                                read.directory))
            finally:
                read.stream.close()
        if is_dir:
            yield from whiteouts(rel)
            for child in folder.listdir(rel):
                if transport and child.endswith(WCIDIRS):
                    continue
                yield from walk(f"{rel}/{child}")

    if folder.exists("Files"):
        yield from walk("Files")
    for path in sorted(set(tombstones) - emitted):  # deletions whose directory did not change
        head, _, base = path.rpartition("/")
        yield LayerEntry(f"{head}/.wh.{base}", EntryKind.WHITEOUT), None
    if transport and folder.exists("Hives"):
        c, a, w, ch = folder.get_times("Hives")
        yield LayerEntry("Hives", EntryKind.DIRECTORY, attributes=int(FileAttributes.DIRECTORY), creation_time=c,
                         last_access_time=a, last_write_time=w, change_time=ch), None
        for name in folder.listdir("Hives"):
            rel = f"Hives/{name}"
            with folder.open_read(rel) as f:
                data = f.read()
            c, a, w, ch = folder.get_times(rel)
            yield LayerEntry(rel, EntryKind.FILE, size=len(data), attributes=int(FileAttributes.ARCHIVE),
                             creation_time=c, last_access_time=a, last_write_time=w, change_time=ch), io.BytesIO(data)
    if not transport and folder.exists("UtilityVM/Files"):
        read = folder.read_entry("UtilityVM")
        try:
            yield from _entries_from_backup("UtilityVM", read.attributes, read.times, read.stream, True)
        finally:
            read.stream.close()
        yield from walk("UtilityVM/Files")


def _with_hardlinks(
    folder: LayerFolder, rel: str, is_dir: bool, first_names: dict[tuple[int, int], str], transport: bool,
    entries: Iterator[tuple[LayerEntry, Optional[IO[bytes]]]],
) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """The second and later names of a multiply-linked file become hard link entries."""
    if not is_dir:
        file_id, links = folder.file_id(rel)
        if links > 1:
            first = first_names.get(file_id)
            if first is not None:
                for entry, _data in entries:
                    if entry.kind is EntryKind.STREAM:
                        continue
                    yield LayerEntry(rel, EntryKind.HARDLINK, attributes=entry.attributes, link_target=first,
                                     creation_time=entry.creation_time, last_access_time=entry.last_access_time,
                                     last_write_time=entry.last_write_time, change_time=entry.change_time), None
                return
            first_names[file_id] = rel
    yield from entries


def _tombstones(folder: LayerFolder) -> list[str]:
    if not folder.exists("tombstones.txt"):
        return []
    with folder.open_read("tombstones.txt") as f:
        text = f.read().decode("utf-8-sig", "surrogatepass")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "Version 1.0":
        raise ValueError("tombstones.txt does not start with 'Version 1.0'")
    return ["Files/" + line.strip().lstrip("\\").replace("\\", "/") for line in lines[1:] if line.strip()]

