"""Tar entries <-> layer folders, as hcsshim's layer writers and readers do.

- :class:`TransportWriter` writes a diff layer's entries into vmcompute's import folder (the
  legacy transport format: ``Files\\<path>`` = 4-byte attributes + Win32 backup stream,
  ``<dir>.$wcidirs$`` for directories, ``Hives\\`` raw). Hard links, deletions and directory
  times are applied after ImportLayer (:class:`PendingWork`), as hcsshim does: vmcompute never
  sees a tombstones.txt from a tar (CVE-2018-8115). UtilityVM content goes elsewhere
  (:mod:`wincontainers.layers.utility_vm`).
- :class:`BaseLayerWriter` writes a base layer's entries straight into the layer folder with
  backup semantics (then ProcessBaseImage makes its hives).

The way back, folders to entries, is :mod:`wincontainers.layers.folder_entries`.
"""

from __future__ import annotations

import base64
import shutil
import struct
from typing import Optional, Sequence

import attrs

from wincontainers._native import win32
from wincontainers._native.layerfs import EntryWriter, LayerFolder, Times, WholeEntry, copy_chunks
from wincontainers.layerfile.attributes import FileAttributes
from wincontainers.layerfile.backup import HEADER, BackupError, BackupWriter, Readable, StreamId, read_up_to
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layerfile.reparse import encode_reparse
from wincontainers.layerfile.validate import REPARSE_EXTENSION

__all__ = ["TransportWriter", "BaseLayerWriter", "PendingWork", "WCIDIRS", "TRANSPORT_PREFIX", "ZERO_TIMES"]

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
TRANSPORT_PREFIX = struct.Struct("<I")  # a transport file's prefix: the entry's attributes


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
    """The backup streams of an entry that is not plain (``_whole_stream`` gave None), one by
    one: metadata, then a file's data."""
    _metadata_streams(writer, entry)
    if entry.kind is EntryKind.FILE:
        assert data is not None
        writer.data(entry.size, data)


#: plain entries held for one batch of :meth:`LayerFolder.write_whole`, by count and by bytes
_BATCH_ENTRIES = 64
_BATCH_BYTES = 1 << 20


