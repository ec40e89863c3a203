"""A container's file system from the host: copy in and out (``docker cp``), the changes
(``docker diff``) and a flattened export (``docker export``, which Docker does not offer for
Windows containers).

Copies go through the container's mounted volume (the sandbox's ``\\\\?\\Volume{...}\\``, which
shows the merged view of its layers): for a stopped container the volume stays prepared until
it is removed (mounted again if it is not), and a running process-isolated one has it mounted.
They keep Windows metadata and refuse to pass through links (:mod:`wincontainers.layers.treecopy`).
``diff`` reads the sandbox's export, so the container must be stopped, as for ``commit``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterable, Optional, Union

import attrs

from wincontainers import errors
from wincontainers._native.layerfs import LayerFolder
from wincontainers.driver.base import LayerRef
from wincontainers.layerfile import LayerReader, LayerWriter
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layers.collection import LAYER_PRIVILEGES
from wincontainers.layers.treecopy import CopyResult, read_subtree, split_path, write_entries
from wincontainers.records import ContainerRecord

if TYPE_CHECKING:
    from wincontainers.host import Host

__all__ = ["ContainerFiles", "Change", "CopyResult"]

Destination = Union[str, "os.PathLike[str]", IO[bytes]]


@attrs.frozen
class Change:
    """One line of ``diff``: ``kind`` is ``A`` (added), ``C`` (changed) or ``D`` (deleted)."""

    kind: str
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


class ContainerFiles:
    """``container.files``: the container's file system, reached from the host."""

    def __init__(self, host: "Host", record: ContainerRecord, status: str) -> None:
        self.host = host
        self.record = record
        self.status = status

    def _volume(self, task: str) -> str:
        self.host.win32.require_privileges(*LAYER_PRIVILEGES, task=task)
        driver = self.host.driver
        sandbox = self.record.sandbox
        mounted = driver.layer_mount_path(sandbox)
        if mounted:
            return mounted
        if self.status in ("running", "paused"):
            if self.record.isolation == "hyperv":  # as Docker, which refuses them too
                raise errors.InvalidState("copy", subject=f"container {self.record.name}",
                                          message="a running Hyper-V container's files are in its utility VM",
                                          hint="stop it, then copy (or copy from inside with exec)")
            raise errors.InvalidState("copy", subject=f"container {self.record.name}",
                                      message="its volume is not mounted", hint="stop it, then copy")
        parents = [LayerRef(driver.name_to_guid(Path(p).name), p) for p in self.record.layers]
        return self.host.layers.mount(sandbox, parents)

    def copy_from(self, src: str, dest: Destination) -> CopyResult:
        """Copy ``src`` (a path in the container, ``C:\\\\app``) to ``dest``: a host path (into it
        when it is an existing folder, else as that name, Docker's rule), or a binary stream that
        receives a Windows layer tar of it."""
        parent, name = split_path(src)
        volume = self._volume(f"copying {src} out of container {self.record.name}")
        entries = read_subtree(self.host.win32, volume, f"{parent}/{name}" if parent else name)
        if not isinstance(dest, (str, os.PathLike)):
            with LayerWriter(dest) as writer:
                return _to_tar(writer, entries)
        target = Path(dest)
        if target.is_dir():
            return write_entries(self.host.win32, str(target), "", entries)
        if not target.parent.is_dir():
            raise errors.BadInput(f"{target.parent} does not exist: the copy's destination folder must")
        return write_entries(self.host.win32, str(target.parent), "", entries, root_name=target.name)

    def copy_to(self, src: Destination, dest: str) -> CopyResult:
        """Copy ``src`` (a host file or folder, or a binary stream of a tar, whose entries are
        extracted into the folder ``dest``) to ``dest`` in the container (into it when it is an
        existing folder, else as that name)."""
        parent, name = split_path(dest)
        volume = self._volume(f"copying into container {self.record.name}")
        folder = LayerFolder(self.host.win32, volume)
        rel = f"{parent}/{name}" if parent else name
        if not isinstance(src, (str, os.PathLike)):
            with LayerReader(src) as reader:
                return write_entries(self.host.win32, volume, rel, reader)
        source = Path(src)
        entries = read_subtree(self.host.win32, str(source.parent), source.name)
        if not rel or folder.is_dir(rel):
            return write_entries(self.host.win32, volume, rel, entries)
        return write_entries(self.host.win32, volume, parent, entries, root_name=name)

    def diff(self) -> list[Change]:
        """What changed in the container since it was created: its sandbox's export, each path
        added (not in its image), changed (in its image too) or deleted."""
        if self.status in ("running", "paused"):
            raise errors.InvalidState("diff", subject=f"container {self.record.name}", message="it is running",
                                      hint="stop it first: Windows exports a sandbox only when it is not in use")
        parents = [LayerFolder(self.host.win32, p) for p in self.record.layers]
        out: list[Change] = []
        with tempfile.TemporaryDirectory(prefix="wincontainers-diff-") as work:
            tar = Path(work) / "changes.tar"
            self.host.layers.export_tar(self.record.id, tar, unsupported_reparse="keep")
            with LayerReader(tar) as reader:
                for entry, _data in reader:
                    if entry.kind is EntryKind.STREAM or not entry.name.startswith("Files/"):
                        continue
                    if entry.kind is EntryKind.WHITEOUT:
                        out.append(Change("D", _windows(entry.whiteout_target)))
                        continue
                    known = any(p.attributes(entry.name) is not None for p in parents)
                    out.append(Change("C" if known else "A", _windows(entry.name)))
        return out

    def export(self, dest: Destination) -> CopyResult:
        """The container's whole file system (its image and its changes) as one tar, with
        Windows metadata: to a path or a binary stream."""
        volume = self._volume(f"exporting container {self.record.name}")
        folder = LayerFolder(self.host.win32, volume)
        children = sorted((e.name for e in folder.entries("")
                           if e.name.lower() not in ("system volume information", "$recycle.bin")), key=str.lower)
        with LayerWriter(dest) as writer:
            return _to_tar(writer, (item for name in children
                                    for item in read_subtree(self.host.win32, volume, name)))


def _to_tar(writer: LayerWriter, entries: Iterable[tuple[LayerEntry, Optional[IO[bytes]]]]) -> CopyResult:
    """Entries into a tar; what was written, counted as a folder copy counts it."""
    count = size = 0
    for entry, data in entries:
        writer.add(entry, data)
        count += entry.kind is not EntryKind.STREAM
        size += entry.size if entry.kind is EntryKind.FILE else 0
    return CopyResult(count, size)


def _windows(name: str) -> str:
    """``Files/a/b`` as the container sees it: ``C:\\\\a\\\\b``."""
    return "C:\\" + name[len("Files/"):].replace("/", "\\")

