"""A diff layer's utility VM: imported as a clone of its parent's plus the tar's changes, and
exported as those changes again.

Windows cannot stack utility VM images: a layer that changes ``UtilityVM/Files`` holds a whole
one. As hcsshim's legacy writer does, the first ``UtilityVM`` entry of a diff tar clones the
parent's ``UtilityVM\\Files`` (hard links; folders, reparse points and the BCD files that
ProcessUtilityImage rewrites are copied), then the tar's entries replace what they name (a file
is never written through a link into the parent) and its deletions remove from the clone (what
they delete must be there). vmcompute's ImportLayer does not see any of it: the clone is made in
a staging folder of its own and moved into the new layer after ImportLayer, then
ProcessUtilityImage prepares it.

Export gives back what differs from the parent's utility VM: files that are not the parent's
(another file id), folders that are new or whose metadata changed, the folders on the way to
them, and deletions of what the parent has and the layer has not.
"""

from __future__ import annotations

from typing import IO, Iterator, Optional, Sequence

from wincontainers import errors
from wincontainers._native import win32
from wincontainers._native.layerfs import LayerFolder, Times
from wincontainers.layerfile.backup import Readable
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layers.folder_entries import entries_of
from wincontainers.layers.transcode import BaseLayerWriter, PendingWork

__all__ = ["UtilityVmWriter", "utility_vm_changes", "parent_utility_vm", "UVM", "UVM_FILES"]

UVM = "UtilityVM"
UVM_FILES = "UtilityVM/Files"
#: what ProcessUtilityImage rewrites: copied, never linked, so the parent's stay as they are
MUTATED = {f"{UVM_FILES}/EFI/Microsoft/Boot/{name}".lower() for name in ("BCD", "BCD.LOG", "BCD.LOG1", "BCD.LOG2")}


def parent_utility_vm(parents: Sequence[LayerFolder]) -> Optional[LayerFolder]:
    """The nearest parent layer with a utility VM (each layer that changes one holds it whole)."""
    return next((p for p in parents if p.is_real_dir(UVM_FILES)), None)


class UtilityVmWriter:
    """The ``UtilityVM`` entries of a diff tar, written into ``staging`` (a folder of its own
    that becomes the layer's ``UtilityVM``'s parent), over a clone of ``parent``'s."""

    def __init__(self, staging: LayerFolder, parent: Optional[LayerFolder], layer_name: str) -> None:
        self.staging = staging
        self.parent = parent
        self.layer_name = layer_name
        self.base = BaseLayerWriter(staging)
        self.cloned = False
        self._dir_times: list[tuple[str, Times]] = []

    def add(self, entry: LayerEntry, data: Optional[Readable]) -> None:
        name = entry.name
        if entry.kind is not EntryKind.STREAM:
            self.base.flush()
        if not self.cloned and entry.kind is not EntryKind.STREAM:
            if name != UVM:
                raise errors.BadInput(f"{name}: a layer's utility VM starts with its UtilityVM folder entry")
            self.base.add(entry, data)
            self.base.flush()
            self._clone()
            self.cloned = True
            return
        kind = entry.kind
        if kind is EntryKind.WHITEOUT:
            target = entry.whiteout_target
            if not self.staging.exists(target):
                raise errors.BadInput(f"{name}: deletes {target}, which the parent's utility VM does not have")
            self.staging.remove(target)
            return
        if kind is EntryKind.STREAM:
            self.base.add(entry, data)
            return
        existing = self.staging.attributes(name)
        if existing is not None:
            directory = kind is EntryKind.DIRECTORY and not entry.is_directory_link
            same_kind = directory and existing & (win32.FILE_ATTRIBUTE_DIRECTORY | win32.FILE_ATTRIBUTE_REPARSE_POINT) \
                == win32.FILE_ATTRIBUTE_DIRECTORY
            if not same_kind:  # a file (maybe a link into the parent) or a folder of another kind
                self.staging.remove(name)
        self.base.add(entry, data)

    def _clone(self) -> None:
        """``UtilityVM/Files`` of the parent, into the staging folder (hcsshim's cloneTree)."""
        if self.parent is None:
            raise errors.NotSupported(
                "import", subject=errors.subject_for("layer", self.layer_name),
                message="the layer changes a utility VM, but no parent layer has one",
                hint="import it over the layers it was made on (their base has the UtilityVM)")
        parent = self.parent

        def clone(rel: str) -> None:
            read = parent.read_entry(rel)
            try:
                is_link = bool(read.attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT)
                if read.directory or is_link or rel.lower() in MUTATED:
                    self.staging.write_entry(rel, directory=read.directory, attributes=read.attributes,
                                             stream=read.stream, times=read.times)
                    if read.directory and not is_link:
                        self._dir_times.append((rel, read.times))
                else:
                    self.staging.api.create_hard_link(self.staging.path(rel), parent.path(rel))
            finally:
                read.stream.close()
            if read.directory and not is_link:
                for child in parent.entries(rel):
                    clone(f"{rel}/{child.name}")

        clone(UVM_FILES)

    def close(self) -> PendingWork:
        """Finish the entries; the tar's hard links are made here (within the clone), then the
        folders get their times back."""
        pending = self.base.close()
        for name, target in pending.hardlinks:
            self.staging.hardlink(name, self.staging, target)
        for name, times in [*reversed(self._dir_times), *reversed(pending.directory_times)]:  # the tar's win
            if self.staging.exists(name):
                self.staging.set_times(name, times)
        return pending

    def abort(self) -> None:
        self.base.abort()