class _WholeBatch:
    """Plain entries (``_whole_stream``) held back, then written together by
    :meth:`LayerFolder.write_whole`. Why: a layer of small files costs mostly per-entry work,
    and done one entry at a time, each file system call left the CPU's caches cold for the tar
    parsing after it; in batches of 64 files, both run warm (a base import of 50,000 small files
    took about 20% less time). At most ``_BATCH_ENTRIES`` entries or ``_BATCH_BYTES`` bytes wait."""

    __slots__ = ("folder", "backup_stream", "entries", "size")

    def __init__(self, folder: LayerFolder, *, backup_stream: bool) -> None:
        self.folder = folder
        self.backup_stream = backup_stream
        self.entries: list[WholeEntry] = []
        self.size = 0

    def add(self, entry: WholeEntry) -> None:
        """Hold ``entry``; a full batch is written first, so the newest entry is always held
        (a stream of it may follow)."""
        if len(self.entries) >= _BATCH_ENTRIES or self.size >= _BATCH_BYTES:
            self.flush()
        self.entries.append(entry)
        self.size += len(entry[2])

    def take_last(self, rel: str) -> Optional[WholeEntry]:
        """The last entry held, taken back if it is ``rel``'s (a stream of it follows)."""
        if self.entries and self.entries[-1][0] == rel:
            self.size -= len(self.entries[-1][2])
            return self.entries.pop()
        return None

    def flush(self) -> None:
        if self.entries:
            entries = self.entries
            self.clear()
            self.folder.write_whole(entries, backup_stream=self.backup_stream)

    def clear(self) -> None:
        self.entries = []
        self.size = 0


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
        self._batch = _WholeBatch(staging, backup_stream=False)
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

    def _reopen(self, owner: str) -> None:
        """The last transport file of the batch is ``owner``'s and a stream of it follows: the
        rest of the batch is written, and ``owner``'s file opened as the one being written."""
        last = self._batch.take_last(owner) or self._batch.take_last(owner + WCIDIRS)
        if last is None:
            return
        self._batch.flush()
        rel, _folder, data, times, _attributes = last
        raw = self.staging.create_file(rel, security=False)
        buffered = _Gathered(raw)
        buffered.write(data[:TRANSPORT_PREFIX.size])
        writer = BackupWriter(buffered)  # type: ignore[arg-type]
        writer.encoded(data[TRANSPORT_PREFIX.size:])
        self._open = (rel, raw, buffered, writer, times)

    def add(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        name = entry.name
        kind = entry.kind
        if kind is EntryKind.STREAM:
            if self._open is None:
                self._reopen(entry.stream_owner)
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
            self._batch.flush()
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
        times = _times(entry)
        if directory:
            self.staging.mkdir(name)
            self.pending.directory_times.append((name, times))
        whole = _whole_stream(entry, data)
        if whole is not None:
            self._batch.add((rel, False, TRANSPORT_PREFIX.pack(_attributes(entry)) + whole, times, 0))
            return
        self._batch.flush()
        raw = self.staging.create_file(rel, security=False)  # the SD travels inside the stream
        buffered = _Gathered(raw)
        buffered.write(TRANSPORT_PREFIX.pack(_attributes(entry)))
        writer = BackupWriter(buffered)  # type: ignore[arg-type]
        _entry_streams(writer, entry, data)
        self._open = (rel, raw, buffered, writer, times)

    def close(self, parents: Sequence[LayerFolder] = ()) -> PendingWork:
        """Finish the import folder. A deletion needs its folder in the layer (vmcompute keeps
        deletions only in the folders a layer holds, which ImportLayer fills with placeholders
        for what stays): a folder the tar left out is added with its parent layer's metadata."""
        self._finish_open()
        self._batch.flush()
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
        self._batch.clear()
        if self._open is not None:
            self._open[1].close()
            self._open = None


class BaseLayerWriter:
    """Entries of a base layer, written in place into the layer folder with BackupWrite. A plain
    entry (``_whole_stream``) waits in a :class:`_WholeBatch`; any other is written through an
    :class:`EntryWriter` and stays open until the next entry, so its alternate data streams (the
    tar entries after it) go into its own backup stream."""

    def __init__(self, layer: LayerFolder) -> None:
        self.layer = layer
        self.pending = PendingWork()
        self.added: set[str] = set()
        self._batch = _WholeBatch(layer, backup_stream=True)
        self._current: Optional[tuple[str, EntryWriter, BackupWriter, Times, int]] = None

    def _finish(self) -> None:
        if self._current is not None:
            _name, writer, _backup, times, attributes = self._current
            self._current = None
            writer.finish(times, attributes)

    def flush(self) -> None:
        """Write every entry added so far (their streams are done)."""
        self._finish()
        self._batch.flush()

    def _reopen(self, owner: str) -> None:
        """The last entry of the batch is ``owner`` and a stream of it follows: the rest of the
        batch is written, and ``owner`` opened as an entry being written."""
        last = self._batch.take_last(owner)
        if last is None:
            return
        self._batch.flush()
        name, folder, data, times, attributes = last
        writer = self.layer.begin_entry(name, directory=folder)
        try:
            backup = BackupWriter(writer)  # type: ignore[arg-type]
            backup.encoded(data)
        except BaseException:
            writer.abort()
            raise
        self._current = (name, writer, backup, times, attributes)

    def add(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        if entry.kind is EntryKind.STREAM:
            if self._current is None:
                self._reopen(entry.stream_owner)
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
        times = _times(entry)
        if directory:
            self.pending.directory_times.append((entry.name, times))
        whole = _whole_stream(entry, data)
        if whole is not None:
            if directory:
                self.layer.mkdir(entry.name)
            self._batch.add((entry.name, directory, whole, times, _attributes(entry) or win32.FILE_ATTRIBUTE_NORMAL))
            return
        self._batch.flush()
        writer = self.layer.begin_entry(entry.name, directory=directory)
        try:
            backup = BackupWriter(writer)  # type: ignore[arg-type]
            _entry_streams(backup, entry, data)
        except BaseException:
            writer.abort()
            raise
        self._current = (entry.name, writer, backup, times, _attributes(entry))

    def close(self) -> PendingWork:
        self.flush()
        return self.pending

    def abort(self) -> None:
        self._batch.clear()
        if self._current is not None:
            self._current[1].abort()
            self._current = None
