"""Layer folders -> tar entries: an export folder (vmcompute's transport format) or a layer
folder read in place, in a fixed order (names sorted as NTFS sorts them), so exporting the same
layer twice gives the same tar; hard links found by file id. The way in is
:mod:`wincontainers.layers.transcode`.
"""

from __future__ import annotations

import base64
import io
from typing import IO, Iterator, Optional, cast

from wincontainers._native import win32
from wincontainers._native.layerfs import RECYCLE_BIN, LayerFolder, Times
from wincontainers.layerfile.attributes import FileAttributes
from wincontainers.layerfile.backup import BackupReader, StreamId, streams_in
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layerfile.reparse import (
    IO_REPARSE_TAG_MOUNT_POINT,
    IO_REPARSE_TAG_SYMLINK,
    ReparseError,
    decode_reparse,
    reparse_tag,
)
from wincontainers.layerfile.validate import REPARSE_EXTENSION
from wincontainers.layers.transcode import TRANSPORT_PREFIX, WCIDIRS

__all__ = ["read_tree", "entries_of"]


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
            run = _Run()
            for child in folder.entries(rel):
                if transport and child.name.endswith(WCIDIRS):
                    continue
                path = f"{rel}/{child.name}"
                if path.lower() == RECYCLE_BIN.lower():
                    continue
                if transport and not child.attributes & _NOT_PLAIN and child.size <= _READ_WHOLE:
                    if not run.fits(child.size):
                        yield from read_run(run)
                    run.add(path, child.size)
                    continue
                yield from read_run(run)
                yield from walk(path, child)
            yield from read_run(run)

    def read_run(run: _Run) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
        """The transport files of a run of a folder's plain files, read in one batch."""
        if not run.paths:
            return
        paths = run.take()
        for path, read in zip(paths, folder.read_whole(paths, consume=consume, limit=_READ_WHOLE)):
            if read is None:  # it grew since the folder was listed: streamed
                yield from _transport_entry(folder, path, False, first_names, consume)
                continue
            times, links, file_id, data = read
            whole = memoryview(data)
            (attributes,) = TRANSPORT_PREFIX.unpack(bytes(whole[:4]).ljust(4, b"\0"))
            yield from _with_hardlinks(path, False, file_id, links, first_names,
                                       _entries_from_backup(path, attributes, times, whole[4:], False))

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
        (attributes,) = TRANSPORT_PREFIX.unpack(head.ljust(4, b"\0"))
        yield from _with_hardlinks(rel, is_dir, file_id, links, first_names,
                                   _entries_from_backup(rel, attributes, times, stream, is_dir))


#: transport files up to this size are read whole (larger ones are streamed)
_READ_WHOLE = 1 << 20
#: a folder's plain files read in one batch: at most this many, of at most this many bytes
_RUN_FILES = 64
_RUN_BYTES = 1 << 20
_NOT_PLAIN = win32.FILE_ATTRIBUTE_DIRECTORY | win32.FILE_ATTRIBUTE_REPARSE_POINT


class _Run:
    """The paths of a run of plain transport files, to be read in one batch. Why batches: an
    export of small files is mostly per-file calls and tar encoding; a run of the calls, then a
    run of the encoding, keeps each one's working set in the CPU's caches (as the writers'
    batches do)."""

    __slots__ = ("paths", "size")

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.size = 0

    def fits(self, size: int) -> bool:
        return not self.paths or (len(self.paths) < _RUN_FILES and self.size + size <= _RUN_BYTES)

    def add(self, path: str, size: int) -> None:
        self.paths.append(path)
        self.size += size

    def take(self) -> list[str]:
        paths = self.paths
        self.paths = []
        self.size = 0
        return paths


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