def utility_vm_changes(layer: LayerFolder, parent: Optional[LayerFolder]
                       ) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """The entries of ``layer``'s utility VM that differ from ``parent``'s (see the module)."""
    if not layer.is_real_dir(UVM_FILES):
        return
    if parent is None:  # nothing to compare with: all of it
        yield from entries_of(layer, UVM)
        yield from entries_of(layer, UVM_FILES, recurse=True)
        return
    unchanged: dict[tuple[int, int], str] = {}  # files that are the parent's: a new name of one is a link
    wanted: set[str] = set()
    whiteouts: dict[str, list[str]] = {}

    def visit(rel: str) -> bool:
        """Decide what under ``rel`` is exported; whether anything is (so its folder is too)."""
        assert parent is not None
        here = layer.attributes(rel)
        there = parent.attributes(rel)
        assert here is not None
        changed = False
        is_dir = bool(here & win32.FILE_ATTRIBUTE_DIRECTORY) and not here & win32.FILE_ATTRIBUTE_REPARSE_POINT
        if there is None or (there & (win32.FILE_ATTRIBUTE_DIRECTORY | win32.FILE_ATTRIBUTE_REPARSE_POINT)) != (
                here & (win32.FILE_ATTRIBUTE_DIRECTORY | win32.FILE_ATTRIBUTE_REPARSE_POINT)):
            changed = True
        elif is_dir or here & win32.FILE_ATTRIBUTE_REPARSE_POINT or rel.lower() in MUTATED:  # copies: compared
            changed = _metadata(layer, rel) != _metadata(parent, rel)
        else:
            mine = _file_id(layer, rel)
            changed = mine != _file_id(parent, rel)
            if not changed:
                unchanged.setdefault(mine, rel)
        if is_dir:
            names = {e.name.lower(): e.name for e in layer.entries(rel)}
            for child in names.values():
                changed = visit(f"{rel}/{child}") or changed
            if there is not None and there & win32.FILE_ATTRIBUTE_DIRECTORY:
                gone = [e.name for e in parent.entries(rel) if e.name.lower() not in names]
                if gone:
                    whiteouts[rel] = gone
                    changed = True
        if changed:
            wanted.add(rel)
        return changed

    if not visit(UVM_FILES):
        return
    yield from entries_of(layer, UVM)
    first_names = dict(unchanged)

    def emit(rel: str) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
        yield from entries_of(layer, rel, first_names=first_names)
        for gone in sorted(whiteouts.get(rel, [])):
            yield LayerEntry(f"{rel}/.wh.{gone}", EntryKind.WHITEOUT), None
        attributes = layer.attributes(rel) or 0
        if attributes & win32.FILE_ATTRIBUTE_DIRECTORY and not attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT:
            for child in layer.entries(rel):
                path = f"{rel}/{child.name}"
                if path in wanted:
                    yield from emit(path)

    yield from emit(UVM_FILES)


def _file_id(folder: LayerFolder, rel: str) -> tuple[int, int]:
    with folder.api.open_for_backup(folder.path(rel), win32.FILE_READ_ATTRIBUTES, share=win32.FILE_SHARE_ALL) as f:
        return f.file_id()


def _metadata(folder: LayerFolder, rel: str) -> tuple[int, Times, bytes]:
    """What a folder (or link) carries: attributes, times, its backup stream (SD, EAs, reparse)."""
    read = folder.read_entry(rel)
    try:
        return read.attributes, read.times, read.stream.read()
    finally:
        read.stream.close()
