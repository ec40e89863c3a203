"""Tar entries <-> layer folders, as hcsshim's layer writers and readers do.

- :class:`TransportWriter` writes a diff layer's entries into vmcompute's import folder (the
  legacy transport format: ``Files\\<path>`` = 4-byte attributes + Win32 backup stream,
  ``<dir>.$wcidirs$`` for directories, ``Hives\\`` raw). Hard links, deletions and directory
  times are applied after ImportLayer (:class:`PendingWork`), as hcsshim does: vmcompute never
  sees a tombstones.txt from a tar (CVE-2018-8115). UtilityVM content goes elsewhere
  (:mod:`wincontainers.layers.utility_vm`).
- :class:`BaseLayerWriter` writes a base layer's entries straight into the layer folder with
  backup semantics (then ProcessBaseImage makes its hives).
- :func:`read_tree` turns an export folder (or a base layer folder) back into entries, in a
  fixed order, so exporting the same layer twice gives the same tar.
"""

from __future__ import annotations

import base64
import io
import shutil
import struct
from typing import IO, Iterator, Optional, Sequence, cast

import attrs

from wincontainers._native import win32
from wincontainers._native.layerfs import RECYCLE_BIN, EntryWriter, LayerFolder, Times, copy_chunks
from wincontainers.layerfile.attributes import FileAttributes
from wincontainers.layerfile.backup import (
    HEADER,
    BackupError,
    BackupReader,
    BackupWriter,
    Readable,
    StreamId,
    read_up_to,
    streams_in,
)
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

__all__ = ["TransportWriter", "BaseLayerWriter", "PendingWork", "read_tree", "entries_of", "WCIDIRS", "ZERO_TIMES"]

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


#: a transport file up to this size is written with one WriteFile (nearly every file of a layer)
_GATHER = 1 << 16
_ATTRIBUTES = struct.Struct("<I")  # a transport file's prefix


def _whole_stream(entry: LayerEntry, data: Optional[Readable]) -> Optional[bytes]:
    """The backup stream of a plain entry built whole: a folder, or a file of at most
    ``_GATHER`` bytes, with no EAs or reparse data (its security stream, then its data stream).
    These are the bytes BackupWriter writes piece by piece, which cost a layer of small files
    more than the files; None for any other entry."""
    kind = entry.kind
    if entry.xattrs or REPARSE_EXTENSION in entry.pax_extra:
        return None
    if kind is EntryKind.FILE and entry.size <= _GATHER:
        assert data is not None
        body = read_up_to(data, entry.size)
        if len(body) < entry.size:
            raise BackupError(f"{entry.name}: its data ended {entry.size - len(body)} bytes early")
        tail = HEADER.pack(StreamId.DATA, 0, entry.size, 0) + body
    elif kind is EntryKind.DIRECTORY:
        tail = b""
    else:
        return None
    security = entry.security
    return tail if security is None else HEADER.pack(StreamId.SECURITY_DATA, 0, len(security), 0) + security + tail


def _entry_streams(writer: BackupWriter, entry: LayerEntry, data: Optional[Readable]) -> None:
    """An entry's backup streams: a plain entry's built whole (``_whole_stream``), any other's
    one by one (metadata, then a file's data)."""
    whole = _whole_stream(entry, data)
    if whole is not None:
        writer.encoded(whole)
        return
    _metadata_streams(writer, entry)
    if entry.kind is EntryKind.FILE:
        assert data is not None
        writer.data(entry.size, data)


class _Gathered:
    """The bytes of one transport file, gathered so that a small file is one WriteFile; a large
    file's data goes straight through, in the pieces it is read in."""

    __slots__ = ("raw", "pending")

    def __init__(self, raw: win32.Win32File) -> None:
        self.raw = raw
        self.pending = bytearray()

    def write(self, data: bytes) -> int:
        if len(self.pending) + len(data) <= _GATHER:
            self.pending += data
            return len(data)
        self.flush()
        if len(data) < _GATHER:
            self.pending += data
        else:
            self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        if self.pending:
            self.raw.write(self.pending)
            self.pending.clear()


