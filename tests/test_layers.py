"""Layers on every simulator profile: tar -> import -> export -> tar keeps everything.

A random tree (attributes, security descriptors, times, extended attributes, alternate data
streams, hard links, symlinks, junctions, whiteouts, unicode names with lone surrogates) is
imported over a base layer and exported again; both tars must hold the same entries with the
same metadata, and a second export must give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wincontainers import Host, errors
from wincontainers.layerfile import EntryKind, LayerEntry, LayerReader, LayerWriter, check_layer
from wincontainers.layerfile.security import SecurityDescriptor
from wincontainers.layers import ExportRefused, LayerRejected
from wincontainers.sim.control import SimulatedHost
from tests.hostile_layers import blog_layer, corpus

Entry = tuple[LayerEntry, Optional[bytes]]

# 1980-01-01 .. 2100-01-01 as FILETIME ticks
TIMES = st.integers(119_600_064_000_000_000, 157_469_184_000_000_000)
SDS = [None] + [SecurityDescriptor.from_sddl(s).to_bytes() for s in (
    "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)",
    "O:SYG:SYD:(A;;FA;;;SY)",
    "O:BUG:BU",
    "O:S-1-5-21-1-2-3-1001G:S-1-5-21-1-2-3-513D:AI(D;;WD;;;WD)(A;ID;FR;;;WD)",
)]
# Letters, digits, punctuation Windows allows, accents, CJK, an emoji (a surrogate pair in
# UTF-16) and lone surrogates (legal in NTFS names; carried as WTF-8).
ALPHABET = list("abcdefXYZ019 -_.+=,;[]{}~!@#$%&'()") + ["é", "ß", "Ω", "日本", "😀", "\ud800", "\udfff", "\udbff"]
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def windows_name(name: str) -> str:
    """The name as NTFS stores it: UTF-16 units (a high surrogate then a low one is one character)."""
    return name.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _valid(name: str) -> bool:
    stem = name.split(".")[0].strip().lower()
    return (name not in (".", "..") and not name.endswith((".", " ")) and not name.startswith(".wh.")
            and stem not in RESERVED and not name.startswith(" "))


NAMES = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=12).map("".join).map(windows_name).filter(_valid)
FILE_ATTRS = st.sampled_from([0x20, 0x21, 0x22, 0x24, 0x80, 0x2020, 0x26])
DIR_ATTRS = st.sampled_from([0x10, 0x12, 0x14, 0x11, 0x2010])
EAS = st.dictionaries(st.sampled_from(["K1", "USER.DATA", "$LXUID"]), st.binary(min_size=1, max_size=20), max_size=2)
BASE_FILES = ["Files/old.txt", "Files/Old Dir", "Files/keep.txt"]


@st.composite
def trees(draw: Callable[..., Any]) -> list[Entry]:
    """A diff layer over the base of :func:`base_layer`, in tar order (parents first)."""
    def times() -> dict[str, int]:
        c, a, w, ch = (draw(TIMES) for _ in range(4))
        return dict(creation_time=c, last_access_time=a, last_write_time=w, change_time=ch)

    entries: list[Entry] = [(LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **times()), None)]
    dirs = ["Files"]
    files: list[LayerEntry] = []
    used = {"files"}
    for _ in range(draw(st.integers(1, 14))):
        parent = draw(st.sampled_from(dirs))
        name = draw(NAMES)
        path = f"{parent}/{name}"
        if path.lower() in used or path.upper().lower() in used:
            continue
        used.add(path.lower())
        kind = draw(st.sampled_from(["dir", "file", "file", "file", "symlink", "dirlink", "junction", "hardlink"]))
        common: dict[str, Any] = dict(security=draw(st.sampled_from(SDS)), xattrs=draw(EAS), **times())
        if kind == "dir":
            entries.append((LayerEntry(path, EntryKind.DIRECTORY, attributes=draw(DIR_ATTRS), **common), None))
            dirs.append(path)
        elif kind == "file" or (kind == "hardlink" and not files):
            data = draw(st.binary(max_size=2000))
            entry = LayerEntry(path, EntryKind.FILE, size=len(data), attributes=draw(FILE_ATTRS), **common)
            entries.append((entry, data))
            files.append(entry)
            for stream in draw(st.lists(NAMES, max_size=2, unique_by=str.lower)):
                body = draw(st.binary(max_size=300))
                entries.append((LayerEntry(f"{path}:{stream}", EntryKind.STREAM, size=len(body),
                                           last_access_time=entry.last_access_time,
                                           last_write_time=entry.last_write_time,
                                           change_time=entry.change_time), body))
        elif kind == "hardlink":
            target = draw(st.sampled_from(files))
            entries.append((LayerEntry(path, EntryKind.HARDLINK, attributes=target.attributes,
                                       link_target=target.name, creation_time=target.creation_time,
                                       last_access_time=target.last_access_time,
                                       last_write_time=target.last_write_time, change_time=target.change_time), None))
        else:
            target = draw(st.sampled_from(["target.txt", "sub\\file.dll", "C:\\ProgramData"]))
            if kind == "junction":
                entry = LayerEntry(path, EntryKind.JUNCTION, attributes=0x410, link_target="C:\\ProgramData", **common)
            else:
                entry = LayerEntry(path, EntryKind.SYMLINK, attributes=0x410 if kind == "dirlink" else 0x420,
                                   link_target=target, **common)
            entries.append((entry, None))
    for gone in draw(st.lists(st.sampled_from(BASE_FILES[:2]), unique=True)):
        head, _, base = gone.rpartition("/")
        entries.append((LayerEntry(f"{head}/.wh.{base}", EntryKind.WHITEOUT), None))
    entries.append((LayerEntry("Hives", EntryKind.DIRECTORY, attributes=0x10, **times()), None))
    for hive in ("DefaultUser_Delta", "Sam_Delta", "Security_Delta", "Software_Delta", "System_Delta"):
        data = b"regf" + draw(st.binary(max_size=64))
        entries.append((LayerEntry(f"Hives/{hive}", EntryKind.FILE, size=len(data), attributes=0x20, **times()),
                        data))
    return entries


def tar_of(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    with LayerWriter(out) as writer:
        for entry, data in entries:
            writer.add(entry, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def base_layer() -> bytes:
    d = dict(creation_time=130_000_000_000_000_000, last_access_time=130_000_000_000_000_000,
             last_write_time=130_000_000_000_000_000, change_time=130_000_000_000_000_000)
    return tar_of([
        (LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("Files/keep.txt", EntryKind.FILE, size=4, attributes=0x20, **d), b"keep"),
        (LayerEntry("Files/old.txt", EntryKind.FILE, size=3, attributes=0x20, **d), b"old"),
        (LayerEntry("Files/Old Dir", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("Files/Old Dir/inside.txt", EntryKind.FILE, size=1, attributes=0x20, **d), b"i"),
        (LayerEntry("Files/Windows", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("Files/Windows/System32", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("Files/Windows/System32/config", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        *[(LayerEntry(f"Files/Windows/System32/config/{h}", EntryKind.FILE, size=4, attributes=0x20, **d), b"regf")
          for h in ("DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM")],
    ])


def view(tar: bytes) -> dict[str, tuple[Any, ...]]:
    """Every entry by name, hard links resolved to the file they name (which name a tar calls
    the file and which the link depends on the order), plus the groups of linked names."""
    entries: dict[str, tuple[LayerEntry, bytes]] = {}
    for entry, data in LayerReader(io.BytesIO(tar)):
        entries[entry.name] = (entry, data.read() if data is not None else b"")
    groups: dict[str, set[str]] = {}
    for name, (entry, _) in entries.items():
        if entry.kind is EntryKind.HARDLINK:
            assert entry.link_target is not None
            group = groups.setdefault(entry.link_target, {entry.link_target})
            group.add(name)
            groups[name] = group
    out: dict[str, tuple[Any, ...]] = {}
    for name, (entry, data) in entries.items():
        if entry.kind is EntryKind.STREAM:
            continue  # compared as part of their file, whichever of its names carries them
        source, source_data = entries[entry.link_target] if entry.kind is EntryKind.HARDLINK else (entry, data)  # type: ignore[index]
        names = groups.get(name, {name})
        kind = EntryKind.FILE if entry.kind is EntryKind.HARDLINK else entry.kind
        streams = sorted((e.stream_name, d) for e, d in entries.values()
                         if e.kind is EntryKind.STREAM and e.stream_owner in names)
        stream_times = {e.times[1:] for e, _ in entries.values()
                        if e.kind is EntryKind.STREAM and e.stream_owner in names}
        out[name] = (kind, source_data, source.effective_attributes, source.times, source.security, source.xattrs,
                     source.link_target if kind is not EntryKind.FILE else None, streams, frozenset(names),
                     stream_times)
    return out


def _diff(want: dict[str, tuple[Any, ...]], got: dict[str, tuple[Any, ...]]) -> list[str]:
    problems = [f"missing {n!r}" for n in want if n not in got] + [f"extra {n!r}" for n in got if n not in want]
    fields = ("kind", "data", "attributes", "times", "security", "xattrs", "link", "streams", "links",
              "stream times")
    for name in want.keys() & got.keys():
        for field, a, b in zip(fields, want[name], got[name]):
            if a != b:
                problems.append(f"{name!r}: {field} {a!r} != {b!r}")
    return problems


def layers_left(host: Host) -> list[str]:
    return sorted(p.name for p in host.layers_root.iterdir())


def listing(root: Path) -> list[tuple[str, int]]:
    """Everything under ``root`` (names and sizes), to prove an operation wrote nothing."""
    out = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if name == "daemon.log" or "sock" in name:
                continue
            out.append((os.path.relpath(path, root), os.lstat(path).st_size if name in files else -1))
    return sorted(out)


# -- the round trip ---------------------------------------------------------------------------


def test_random_trees_survive_import_and_export(host: Host) -> None:
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    try:
        @settings(max_examples=int(os.environ.get("WC_LAYER_EXAMPLES", "30")), deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(tree=trees())
        def round_trip(tree: list[Entry]) -> None:
            tar = tar_of(tree)
            report = check_layer(io.BytesIO(tar), parents=[base.path])
            assert report.ok, report.summary()
            layer = host.layers.import_tar(io.BytesIO(tar), parents=[base])
            try:
                first, second = io.BytesIO(), io.BytesIO()
                result = host.layers.export_tar(layer, first)
                host.layers.export_tar(layer, second)
                assert first.getvalue() == second.getvalue(), "two exports of one layer differ"
                assert result.diff_id == "sha256:" + hashlib.sha256(first.getvalue()).hexdigest()
                problems = _diff(view(tar), view(first.getvalue()))
                assert not problems, "\n".join(problems)
            finally:
                host.layers.destroy(layer)

        round_trip()
    finally:
        host.layers.destroy(base)
    assert layers_left(host) == []
