"""Layer folders with Windows file semantics: one implementation, on kernel32.

Importing and exporting layers needs what plain file I/O cannot do: BackupWrite and BackupRead
(security descriptors, EAs, reparse data, alternate streams), the four FILETIMEs, hard links,
file ids, deletion of read-only files and junctions, and paths longer than MAX_PATH. A
:class:`LayerFolder` does these through :class:`~wincontainers._native.win32.Win32` (System32 on
Windows, the simulated host's kernel32 elsewhere), relative to one folder, with ``\\\\?\\``
paths. Relative paths use ``/``; names are Windows names (lone UTF-16 surrogates included).

Rules kept here, each one a way real hosts broke naive code:

- nothing follows a reparse point: entries are opened with ``FILE_FLAG_OPEN_REPARSE_POINT``,
  and walks do not enter a folder that is a junction or symbolic link (base images hold
  junctions such as ``Documents and Settings`` -> ``C:\\Users``);
- a deletion opens the entry with DELETE and backup intent, clears the read-only attribute when
  that is what refused it, and retries; a folder is emptied first, a junction removed as itself;
- a hard link replaces whatever ImportLayer left at its name (a placeholder for a parent's file).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import IO, Any, Iterable, Optional, Sequence, Union

import attrs

from wincontainers._native import win32
from wincontainers._native.win32 import (
    FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_READONLY,
    FILE_ATTRIBUTE_REPARSE_POINT,
    FindData,
    Win32,
    Win32File,
)

__all__ = ["LayerFolder", "EntryRead", "EntryWriter", "Times", "WholeEntry", "remove_tree", "copy_chunks", "RECYCLE_BIN"]

Times = tuple[Optional[int], Optional[int], Optional[int], Optional[int]]  # creation, access, write, change
#: one entry for :meth:`LayerFolder.write_whole`: (relative path, is a folder, its bytes, times, attributes)
WholeEntry = tuple[str, bool, bytes, Times, int]

#: Never part of a layer (hcsshim skips it: names there may not even convert).
RECYCLE_BIN = "Files/$Recycle.Bin"

_READ = win32.GENERIC_READ | win32.ACCESS_SYSTEM_SECURITY
_WRITE = (win32.GENERIC_WRITE | win32.WRITE_DAC | win32.WRITE_OWNER | win32.ACCESS_SYSTEM_SECURITY
          | win32.FILE_READ_ATTRIBUTES | win32.FILE_WRITE_ATTRIBUTES)
_WRITE_DATA = win32.GENERIC_WRITE | win32.FILE_READ_ATTRIBUTES | win32.FILE_WRITE_ATTRIBUTES
_ATTRS = win32.FILE_READ_ATTRIBUTES | win32.FILE_WRITE_ATTRIBUTES
_DELETE = win32.DELETE | _ATTRS
_SHARE_ALL = win32.FILE_SHARE_ALL


@attrs.frozen
class EntryRead:
    """One file or folder as BackupRead gives it (close ``stream`` when done)."""

    attributes: int
    times: Times
    stream: IO[bytes]
    directory: bool
    file_id: tuple[int, int]
    links: int


class EntryWriter:
    """One entry being written: its backup stream in any number of pieces, then its basic
    information. Alternate data streams go into the same backup stream (an ADS written later
    through ``name:stream`` would be refused for a file its SD protects, and would move its
    times)."""

    def __init__(self, file: Win32File) -> None:
        self.file = file
        self.backup = file.backup_writer(process_security=True)

    def write(self, chunk: Any) -> int:
        return self.backup.write(chunk)

    def finish(self, times: Times, attributes: int) -> None:
        """End the backup stream, set the times and attributes, close."""
        try:
            self.backup.close()
            self.file.set_basic_info(times, attributes or FILE_ATTRIBUTE_NORMAL)
        finally:
            self.file.close()

    def abort(self) -> None:
        try:
            self.backup.close()
        finally:
            self.file.close()


class LayerFolder:
    """A folder tree on the host, read and written with backup semantics."""

    def __init__(self, api: Win32, root: Union[str, "os.PathLike[str]"], *, create: bool = False) -> None:
        self.api = api
        self.root_path = Path(root) if not str(root).startswith("\\\\?\\") else None
        self.root = win32.long_path(root)
        if create:
            api.create_directory(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"<LayerFolder {self.root}>"

    def path(self, rel: str) -> str:
        return win32.join(self.root, rel)

    # -- what is there ------------------------------------------------------------------------

    def attributes(self, rel: str) -> Optional[int]:
        """The attributes of ``rel`` itself (a reparse point is not followed); None if absent."""
        return self.api.attributes(self.path(rel))

    def exists(self, rel: str) -> bool:
        return self.attributes(rel) is not None

    def is_dir(self, rel: str) -> bool:
        attributes = self.attributes(rel)
        return attributes is not None and bool(attributes & FILE_ATTRIBUTE_DIRECTORY)

    def is_file(self, rel: str) -> bool:
        """A file that is not a reparse point (what a hard link may name)."""
        attributes = self.attributes(rel)
        return attributes is not None and not attributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT)

    def is_real_dir(self, rel: str) -> bool:
        """A folder that is not a reparse point (a junction, or ImportLayer's placeholder)."""
        attributes = self.attributes(rel)
        return attributes is not None and attributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT) \
            == FILE_ATTRIBUTE_DIRECTORY

    def entries(self, rel: str) -> list[FindData]:
        """The entries of folder ``rel``, sorted as NTFS sorts names (upper case first)."""
        return sorted(self.api.listdir(self.path(rel)), key=lambda e: (e.name.upper(), e.name))

    def listdir(self, rel: str) -> list[str]:
        return [e.name for e in self.entries(rel)]

    # -- writing --------------------------------------------------------------------------------

    def mkdir(self, rel: str) -> None:
        """Create folder ``rel`` (its parent must exist); one already there is fine."""
        self.api.create_directory(self.path(rel), exist_ok=True)

    def create_file(self, rel: str, *, security: bool = True) -> Win32File:
        """A new file ``rel``, opened to write its data and basic information (and, with
        ``security``, its security descriptor: SACL included, which needs SeSecurityPrivilege)."""
        access = _WRITE if security else _WRITE_DATA
        return self.api.open_for_backup(self.path(rel), access, win32.CREATE_NEW)

    def begin_entry(self, rel: str, *, directory: bool) -> EntryWriter:
        """Create ``rel`` (a folder: also open it) for :class:`EntryWriter`."""
        if directory:
            self.mkdir(rel)
            return EntryWriter(self.api.open_for_backup(self.path(rel), _WRITE))
        return EntryWriter(self.create_file(rel))

    def write_whole(self, entries: Iterable[WholeEntry], *, backup_stream: bool) -> None:
        """Entries whose bytes are all in memory, written in one batch (see
        :meth:`Win32.write_whole_files`): a file is created new, a folder (made before) opened.
        ``backup_stream``: the bytes are a backup stream with its security descriptor, written
        as :meth:`begin_entry` does; otherwise they are the file's data (a transport file)."""
        self.api.write_whole_files(
            [(self.path(rel), win32.OPEN_EXISTING if folder else win32.CREATE_NEW, data, times, attributes)
             for rel, folder, data, times, attributes in entries],
            _WRITE if backup_stream else _WRITE_DATA, backup_stream=backup_stream)

    def write_entry(self, rel: str, *, directory: bool, attributes: int, stream: IO[bytes], times: Times) -> None:
        """Create ``rel`` from a whole backup stream, then set its times and attributes."""
        writer = self.begin_entry(rel, directory=directory)
        try:
            shutil.copyfileobj(stream, writer, 1 << 20)
        except BaseException:
            writer.abort()
            raise
        writer.finish(times, attributes)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Replace (or create) the small file ``rel`` with ``data`` (layerchain.json and such)."""
        with self.api.open_for_backup(self.path(rel), win32.GENERIC_WRITE, win32.CREATE_ALWAYS) as f:
            f.write(data)

    def set_times(self, rel: str, times: Times) -> None:
        with self.api.open_for_backup(self.path(rel), _ATTRS, share=_SHARE_ALL) as f:
            f.set_basic_info(times, 0)

    def hardlink(self, rel: str, target: "LayerFolder", target_rel: str) -> None:
        """``rel`` becomes another name of ``target_rel`` in ``target`` (this tree or a parent
        layer's), replacing what is at ``rel`` now (ImportLayer's placeholder)."""
        self.remove(rel)
        self.api.create_hard_link(self.path(rel), target.path(target_rel))

    def remove(self, rel: str) -> None:
        """Delete ``rel`` (a folder with what it holds; a junction as itself); absent is fine."""
        remove_path(self.api, self.path(rel))

    # -- reading --------------------------------------------------------------------------------

    def open_read(self, rel: str, *, consume: bool = False) -> Win32File:
        """``rel`` for reading; ``consume``: deleted when closed (one call less per file of a
        folder read once, such as ExportLayer's output)."""
        if consume:
            return self.api.open_for_backup(self.path(rel), win32.GENERIC_READ | win32.DELETE,
                                            share=win32.FILE_SHARE_READ | win32.FILE_SHARE_DELETE,
                                            flags=win32.FILE_FLAG_DELETE_ON_CLOSE)
        return self.api.open_for_backup(self.path(rel), win32.GENERIC_READ, share=win32.FILE_SHARE_READ)

    def read_whole(self, rels: Sequence[str], *, consume: bool, limit: int) -> list[Optional[win32.WholeRead]]:
        """Files ``rels`` read whole in one batch (see :meth:`Win32.read_whole_files`); with
        ``consume``, each one is deleted once read. None for a file larger than ``limit``, which
        is left as it is."""
        return self.api.read_whole_files([self.path(rel) for rel in rels], delete=consume, limit=limit)

    def read_entry(self, rel: str) -> EntryRead:
        """``rel`` as BackupRead gives it, with its times, id and link count."""
        f = self.api.open_for_backup(self.path(rel), _READ)
        try:
            info = f.basic_info()
            file_id = f.file_id()
            _size, links, directory = f.standard_info()
            stream = _Owning(f.backup_reader(process_security=True), f)
        except BaseException:
            f.close()
            raise
        return EntryRead(info.attributes, info.times, stream, directory, file_id, links)  # type: ignore[arg-type]

    def get_times(self, rel: str) -> Times:
        with self.api.open_for_backup(self.path(rel), win32.FILE_READ_ATTRIBUTES, share=_SHARE_ALL) as f:
            return f.basic_info().times


class _Owning:
    """A BackupRead stream that closes its file when it is closed (buffered for small reads)."""

    def __init__(self, reader: win32.BackupReader, file: Win32File) -> None:
        self._buffered = io.BufferedReader(reader, 1 << 20)
        self._file = file

    def read(self, n: int = -1) -> bytes:
        return self._buffered.read(n)

    def readinto(self, b: Any) -> int:
        return self._buffered.readinto(b)

    def close(self) -> None:
        try:
            self._buffered.close()
        finally:
            self._file.close()

    def __enter__(self) -> "_Owning":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_path(api: Win32, path: str) -> None:
    """Delete ``path`` as Windows lets a backup operator: without following reparse points, a
    read-only entry after clearing the attribute, a folder after what it holds. Absent is fine."""
    try:
        f = api.open_for_backup(path, _DELETE, share=_SHARE_ALL)
    except win32.PathNotFound:
        return
    with f:
        attributes, _tag = f.attribute_tag()
        if attributes & FILE_ATTRIBUTE_DIRECTORY and not attributes & FILE_ATTRIBUTE_REPARSE_POINT:
            for entry in api.listdir(path):
                _remove_entry(api, win32.join(path, entry.name), entry)
        try:
            f.delete_on_close()
        except win32.AccessDenied:
            if not attributes & FILE_ATTRIBUTE_READONLY:
                raise
            f.set_basic_info(attributes=(attributes & ~FILE_ATTRIBUTE_READONLY) or FILE_ATTRIBUTE_NORMAL)
            f.delete_on_close()


def _remove_entry(api: Win32, path: str, entry: FindData) -> None:
    """One entry of a folder being emptied: the cheap call first, the careful one if refused.

    A file is deleted with backup intent (:meth:`Win32.delete_for_backup`): a layer's files keep
    the security descriptors they came with, which could refuse DeleteFileW."""
    try:
        if not entry.is_dir:
            api.delete_for_backup(path)
            return
        if entry.is_reparse_point:
            api.remove_directory(path)
            return
    except win32.PathNotFound:
        return
    except win32.AccessDenied:
        pass  # read-only, or protected by its SD: open with backup intent below
    remove_path(api, path)


def remove_tree(api: Win32, path: Union[str, "os.PathLike[str]"]) -> None:
    """Remove a folder tree of ours (a staging folder, a layer being discarded) through its
    ``\\\\?\\`` path, so depth is no limit; a leftover is an error, never silently kept."""
    remove_path(api, win32.long_path(path))


def copy_chunks(source: Any, size: int) -> Iterable[bytes]:
    """Exactly ``size`` bytes of ``source`` in pieces; a short source is an error."""
    remaining = size
    while remaining:
        chunk = source.read(min(1 << 20, remaining))
        if not chunk:
            raise ValueError("entry data ended early")
        remaining -= len(chunk)
        yield chunk

