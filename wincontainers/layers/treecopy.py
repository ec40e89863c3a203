"""Copying file trees into and out of a container's volume, with their Windows metadata
(``docker cp``): attributes, times, security descriptors, alternate data streams, hard links,
symbolic links and junctions as themselves.

Entries are the layer tar's (:class:`~wincontainers.layerfile.entry.LayerEntry`), so a tree
read from a folder can be written to a folder or to a tar (the layer codec), and a tar can be
written into a folder, all with the code that imports and exports layers: ``read_tree`` reads
with BackupRead and never follows a reparse point, ``BaseLayerWriter`` writes with BackupWrite.

Every name written is hostile until checked: no absolute or drive path, no ``..``, no UNC
(:func:`~wincontainers.layerfile.names.validate_name`), no deletion entries, hard links only
to names of the same copy, and no folder on the way that is a link, whether the copy made it or
the container did. A junction inside a container to ``C:\\\\Windows`` names the *host's* folder
when the host follows it, so a copy never goes through one.
"""

from __future__ import annotations

from typing import IO, Iterable, Iterator, Optional

import attrs

from wincontainers import errors
from wincontainers._native import win32
from wincontainers._native.layerfs import LayerFolder
from wincontainers.layerfile.backup import Readable
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layerfile.names import validate_name
from wincontainers.layers.collection import link_on_the_way
from wincontainers.layers.folder_entries import read_tree
from wincontainers.layers.transcode import BaseLayerWriter

__all__ = ["Entries", "CopyResult", "read_subtree", "write_entries", "split_path"]

Entries = Iterable[tuple[LayerEntry, Optional[Readable]]]
#: Rules of validate_name that are advice, not danger (a long path is legal with \\?\ paths).
_ADVICE = {"long-path"}


@attrs.frozen
class CopyResult:
    """What a copy wrote: its entries (files, folders, links; streams not counted) and bytes."""

    entries: int
    bytes: int


def split_path(path: str) -> tuple[str, str]:
    """A path inside the container (``C:\\\\app\\\\x``, ``/app/x``, ``app``) as the names of a
    folder tree, ``("app", "x")``-style: ``(parent, name)`` relative to the volume's root."""
    text = path.replace("\\", "/")
    if len(text) >= 2 and text[1] == ":" and text[0].isalpha():
        if text[0].upper() != "C":
            raise errors.BadInput(f"{path!r}: a container has one volume, C:")
        text = text[2:]
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise errors.BadInput(f"{path!r}: '..' is not allowed in a container path")
    problems = [m for rule, m in validate_name("/".join(parts) or "x") if rule not in _ADVICE]
    if problems:
        raise errors.BadInput(f"{path!r}: {problems[0]}")
    return "/".join(parts[:-1]), parts[-1] if parts else ""


def _no_link(folder: LayerFolder, rel: str, what: str) -> None:
    link = link_on_the_way(folder, rel + "/x")  # rel itself counts: entries go below it
    if link is not None:
        raise errors.BadInput(f"{what}: {link.replace('/', chr(92))} is a link (junction or symbolic link); "
                              "a copy never goes through one, since it may lead out of the container")


def read_subtree(api: win32.Win32, root: str, rel: str) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
    """``rel`` and what is below it in the folder tree at ``root``, each entry named from
    ``rel``'s own name down (``app/x``), links as themselves (never followed)."""
    folder = LayerFolder(api, root)
    parent = rel.rpartition("/")[0]
    if parent:
        _no_link(folder, parent, f"reading {rel}")
    if folder.attributes(rel) is None:
        raise errors.NotFound("copy", subject=rel.replace("/", "\\"), message="no such file or folder")
    cut = len(parent) + 1 if parent else 0
    for entry, data in read_tree(folder, transport=False, start=rel):
        entry.name = entry.name[cut:]
        if entry.kind is EntryKind.HARDLINK and entry.link_target:
            entry.link_target = entry.link_target[cut:]
        yield entry, data


def _prefixes(path: str) -> Iterator[str]:
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        yield "/".join(parts[:depth])


def _renamed(name: str, root_name: Optional[str], under: str) -> str:
    if root_name is not None:
        head, sep, rest = name.partition("/")
        if ":" in head and not sep:  # an alternate data stream of the top entry
            head, _, stream = head.partition(":")
            name = f"{root_name}:{stream}"
        else:
            name = root_name + sep + rest
    return f"{under}/{name}" if under else name


def write_entries(api: win32.Win32, root: str, under: str, entries: Entries, *,
                  root_name: Optional[str] = None) -> CopyResult:
    """Write ``entries`` below ``under`` in the folder tree at ``root`` (an existing file of the
    same name is replaced; folders merge), the top entry renamed ``root_name`` when given.
    Checked entry by entry before anything of it is written (see the module's docstring)."""
    folder = LayerFolder(api, root)
    if under:
        _no_link(folder, under, f"copying into {under}")
        if not folder.is_dir(under):
            raise errors.NotFound("copy", subject=under.replace("/", "\\"), message="no such folder")
    writer = BaseLayerWriter(folder)
    count = size = 0
    links: set[str] = set()
    try:
        for entry, data in entries:
            name = _renamed(entry.name, root_name, under)
            problems = [m for rule, m in validate_name(name) if rule not in _ADVICE]
            if problems:
                raise errors.BadInput(f"{entry.name!r}: {problems[0]}")
            if entry.kind is EntryKind.WHITEOUT:
                raise errors.BadInput(f"{entry.name!r}: a copy does not delete (a whiteout entry)")
            if "/" in name:
                head = name.rpartition("/")[0]
                made = next((p for p in _prefixes(head) if p.lower() in links), None)
                if made is not None:  # a link this copy made (it is only complete once the next entry begins)
                    raise errors.BadInput(f"writing {entry.name}: {made.replace('/', chr(92))} is a link this copy "
                                          "made; a copy never goes through one")
                _no_link(folder, head, f"writing {entry.name}")
            if entry.kind in (EntryKind.SYMLINK, EntryKind.JUNCTION) or entry.pax_extra:
                links.add(name.lower())
            if entry.kind is EntryKind.HARDLINK:
                target = _renamed(entry.link_target or "", root_name, under)
                if target.lower() not in writer.added:
                    raise errors.BadInput(f"{entry.name!r}: a hard link to {entry.link_target!r}, which this copy "
                                          "did not write")
                entry.link_target = target
                count += 1
            elif entry.kind is not EntryKind.STREAM:
                if name.lower() in writer.added:
                    writer.flush()  # the entry of that name this copy wrote may still be held back
                existing = folder.attributes(name)
                if existing is not None and not (existing & win32.FILE_ATTRIBUTE_DIRECTORY
                                                 and entry.kind is EntryKind.DIRECTORY):
                    folder.remove(name)  # a file (or link) of that name is replaced, as docker cp does
                count += 1
                size += entry.size if entry.kind is EntryKind.FILE else 0
            entry.name = name
            writer.add(entry, data)
        pending = writer.close()
    except BaseException:
        writer.abort()
        raise
    for name, target in pending.hardlinks:
        folder.hardlink(name, folder, target)
    for name, times in reversed(pending.directory_times):  # children before parents
        if folder.exists(name):
            folder.set_times(name, times)
    return CopyResult(count, size)