class TransportWriter:
    """Entries of a diff layer -> vmcompute's import folder (``staging``), as hcsshim's legacy
    layer writer lays it out. Names the tar adds are remembered: a hard link names one of them,
    or a file of a parent layer."""

    def __init__(self, staging: LayerFolder) -> None:
        self.staging = staging
        self.pending = PendingWork()
        self.added: set[str] = set()
        self._open: Optional[tuple[str, win32.Win32File, _Gathered, BackupWriter, Times]] = None

    def _finish_open(self) -> None:
        if self._open is not None:
            _rel, raw, buffered, _writer, times = self._open
            self._open = None
            try:
                buffered.flush()
                # The transport file carries the entry's times; its attributes are the prefix.
                raw.set_basic_info(times, 0)
            finally:
                raw.close()

    def add(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        name = entry.name
        kind = entry.kind
        if kind is EntryKind.STREAM:
            if self._open is None or self._open[0] not in (entry.stream_owner, entry.stream_owner + WCIDIRS):
                raise ValueError(f"{name}: stream without its file")
            assert data is not None
            self._open[3].alternate(entry.stream_name, entry.size, data)
            return
        self._finish_open()
        if name.startswith("UtilityVM"):
            raise ValueError(f"{name}: UtilityVM content belongs to a base layer")
        if kind is EntryKind.WHITEOUT:
            self.pending.tombstones.append(entry.whiteout_target)
            return
        if kind is EntryKind.HARDLINK:
            self.pending.hardlinks.append((name, entry.link_target or ""))
            self.added.add(name.lower())
            return
        if name == "Hives" or name.startswith("Hives/"):
            if kind is EntryKind.DIRECTORY:
                # As hcsshim's writer: the folder, and ``<folder>.$wcidirs$`` that carries its
                # times (ImportLayer reads folder metadata from there, not from the folder).
                self.staging.mkdir(name)
                with self.staging.create_file(name + WCIDIRS, security=False) as marker:
                    marker.set_basic_info(_times(entry), 0)
            elif kind is EntryKind.FILE:
                assert data is not None
                with self.staging.create_file(name, security=False) as out:
                    for chunk in copy_chunks(data, entry.size):
                        out.write(chunk)
                    out.set_basic_info(_times(entry), 0)
            return
        self.added.add(name.lower())
        directory = kind is EntryKind.DIRECTORY or entry.is_directory_link
        rel = name + WCIDIRS if directory else name
        if directory:
            self.staging.mkdir(name)
            self.pending.directory_times.append((name, _times(entry)))
        raw = self.staging.create_file(rel, security=False)  # the SD travels inside the stream
        buffered = _Gathered(raw)
        buffered.write(_ATTRIBUTES.pack(_attributes(entry)))
        writer = BackupWriter(buffered)  # type: ignore[arg-type]
        _entry_streams(writer, entry, data)
        self._open = (rel, raw, buffered, writer, _times(entry))

    def close(self, parents: Sequence[LayerFolder] = ()) -> PendingWork:
        """Finish the import folder. A deletion needs its folder in the layer (vmcompute keeps
        deletions only in the folders a layer holds, which ImportLayer fills with placeholders
        for what stays): a folder the tar left out is added with its parent layer's metadata."""
        self._finish_open()
        for target in self.pending.tombstones:
            parts = target.split("/")
            for depth in range(1, len(parts)):
                rel = "/".join(parts[:depth])
                if rel.lower() in self.added:
                    continue
                source = next((p for p in parents if p.is_real_dir(rel)), None)
                if source is None:
                    break  # nothing below has this folder: nothing there to delete
                self._copy_folder(source, rel)
        return self.pending

    def _copy_folder(self, source: LayerFolder, rel: str) -> None:
        read = source.read_entry(rel)
        try:
            self.staging.mkdir(rel)
            with self.staging.create_file(rel + WCIDIRS, security=False) as out:
                out.write(struct.pack("<I", read.attributes))
                shutil.copyfileobj(read.stream, out, 1 << 20)
                out.set_basic_info(read.times, 0)
        finally:
            read.stream.close()
        self.added.add(rel.lower())
        self.pending.directory_times.append((rel, read.times))

    def abort(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None


class BaseLayerWriter:
    """Entries of a base layer, written in place into the layer folder with BackupWrite. A file
    stays open until the next entry, so its alternate data streams (the tar entries after it)
    go into its own backup stream."""

    def __init__(self, layer: LayerFolder) -> None:
        self.layer = layer
        self.pending = PendingWork()
        self.added: set[str] = set()
        self._current: Optional[tuple[str, EntryWriter, BackupWriter, Times, int]] = None

    def _finish(self) -> None:
        if self._current is not None:
            _name, writer, _backup, times, attributes = self._current
            self._current = None
            writer.finish(times, attributes)

    def flush(self) -> None:
        """Finish the entry being written (its streams are done)."""
        self._finish()

    def add(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        if entry.kind is EntryKind.STREAM:
            if self._current is None or self._current[0] != entry.stream_owner:
                raise ValueError(f"{entry.name}: stream without its file")
            assert data is not None
            self._current[2].alternate(entry.stream_name, entry.size, data)
            return
        self._finish()
        if entry.name.startswith("UtilityVM"):
            self.pending.has_utility_vm = True
        kind = entry.kind
        if kind is EntryKind.WHITEOUT:
            self.pending.tombstones.append(entry.whiteout_target)
            return
        self.added.add(entry.name.lower())
        if kind is EntryKind.HARDLINK:
            self.pending.hardlinks.append((entry.name, entry.link_target or ""))
            return
        directory = kind is EntryKind.DIRECTORY or entry.is_directory_link
        writer = self.layer.begin_entry(entry.name, directory=directory)
        try:
            backup = BackupWriter(writer)  # type: ignore[arg-type]
            _entry_streams(backup, entry, data)
        except BaseException:
            writer.abort()
            raise
        self._current = (entry.name, writer, backup, _times(entry), _attributes(entry))
        if directory:
            self.pending.directory_times.append((entry.name, _times(entry)))

    def close(self) -> PendingWork:
        self._finish()
        return self.pending

    def abort(self) -> None:
        if self._current is not None:
            self._current[1].abort()
            self._current = None


# -- reading ---------------------------------------------------------------------------------------


def _entries_from_backup(
    name: str, attributes: int, times: Times, stream: "IO[bytes] | bytes | memoryview", directory: bool,
) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """The main entry (with its data) and its alternate data streams, from one backup stream
    (read from a file, or held whole)."""
    from wincontainers.layerfile.ea import decode_eas

    creation, access, write, change = times
    entry = LayerEntry(name, EntryKind.DIRECTORY if directory else EntryKind.FILE, attributes=attributes,
                       creation_time=creation, last_access_time=access, last_write_time=write, change_time=change)
    main_done = False
    streams = streams_in(stream) if isinstance(stream, (bytes, memoryview)) else BackupReader(stream)
    for header, body in streams:
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


def read_tree(folder: LayerFolder, *, transport: bool, consume: bool = False, start: str = "Files",
              ) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """Entries of an export folder (``transport=True``) or of a base layer folder, in tar order:
    Files (whiteouts after their directory), then Hives (transport) or UtilityVM (base).
    ``consume`` (an export folder only): each transport file is deleted as it is read.

    A folder that is a reparse point (a junction such as ``Documents and Settings``) is one
    entry: the walk never goes through it. ``Files/$Recycle.Bin`` is left out, as hcsshim does.
    ``start``: another folder (or file) of a tree that is no layer (a container's volume, for
    ``docker cp``): only it and what is below it.
    """
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

    def walk(rel: str, info: Optional[win32.FindData]) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
        attributes = info.attributes if info is not None else folder.attributes(rel)
        if attributes is None:
            return
        is_dir = bool(attributes & win32.FILE_ATTRIBUTE_DIRECTORY)
        is_link = bool(attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT)
        if transport:
            yield from _transport_entry(folder, rel, is_dir, first_names, consume)
        else:
            read = folder.read_entry(rel)
            try:
                yield from _with_hardlinks(rel, read.directory, read.file_id, read.links, first_names,
                                           _entries_from_backup(rel, read.attributes, read.times, read.stream,
                                                                read.directory))
            finally:
                read.stream.close()
        if is_dir and not is_link:
            yield from whiteouts(rel)
            for child in folder.entries(rel):
                if transport and child.name.endswith(WCIDIRS):
                    continue
                path = f"{rel}/{child.name}"
                if path.lower() == RECYCLE_BIN.lower():
                    continue
                yield from walk(path, child)

    yield from walk(start, None)
    if start != "Files":
        return
    for path in sorted(set(tombstones) - emitted):  # deletions whose directory did not change
        head, _, base = path.rpartition("/")
        yield LayerEntry(f"{head}/.wh.{base}", EntryKind.WHITEOUT), None
    if transport and folder.exists("Hives"):
        # As hcsshim's reader: the Hives folder takes System_Delta's times (its own depend on
        # when the import ran), and outside Files creation and access times are the write time.
        hives = []
        for name in folder.listdir("Hives"):
            with folder.open_read(f"Hives/{name}") as f:
                hives.append((name, f.basic_info().times, f.read()))
        times = next((t for n, t, _d in hives if n.lower() == "system_delta"), None) or folder.get_times("Hives")
        w, ch = times[2], times[3]
        yield LayerEntry("Hives", EntryKind.DIRECTORY, attributes=int(FileAttributes.DIRECTORY), creation_time=w,
                         last_access_time=w, last_write_time=w, change_time=ch), None
        for name, (_c, _a, w, ch), data in hives:
            yield LayerEntry(f"Hives/{name}", EntryKind.FILE, size=len(data), attributes=int(FileAttributes.ARCHIVE),
                             creation_time=w, last_access_time=w, last_write_time=w, change_time=ch), io.BytesIO(data)
    if not transport and folder.exists("UtilityVM/Files"):
        read = folder.read_entry("UtilityVM")
        try:
            yield from _entries_from_backup("UtilityVM", read.attributes, read.times, read.stream, True)
        finally:
            read.stream.close()
        yield from walk("UtilityVM/Files", None)


def entries_of(folder: LayerFolder, rel: str, *, recurse: bool = False,
               first_names: Optional[dict[tuple[int, int], str]] = None,
               ) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """``rel`` of a layer folder as tar entries (its streams after it; a second name of a file
    in ``first_names`` as a hard link to the first), and with ``recurse`` what is below it
    (never through a reparse point)."""
    names = {} if first_names is None else first_names
    read = folder.read_entry(rel)
    try:
        yield from _with_hardlinks(rel, read.directory, read.file_id, read.links, names,
                                   _entries_from_backup(rel, read.attributes, read.times, read.stream, read.directory))
    finally:
        read.stream.close()
    if recurse and read.directory and not read.attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT:
        for child in folder.entries(rel):
            yield from entries_of(folder, f"{rel}/{child.name}", recurse=True, first_names=names)


def _transport_entry(folder: LayerFolder, rel: str, is_dir: bool, first_names: dict[tuple[int, int], str],
                     consume: bool) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """One entry of an export folder: ``Files\\x`` (or ``x.$wcidirs$`` for a folder) holds the
    attributes and the backup stream; the transport file's own times are the entry's."""
    try:
        f = folder.open_read(rel + WCIDIRS if is_dir else rel, consume=consume)
    except win32.PathNotFound:
        if is_dir:  # a folder vmcompute wrote no metadata for
            yield LayerEntry(rel, EntryKind.DIRECTORY, attributes=int(FileAttributes.DIRECTORY)), None
            return
        raise
    with f:
        times = f.basic_info().times
        size, links, _directory = f.standard_info()
        links = 1 if is_dir else links
        # The id matters for a file of several names, and for every file once one was seen (a
        # consumed first name leaves its twin with one link): most layers never ask.
        file_id = f.file_id() if not is_dir and (links > 1 or first_names) else (0, 0)
        stream: "IO[bytes] | memoryview"
        if size <= _READ_WHOLE:  # most are small: one read, and the streams found by offset
            whole = memoryview(_read_exactly(f, size))
            head, stream = bytes(whole[:4]), whole[4:]
        else:
            stream = cast(IO[bytes], io.BufferedReader(f, 1 << 16))  # a large read skips the buffer
            head = stream.read(4)
        (attributes,) = _ATTRIBUTES.unpack(head.ljust(4, b"\0"))
        yield from _with_hardlinks(rel, is_dir, file_id, links, first_names,
                                   _entries_from_backup(rel, attributes, times, stream, is_dir))


#: transport files up to this size are read whole (larger ones are streamed)
_READ_WHOLE = 1 << 20


def _read_exactly(f: "io.RawIOBase", size: int) -> bytes:
    """``size`` bytes of ``f`` (fewer when it ends first), read into one buffer."""
    buf = bytearray(size)
    view = memoryview(buf)
    done = 0
    while done < size:
        n = f.readinto(view[done:])
        if not n:
            break
        done += n
    return bytes(view[:done]) if done < size else bytes(buf)


def _with_hardlinks(
    rel: str, is_dir: bool, file_id: tuple[int, int], links: int, first_names: dict[tuple[int, int], str],
    entries: Iterator[tuple[LayerEntry, Optional[IO[bytes]]]],
) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """The second and later names of a multiply-linked file become hard link entries (a name
    already read may be gone, when the folder is consumed: its file keeps its id)."""
    first = first_names.get(file_id) if not is_dir and file_id != (0, 0) else None
    if first is not None:
        for entry, _data in entries:
            if entry.kind is EntryKind.STREAM:
                continue
            yield LayerEntry(rel, EntryKind.HARDLINK, attributes=entry.attributes, link_target=first,
                             creation_time=entry.creation_time, last_access_time=entry.last_access_time,
                             last_write_time=entry.last_write_time, change_time=entry.change_time), None
        return
    if not is_dir and links > 1:
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
