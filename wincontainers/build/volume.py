"""Files into and out of a mounted sandbox volume, for COPY and ADD.

A prepared sandbox's volume is ``\\\\?\\Volume{...}\\`` (GetLayerMountPath): the builder reads and
writes it through kernel32 (:class:`~wincontainers._native.layerfs.LayerFolder`), on Windows and on
the simulated host alike. Writes never go through a link: an existing name is replaced, not
written into (its reparse point is opened as itself), and a folder on the way that is a link
refuses the copy rather than following it out of the volume.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator, Optional

import attrs

from wincontainers import errors
from wincontainers._native import win32
from wincontainers._native.layerfs import LayerFolder
from wincontainers.build.context import ContextSource, open_no_follow
from wincontainers.layerfile.backup import BackupReader, StreamId
from wincontainers.layerfile.reparse import ReparseError, decode_reparse
from wincontainers.layerfile.times import unix_ns_to_filetime

__all__ = ["CopyEntry", "Volume", "context_entries"]


@attrs.frozen
class CopyEntry:
    """One thing a COPY writes: a folder, a file (``open`` gives its data) or a link."""

    target: str  # "/"-separated, relative to the destination
    directory: bool
    open: Optional[Callable[[], IO[bytes]]] = None
    link: Optional[str] = None
    write_time: Optional[int] = None  # FILETIME


def context_entries(sources: list[ContextSource]) -> list[CopyEntry]:
    """The files of the build context (on this machine's disk) as entries to copy."""
    out = []
    for source in sources:
        st = source.path.lstat()
        when = unix_ns_to_filetime(st.st_mtime_ns)
        if stat.S_ISLNK(st.st_mode):
            out.append(CopyEntry(source.target, False, link=os.readlink(source.path), write_time=when))
        elif source.directory:
            out.append(CopyEntry(source.target, True))
        else:
            path = source.path
            out.append(CopyEntry(source.target, False, open=lambda p=path: open_no_follow(p),  # type: ignore[misc]
                                 write_time=when))
    return out


class Volume:
    """A mounted sandbox volume (its ``\\\\?\\Volume{...}\\`` path)."""

    def __init__(self, api: win32.Win32, mount_path: str) -> None:
        if not mount_path:
            raise errors.InvalidState("copy", message="the sandbox has no mounted volume")
        self.folder = LayerFolder(api, mount_path)

    # -- writing ------------------------------------------------------------------------------

    def makedirs(self, rel: PurePosixPath) -> None:
        """Create ``rel`` and its parents; a link on the way refuses it."""
        done = PurePosixPath()
        for part in rel.parts:
            done = done / part
            attributes = self.folder.attributes(str(done))
            if attributes is None:
                self.folder.mkdir(str(done))
            elif attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT:
                raise errors.BadInput(f"C:\\{done} in the image is a link; COPY does not write through links")
            elif not attributes & win32.FILE_ATTRIBUTE_DIRECTORY:
                raise errors.BadInput(f"C:\\{done} in the image is a file, not a folder")

    def write(self, rel: PurePosixPath, entry: CopyEntry) -> None:
        """Write one entry at ``rel`` (replacing a file or link that is there)."""
        if entry.directory:
            self.makedirs(rel)
            return
        self.makedirs(rel.parent)
        name = str(rel)
        existing = self.folder.attributes(name)
        if existing is not None:
            if existing & win32.FILE_ATTRIBUTE_DIRECTORY and not existing & win32.FILE_ATTRIBUTE_REPARSE_POINT:
                raise errors.BadInput(f"C:\\{rel} in the image is a folder; a file cannot replace it")
            self.folder.remove(name)
        if entry.link is not None:
            self.folder.api.create_symbolic_link(self.folder.path(name), entry.link.replace("/", "\\"))
            return
        assert entry.open is not None
        with entry.open() as source, self.folder.create_file(name, security=False) as out:
            shutil.copyfileobj(source, out, 1 << 20)
            if entry.write_time is not None:
                out.set_basic_info((None, entry.write_time, entry.write_time, entry.write_time), 0)

    def write_bytes(self, rel: PurePosixPath, data: bytes) -> None:
        import io

        self.write(rel, CopyEntry(str(rel), False, open=lambda: io.BytesIO(data)))

    def extract(self, archive: Path, into: PurePosixPath) -> None:
        """ADD of a local tar (plain, gzip, bzip2, xz): regular files and folders, nothing outside."""
        self.makedirs(into)
        with open_no_follow(archive) as raw, tarfile.open(fileobj=raw) as tar:
            for member in tar:
                name = member.name.replace("\\", "/")
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if not parts or ".." in parts or name.startswith("/") or (len(parts[0]) >= 2 and parts[0][1] == ":"):
                    raise errors.BadInput(f"ADD {archive.name}: {member.name!r} would land outside the destination")
                target = into.joinpath(*parts)
                if member.isdir():
                    self.makedirs(target)
                elif member.isfile():
                    data = tar.extractfile(member)
                    assert data is not None
                    when = unix_ns_to_filetime(int(member.mtime) * 1_000_000_000)
                    self.write(target, CopyEntry(str(target), False, open=lambda d=data: d, write_time=when))  # type: ignore[misc]
                # links, devices and FIFOs are not carried into Windows layers

    # -- reading (COPY --from) ------------------------------------------------------------------

    def kind(self, rel: PurePosixPath) -> Optional[str]:
        """"dir", "file", or None when ``rel`` does not exist."""
        attributes = self.folder.attributes(str(rel)) if str(rel) != "." else win32.FILE_ATTRIBUTE_DIRECTORY
        if attributes is None:
            return None
        if attributes & win32.FILE_ATTRIBUTE_DIRECTORY and not attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT:
            return "dir"
        return "file"

    def entries(self, rel: PurePosixPath) -> list[CopyEntry]:
        """What copying ``rel`` copies: the file, or a folder's contents (not the folder itself)."""
        if self.kind(rel) != "dir":
            return [self._entry(rel, rel.name, None)]
        return list(self._walk(rel, PurePosixPath()))

    def _walk(self, top: PurePosixPath, prefix: PurePosixPath) -> Iterator[CopyEntry]:
        base = str(top / prefix) if str(prefix) != "." else str(top)
        for child in self.folder.entries("" if base == "." else base):
            rel = prefix / child.name
            if child.is_dir and not child.is_reparse_point:
                yield CopyEntry(str(rel), True)
                yield from self._walk(top, rel)
            else:
                yield self._entry(top / rel, str(rel), child)

    def _entry(self, rel: PurePosixPath, target: str, info: Optional[win32.FindData]) -> CopyEntry:
        name = str(rel)
        if info is None:
            attributes = self.folder.attributes(name) or 0
            write_time = self.folder.get_times(name)[2]
        else:
            attributes, write_time = info.attributes, info.write
        if attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT:
            return CopyEntry(target, False, link=self._link_target(name), write_time=write_time)
        return CopyEntry(target, False, open=lambda: self.folder.open_read(name),  # type: ignore[arg-type,return-value]
                         write_time=write_time)

    def _link_target(self, rel: str) -> str:
        read = self.folder.read_entry(rel)
        try:
            for header, body in BackupReader(read.stream):
                if header.id == StreamId.REPARSE_DATA:
                    try:
                        return decode_reparse(body.read()).target
                    except ReparseError as exc:
                        raise errors.BadInput(f"C:\\{rel} is a link COPY cannot carry: {exc}") from None
        finally:
            read.stream.close()
        raise errors.BadInput(f"C:\\{rel} is a reparse point without reparse data")
