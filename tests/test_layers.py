"""Layers on every simulator profile: tar -> import -> export -> tar keeps everything.

A random tree (attributes, security descriptors, times, extended attributes, alternate data
streams, hard links, symlinks, junctions, whiteouts, unicode names with lone surrogates) is
imported over a base layer and exported again; both tars must hold the same entries with the
same metadata, and a second export must give the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wincontainers import Host, errors
from wincontainers.layerfile import EntryKind, LayerEntry, LayerReader, LayerWriter, check_layer
from wincontainers.layerfile.security import SecurityDescriptor
from wincontainers.layers import ExportRefused, LayerRejected
from wincontainers.layers.checked import CONTAINMENT_RULES
from tests.conftest import SimulatedHost
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


def as_exported(tar: bytes) -> bytes:
    """``tar`` with the times an export gives outside Files (hcsshim's legacy reader): Hives
    takes System_Delta's times, and creation and access times there are the write time."""
    entries = [(e, d.read() if d is not None else None) for e, d in LayerReader(io.BytesIO(tar))]
    delta = next((e for e, _ in entries if e.name.lower() == "hives/system_delta"), None)
    out = []
    for entry, data in entries:
        if entry.name == "Hives" and delta is not None:
            entry = attrs.evolve(entry, creation_time=delta.last_write_time, last_access_time=delta.last_write_time,
                                 last_write_time=delta.last_write_time, change_time=delta.change_time)
        elif entry.name.startswith("Hives/"):
            entry = attrs.evolve(entry, creation_time=entry.last_write_time, last_access_time=entry.last_write_time)
        out.append((entry, data))
    return tar_of(out)


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
        if entry.kind is EntryKind.HARDLINK and entry.link_target not in entries:  # a link into a parent layer
            out[name] = (entry.kind, b"", None, None, None, None, entry.link_target, [], frozenset({name}), set())
            continue
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
            if name == "daemon.log" or "sock" in name or name.endswith((".db", ".db-wal", ".db-shm")):
                continue  # the simulator's own log, socket and metadata store (its pages move on checkpoints)
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
                problems = _diff(view(as_exported(tar)), view(first.getvalue()))
                assert not problems, "\n".join(problems)
            finally:
                host.layers.destroy(layer)

        round_trip()
    finally:
        host.layers.destroy(base)
    assert layers_left(host) == []


@pytest.mark.simulator("the simulator's own files")
def test_many_files_small_and_large_round_trip_and_the_service_keeps_none_open(
        host: Host, sim: SimulatedHost) -> None:
    # Small transport files are read whole, large ones copied by the kernel; both paths, many
    # times, and the simulated service must keep none of them open.
    daemon = int((sim.root / "daemon" / "daemon.pid").read_text().split()[0])
    d = dict(creation_time=131_000_000_000_000_000, last_access_time=131_000_000_000_000_000,
             last_write_time=131_000_000_000_000_000, change_time=131_000_000_000_000_000, security=SDS[1])
    big = os.urandom(200_000)
    entries: list[Entry] = [(LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **d), None),
                            (LayerEntry("Files/many", EntryKind.DIRECTORY, attributes=0x10, **d), None)]
    for i in range(300):
        data = big[: 70_000 + i] if i % 50 == 0 else big[i:i + 1 + i * 13]
        entries.append((LayerEntry(f"Files/many/f{i:03d}.bin", EntryKind.FILE, size=len(data), attributes=0x20,
                                   **d), data))
    plain = {k: v for k, v in d.items() if k != "security"}  # hives travel raw, without a descriptor
    entries.append((LayerEntry("Hives", EntryKind.DIRECTORY, attributes=0x10, **plain), None))
    entries += [(LayerEntry(f"Hives/{h}_Delta", EntryKind.FILE, size=4, attributes=0x20, **plain), b"regf")
                for h in ("DefaultUser", "Sam", "Security", "Software", "System")]
    tar = tar_of(entries)
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    layer = host.layers.import_tar(io.BytesIO(tar), parents=[base])
    out = io.BytesIO()
    host.layers.export_tar(layer, out)
    held = [t for t in (os.readlink(f"/proc/{daemon}/fd/{n}") for n in os.listdir(f"/proc/{daemon}/fd"))
            if "/many/" in t]
    assert not held, held
    problems = _diff(view(as_exported(tar)), view(out.getvalue()))
    assert not problems, "\n".join(problems)
    host.layers.destroy(layer)
    host.layers.destroy(base)


def _batch_boundaries() -> list[Entry]:
    """Runs of plain entries, each ending with an entry followed by a stream of its own, of
    every length around the writers' batch limits (64 entries, or 1 MiB): a stream must find
    its entry whether the entry is held or was just written. Each run starts on an empty batch
    (a stream writes what was held), so the lengths line up with the limits."""
    d = dict(creation_time=131_000_000_000_000_000, last_access_time=131_000_000_000_000_001,
             last_write_time=131_000_000_000_000_002, change_time=131_000_000_000_000_003, security=SDS[1])
    plain = {k: v for k, v in d.items() if k not in ("creation_time", "security")}
    entries: list[Entry] = [(LayerEntry("Files/batches", EntryKind.DIRECTORY, attributes=0x10, **d), None)]
    runs = [(n, 1 + n % 7) for n in range(58, 68)] + [(n, 40_000) for n in range(22, 30)]
    for r, (length, size) in enumerate(runs):
        folder = f"Files/batches/run{r:02d}"
        entries.append((LayerEntry(folder, EntryKind.DIRECTORY, attributes=0x10, **d), None))
        for i in range(length):
            entries.append((LayerEntry(f"{folder}/f{i:03d}", EntryKind.FILE, size=size, attributes=0x20, **d),
                            bytes([i % 251]) * size))
        owner = f"{folder}/owner" + ("" if r % 4 else ".d")
        if r % 4:
            entries.append((LayerEntry(owner, EntryKind.FILE, size=size, attributes=0x20, **d), b"o" * size))
        else:
            entries.append((LayerEntry(owner, EntryKind.DIRECTORY, attributes=0x10, **d), None))
        entries.append((LayerEntry(f"{owner}:note", EntryKind.STREAM, size=3, **plain), b"n%02d" % r))
        if r % 3 == 0:  # a large file, written by itself, between runs
            entries.append((LayerEntry(f"{folder}/large", EntryKind.FILE, size=70_000, attributes=0x20, **d),
                            b"L" * 70_000))
    return entries


def test_streams_at_every_batch_boundary_round_trip(host: Host) -> None:
    files = [(e, data.read() if data is not None else None) for e, data in LayerReader(io.BytesIO(base_layer()))]
    as_base = tar_of(files + _batch_boundaries())
    base = host.layers.import_tar(io.BytesIO(as_base))
    try:
        out = io.BytesIO()
        host.layers.export_tar(base, out)
        problems = _diff(view(as_base), view(out.getvalue()))
        assert not problems, "\n".join(problems)
        as_diff = tar_of(files[:1] + _batch_boundaries())  # the base's Files folder, then the batches
        layer = host.layers.import_tar(io.BytesIO(as_diff), parents=[base])
        try:
            out = io.BytesIO()
            host.layers.export_tar(layer, out)
            problems = _diff(view(as_exported(as_diff)), view(out.getvalue()))
            assert not problems, "\n".join(problems)
        finally:
            host.layers.destroy(layer)
    finally:
        host.layers.destroy(base)


def test_batched_writes_and_reads_keep_metadata_and_fail_like_single_calls(host: Host, tmp_path: Path) -> None:
    from wincontainers._native import win32
    from wincontainers._native.layerfs import LayerFolder
    from wincontainers.layerfile.backup import HEADER, StreamId
    from wincontainers.layers.collection import LAYER_PRIVILEGES

    api = host.layers.win32
    api.require_privileges(*LAYER_PRIVILEGES, task="the test")
    folder = LayerFolder(api, tmp_path / "batch", create=True)
    t = (131_000_000_000_000_000, 131_000_000_000_000_001, 131_000_000_000_000_002, 131_000_000_000_000_003)
    sd = SDS[1]
    assert sd is not None

    def stream(body: bytes) -> bytes:  # a whole backup stream: security, then data
        return HEADER.pack(StreamId.SECURITY_DATA, 0, len(sd), 0) + sd + HEADER.pack(StreamId.DATA, 0, len(body), 0) \
            + body

    folder.mkdir("d")
    folder.write_whole([("d", True, stream(b""), t, 0x10), ("d/a", False, stream(b"alpha"), t, 0x21),
                        ("d/b", False, stream(b"b" * 5000), t, 0x20)], backup_stream=True)
    read = folder.read_entry("d/a")
    try:
        assert (read.attributes, read.times) == (0x21, t)
        assert read.stream.read() == stream(b"alpha")
    finally:
        read.stream.close()
    with pytest.raises(win32.AlreadyExists, match=r"CreateFileW .*batch\\d\\a failed"):  # the call, the path
        folder.write_whole([("d/c", False, stream(b"c"), t, 0x20), ("d/a", False, stream(b"again"), t, 0x20)],
                           backup_stream=True)
    assert folder.is_file("d/c")  # the one before it stays: a caller discards the folder
    folder.write_whole([("plain", False, b"raw bytes", t, 0)], backup_stream=False)
    got = folder.read_whole(["d/c", "plain", "d/b"], consume=True, limit=1000)
    assert got[0] is not None and got[0][3] == b"c" and got[0][0] == t and got[0][1] == 1  # the data
    assert got[1] is not None and got[1][3] == b"raw bytes"
    assert got[2] is None and folder.is_file("d/b")  # larger than the limit: neither read nor deleted
    assert not folder.exists("d/c") and not folder.exists("plain")
    with pytest.raises(win32.PathNotFound):
        folder.read_whole(["d/a", "d/missing"], consume=False, limit=1000)
    assert folder.is_file("d/a")


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _transport_tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*")) if not p.name.startswith(".wcsim-")}


@pytest.mark.simulator("the simulator's ExportLayer, run in this process")
def test_the_simulated_export_reads_ahead_and_leaves_no_descriptor_open(
        host: Host, sim: SimulatedHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's ExportLayer starts a folder's reads together and reads through the
    descriptors it opened for that: what it writes is what it wrote without read-ahead, with
    descriptors to spare or not (a deep tree holds a window per level), and it leaves none
    open, also when it fails halfway."""
    from wincontainers.sim import layerio, ntfs
    from wincontainers.sim.faults import Fail

    monkeypatch.setattr(ntfs, "_volume_root", Path(sim.root))  # ExportLayer runs in this process

    base_files = [(e, data.read() if data is not None else None) for e, data in LayerReader(io.BytesIO(base_layer()))]
    base = host.layers.import_tar(io.BytesIO(tar_of(base_files)))
    deep: list[Entry] = base_files[:1]  # the base's Files folder
    folder = "Files"
    for level in range(4):
        folder += f"/d{level}"
        deep.append((LayerEntry(folder, EntryKind.DIRECTORY, attributes=0x10), None))
        for i in range(70):
            data = f"{folder}/{i};".encode() * (i + 1)
            deep.append((LayerEntry(f"{folder}/f{i:03}.txt", EntryKind.FILE, size=len(data), attributes=0x20), data))
    layer = host.layers.import_tar(io.BytesIO(tar_of(deep)), parents=[base])
    parents = [Path(p) for p in host.layers.get(layer).parents]
    regular = sum(1 for p in Path(layer.path, "Files").rglob("*") if p.is_file() and not p.is_symlink()
                  and not p.name.startswith(".wcsim-"))
    assert regular >= 4 * 70
    started: list[int] = []  # descriptors open as each read was started
    real_fadvise = os.posix_fadvise

    def counted(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_WILLNEED:
            started.append(_open_descriptors())
        real_fadvise(fd, offset, length, advice)

    def export(name: str) -> tuple[dict[str, bytes], int]:
        """What ExportLayer writes, and the most descriptors read-ahead held at once."""
        out = tmp_path / name
        out.mkdir()
        started.clear()
        before = _open_descriptors()
        layerio.export_layer(Path(layer.path), out, parents=parents)
        assert _open_descriptors() == before
        return _transport_tree(out), max(started, default=before) - before

    try:
        with monkeypatch.context() as patched:
            patched.setattr(layerio._ReadAhead, "start", lambda self, paths: None)
            plain, _ = export("plain")
        monkeypatch.setattr(os, "posix_fadvise", counted)
        ahead, held = export("ahead")
        assert ahead == plain
        assert len(started) == regular  # every file's read was started ahead
        assert held > 2 * 64  # a window per level, kept to read from
        monkeypatch.setattr(layerio, "_AHEAD_KEPT", 10)  # fewer descriptors than one window
        few, held = export("few")
        assert few == plain
        assert len(started) == regular
        assert held < 64  # not even one window: the rest were closed once started
        calls = []
        real_small = layerio._small_transport

        def failing(*args: Any) -> None:
            calls.append(1)
            if len(calls) == 150:
                raise OSError(5, "injected")
            real_small(*args)

        monkeypatch.setattr(layerio, "_AHEAD_KEPT", 512)
        monkeypatch.setattr(layerio, "_small_transport", failing)
        (tmp_path / "failing").mkdir()
        before = _open_descriptors()
        with pytest.raises(Fail, match="injected"):
            layerio.export_layer(Path(layer.path), tmp_path / "failing", parents=parents)
        assert _open_descriptors() == before
    finally:
        monkeypatch.undo()
        ntfs.forget_locations()
        host.layers.destroy(layer)
        host.layers.destroy(base)


def test_a_base_layer_round_trips_with_its_utility_vm(host: Host) -> None:
    d = dict(creation_time=131_000_000_000_000_000, last_access_time=131_000_000_000_000_001,
             last_write_time=131_000_000_000_000_002, change_time=131_000_000_000_000_003, security=SDS[1])
    uvm = [
        (LayerEntry("UtilityVM", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("UtilityVM/Files", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("UtilityVM/Files/EFI", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("UtilityVM/Files/EFI/BCD", EntryKind.FILE, size=4, attributes=0x26, **d), b"regf"),
    ]
    files = [(e, data.read() if data is not None else None) for e, data in LayerReader(io.BytesIO(base_layer()))]
    tar = tar_of(files + [
        (LayerEntry("Files/Windows/notepad.exe", EntryKind.FILE, size=2, attributes=0x20, xattrs={"K": b"v"}, **d),
         b"MZ"),
        (LayerEntry("Files/Windows/notepad.exe:Zone.Identifier", EntryKind.STREAM, size=3,
                    last_access_time=d["last_access_time"], last_write_time=d["last_write_time"],
                    change_time=d["change_time"]), b"z=3"),
        (LayerEntry("Files/Windows/write.exe", EntryKind.HARDLINK, attributes=0x20, link_target="Files/Windows/notepad.exe",
                    **{k: v for k, v in d.items() if k != "security"}), None),
        (LayerEntry("Files/Documents", EntryKind.JUNCTION, attributes=0x410, link_target="C:\\Users\\Public", **d), None),
        *uvm,
    ])
    assert check_layer(io.BytesIO(tar), base=True).ok
    base = host.layers.import_tar(io.BytesIO(tar))
    try:
        assert base.kind == "base" and base.parents == ()
        assert base.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
        out = io.BytesIO()
        host.layers.export_tar(base, out)
        problems = _diff(view(tar), view(out.getvalue()))
        assert not problems, "\n".join(problems)
        if host.generation > 1:  # ProcessBaseImage/ProcessUtilityImage ran (TP3 has neither)
            assert (base.path / "Hives").is_dir() and (base.path / "UtilityVM" / "SystemTemplate.vhdx").is_file()
    finally:
        host.layers.destroy(base)


def _uvm_base() -> bytes:
    """base_layer() with a utility VM: the boot files, a BCD, a few system files."""
    d = dict(creation_time=131_000_000_000_000_000, last_access_time=131_000_000_000_000_000,
             last_write_time=131_000_000_000_000_000, change_time=131_000_000_000_000_000, security=SDS[1])
    files = [(e, data.read() if data is not None else None) for e, data in LayerReader(io.BytesIO(base_layer()))]
    uvm: list[Entry] = [(LayerEntry(name, EntryKind.DIRECTORY, attributes=0x10, **d), None) for name in (
        "UtilityVM", "UtilityVM/Files", "UtilityVM/Files/EFI", "UtilityVM/Files/EFI/Microsoft",
        "UtilityVM/Files/EFI/Microsoft/Boot")]
    uvm += [(LayerEntry(f"UtilityVM/Files/EFI/Microsoft/Boot/{n}", EntryKind.FILE, size=len(b), attributes=0x26, **d), b)
            for n, b in (("BCD", b"regf bcd"), ("bootmgfw.efi", b"MZ boot"))]
    uvm += [(LayerEntry(name, EntryKind.DIRECTORY, attributes=0x10, **d), None)
            for name in ("UtilityVM/Files/Windows", "UtilityVM/Files/Windows/System32")]
    uvm += [(LayerEntry(f"UtilityVM/Files/Windows/System32/{n}", EntryKind.FILE, size=len(b), attributes=0x20, **d), b)
            for n, b in (("cmd.exe", b"MZ cmd 1"), ("keep.dll", b"MZ keep"), ("old.dll", b"MZ old"))]
    return tar_of(files + uvm)


def test_a_diff_layer_with_utility_vm_changes_round_trips(host: Host) -> None:
    """hcsshim's way: the parent's utility VM is cloned (links), the tar's changes applied; the
    export gives back exactly those changes, and the parent's files are untouched."""
    base = host.layers.import_tar(io.BytesIO(_uvm_base()))
    d = dict(creation_time=132_000_000_000_000_000, last_access_time=132_000_000_000_000_001,
             last_write_time=132_000_000_000_000_002, change_time=132_000_000_000_000_003, security=SDS[2])
    same = dict(creation_time=131_000_000_000_000_000, last_access_time=131_000_000_000_000_000,
                last_write_time=131_000_000_000_000_000, change_time=131_000_000_000_000_000, security=SDS[1])
    diff = tar_of([
        (LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("Files/app.txt", EntryKind.FILE, size=3, attributes=0x20, **d), b"app"),
        (LayerEntry("UtilityVM", EntryKind.DIRECTORY, attributes=0x10, **same), None),
        (LayerEntry("UtilityVM/Files", EntryKind.DIRECTORY, attributes=0x10, **same), None),
        (LayerEntry("UtilityVM/Files/Windows", EntryKind.DIRECTORY, attributes=0x10, **same), None),
        (LayerEntry("UtilityVM/Files/Windows/System32", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("UtilityVM/Files/Windows/System32/.wh.old.dll", EntryKind.WHITEOUT), None),
        (LayerEntry("UtilityVM/Files/Windows/System32/added.dll", EntryKind.FILE, size=5, attributes=0x20, **d),
         b"added"),
        (LayerEntry("UtilityVM/Files/Windows/System32/added.dll:Zone.Identifier", EntryKind.STREAM, size=3,
                    last_access_time=d["last_access_time"], last_write_time=d["last_write_time"],
                    change_time=d["change_time"]), b"z=3"),
        (LayerEntry("UtilityVM/Files/Windows/System32/cmd.exe", EntryKind.FILE, size=8, attributes=0x20, **d),
         b"MZ cmd 2"),
        (LayerEntry("UtilityVM/Files/Windows/System32/link.dll", EntryKind.HARDLINK, attributes=0x20,
                    link_target="UtilityVM/Files/Windows/System32/keep.dll",
                    **{k: v for k, v in same.items() if k != "security"}), None),
    ])
    report = check_layer(io.BytesIO(diff), parents=[base.path])
    assert report.ok, report.summary()
    layer = host.layers.import_tar(io.BytesIO(diff), parents=[base])
    try:
        system32 = layer.path / "UtilityVM" / "Files" / "Windows" / "System32"
        assert (system32 / "cmd.exe").read_bytes() == b"MZ cmd 2" and not (system32 / "old.dll").exists()
        parent32 = base.path / "UtilityVM" / "Files" / "Windows" / "System32"
        assert (parent32 / "cmd.exe").read_bytes() == b"MZ cmd 1" and (parent32 / "old.dll").exists()  # untouched
        assert (system32 / "keep.dll").stat().st_ino == (parent32 / "keep.dll").stat().st_ino  # cloned as a link
        boot = layer.path / "UtilityVM" / "Files" / "EFI" / "Microsoft" / "Boot"
        assert (boot / "BCD").stat().st_ino != (base.path / "UtilityVM/Files/EFI/Microsoft/Boot/BCD").stat().st_ino
        if host.generation > 1:
            assert (layer.path / "UtilityVM" / "SystemTemplate.vhdx").is_file()  # ProcessUtilityImage ran
        out = io.BytesIO()
        host.layers.export_tar(layer, out)
        problems = _diff(view(as_exported(diff)), view(out.getvalue()))
        assert not problems, "\n".join(problems)
        with host.containers.create([str(layer.path), str(base.path)], isolation="hyperv") if host.generation > 1 \
                else contextlib.nullcontext() as c:  # its own utility VM boots Hyper-V containers of it
            if c is not None:
                assert c.record.utility_vm == str(layer.path / "UtilityVM")
                c.remove(force=True)
    finally:
        host.layers.destroy(layer)
        host.layers.destroy(base)
    assert layers_left(host) == []


def test_a_utility_vm_change_without_a_parent_utility_vm_is_refused(host: Host) -> None:
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    d = dict(last_write_time=132_000_000_000_000_002)
    diff = tar_of([
        (LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("UtilityVM", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("UtilityVM/Files", EntryKind.DIRECTORY, attributes=0x10, **d), None),
        (LayerEntry("UtilityVM/Files/x.dll", EntryKind.FILE, size=1, attributes=0x20, **d), b"x"),
    ])
    try:
        report = check_layer(io.BytesIO(diff), parents=[base.path])
        assert "utilityvm-no-parent" in report.rules() and not report.ok
        with pytest.raises(LayerRejected) as info:
            host.layers.import_tar(io.BytesIO(diff), parents=[base])
        assert "UtilityVM" in str(info.value)
        assert layers_left(host) == [base.id]
    finally:
        host.layers.destroy(base)


# -- refusing bad layers before touching the host ----------------------------------------------


@pytest.mark.simulator("the simulator's call log")
def test_every_hostile_tar_is_refused_and_nothing_is_left(host: Host, sim: SimulatedHost, tmp_path: Path) -> None:
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    try:
        refused = 0
        for case in corpus():
            if case.severity != "error":
                continue
            source = tmp_path / f"{case.id}.tar"
            source.write_bytes(case.tar)
            as_base = bool(case.check.get("base"))
            before = listing(sim.root)
            sim.calls(clear=True)
            try:
                host.layers.import_tar(source, parents=[] if as_base else [base], base=as_base)
            except LayerRejected as exc:
                assert case.rule in {f.rule for f in exc.report.errors}, (case.id, exc.report.summary())
                named = [f.path for f in exc.report.errors if f.rule == case.rule]
                assert any(p in str(exc) for p in named), (case.id, str(exc))
                refused += 1
            else:
                raise AssertionError(f"{case.id}: imported")
            # checked while read: refused before any layer call but the clean-up's
            assert set(sim.calls()) <= {"NameToGuid", "DestroyLayer", "HcsDestroyLayer"}, (case.id, sim.calls())
            assert listing(sim.root) == before, f"{case.id}: the import left something on the host"
        assert refused >= 30
    finally:
        host.layers.destroy(base)


CONTAINED = [c for c in corpus() if c.severity == "error" and c.rule in CONTAINMENT_RULES]


@pytest.mark.simulator("the simulator's own files")
def test_no_check_still_keeps_every_write_inside_the_layer(host: Host, sim: SimulatedHost, tmp_path: Path) -> None:
    """``check=False`` skips the report, never the containment: every escape is refused."""
    assert len(CONTAINED) >= 12
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    try:
        for case in CONTAINED:
            source = tmp_path / f"{case.id}.tar"
            source.write_bytes(case.tar)
            as_base = bool(case.check.get("base"))
            before = listing(sim.root)
            with pytest.raises(LayerRejected) as info:
                host.layers.import_tar(source, parents=[] if as_base else [base], base=as_base, check=False)
            assert case.rule in {f.rule for f in info.value.report.errors}, (case.id, info.value.report.summary())
            assert {f.rule for f in info.value.report.errors} <= CONTAINMENT_RULES, case.id
            assert listing(sim.root) == before, f"{case.id}: the import left something on the host"
    finally:
        host.layers.destroy(base)


def _escaping_layer() -> bytes:
    """A junction to C:\\ and a file written through it: outside the layer, unless checked."""
    return tar_of([(LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10), None),
                   (LayerEntry("Files/l", EntryKind.JUNCTION, attributes=0x410, link_target="C:\\"), None),
                   (LayerEntry("Files/l/escaped.txt", EntryKind.FILE, size=4, attributes=0x20), b"evil"),
                   (LayerEntry("Hives", EntryKind.DIRECTORY, attributes=0x10), None)])


@pytest.mark.simulator("the simulator's own files")
@pytest.mark.parametrize("as_base", [True, False], ids=["base", "diff"])
def test_a_tar_swapped_during_the_import_is_never_read(host: Host, sim: SimulatedHost, tmp_path: Path,
                                                        as_base: bool) -> None:
    """The source is opened once: replacing the file at its path once the import has started
    (formerly: between the check and the import) changes nothing of what is imported."""
    good = base_layer()
    source = tmp_path / "layer.tar"
    source.write_bytes(good)
    swapped = []

    def swap(folder: Path) -> None:
        replacement = tmp_path / "evil.tar"
        replacement.write_bytes(_escaping_layer())
        os.replace(replacement, source)
        swapped.append(folder)

    parents = [] if as_base else [host.layers.import_tar(io.BytesIO(base_layer()))]
    before = {p for p, _ in listing(sim.root)}
    layer = host.layers.import_tar(source, parents=parents, base=as_base, on_folder=swap)
    try:
        assert swapped, "the import told where its folder goes"
        assert layer.diff_id == "sha256:" + hashlib.sha256(good).hexdigest()
        grown = {p for p, _ in listing(sim.root)} - before
        assert not any(p.endswith("escaped.txt") for p in grown), grown
        ids = [layer.id] + [p.id for p in parents]
        assert all(any(i in p for i in ids) for p in grown), grown  # the layers' folders and records only
    finally:
        host.layers.destroy(layer)
        for parent in parents:
            host.layers.destroy(parent)


def test_a_tar_that_changes_while_it_is_imported_is_refused(host: Host, tmp_path: Path) -> None:
    """A diff import's diff ID is hashed from the file again, behind the import: a file that
    changed meanwhile (here its times are set, as a rewrite in place would) gives no layer whose
    diff ID might not be its content's, and nothing of it is kept. A base import hashes the
    bytes it read, so the same change is harmless there."""
    source = tmp_path / "layer.tar"
    source.write_bytes(base_layer())
    want = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    parent = host.layers.import_tar(io.BytesIO(base_layer()))
    before = layers_left(host)
    touched = []

    def touch(done: int, files: int) -> None:
        if not touched:
            os.utime(source, ns=(10**18 + len(touched), 10**18))
            touched.append(done)

    try:
        with pytest.raises(errors.BadInput, match="changed while it was read; nothing of it was kept"):
            host.layers.import_tar(source, parents=[parent], progress=touch)
        assert touched and layers_left(host) == before
        unchanged = host.layers.import_tar(source, parents=[parent])  # left alone: imported
        assert unchanged.diff_id == want
        host.layers.destroy(unchanged)
        touched.clear()
        base = host.layers.import_tar(source, base=True, progress=touch)
        assert touched and base.diff_id == want
        host.layers.destroy(base)
    finally:
        host.layers.destroy(parent)


def test_the_blogs_layer_is_refused_naming_each_file(host: Host, tmp_path: Path) -> None:
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    try:
        with pytest.raises(LayerRejected) as info:
            host.layers.import_tar(io.BytesIO(blog_layer()), parents=[base])
        text = str(info.value)
        for path in ("Files/cygwin64/bin/vi", "Files/cygwin64/bin/sh.exe"):
            assert path in text
        rules = {f.rule: f for f in info.value.report.findings}
        assert rules["unsupported-reparse"].path == "Files/cygwin64/bin/vi" and rules["unsupported-reparse"].advice
        assert rules["hardlink-missing-target"].path == "Files/cygwin64/bin/sh.exe"
        assert rules["recycle-bin"].severity == "warning" and rules["long-path"].severity == "warning"
        assert "0x8000FFFF" not in text and layers_left(host) == [base.id]
    finally:
        host.layers.destroy(base)


def test_lone_surrogate_names_warn_but_import(host: Host) -> None:
    name = "Files/\udc80bin\ud800"
    tar = tar_of([(LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10), None),
                  (LayerEntry(name, EntryKind.FILE, size=2, attributes=0x20), b"ok")])
    assert "\\xed\\xb2\\x80bin\\xed\\xa0\\x80".encode().decode("unicode_escape").encode("latin-1") in tar
    report = check_layer(io.BytesIO(tar), base=True)
    assert report.ok and report.rules() == {"invalid-utf16"}
    layer = host.layers.import_tar(io.BytesIO(tar))
    try:
        out = io.BytesIO()
        host.layers.export_tar(layer, out)
        assert name in view(out.getvalue())
    finally:
        host.layers.destroy(layer)


# -- failures inside HCS ------------------------------------------------------------------------


INJECTED = 0x8000FFFF


def _layer_work(host: Host, base_tar: bytes, diff_tar: bytes, dest: Path) -> None:
    """Import a base and a diff layer, export the diff and a sandbox over both, remove them all."""
    base = host.layers.import_tar(io.BytesIO(base_tar))
    made = [base]
    try:
        diff = host.layers.import_tar(io.BytesIO(diff_tar), parents=[base])
        made.append(diff)
        host.layers.export_tar(diff, dest)
        sandbox = host.layers.create_sandbox([diff, base])
        made.append(sandbox)
        host.layers.export_tar(sandbox, dest.with_suffix(".sandbox.tar"))
    finally:
        for layer in reversed(made):
            host.layers.destroy(layer, force=True)


@pytest.mark.simulator("fault injection")
def test_a_failing_hcs_call_leaves_no_partial_layer_and_names_layer_and_step(
        host: Host, sim: SimulatedHost, tmp_path: Path) -> None:
    from tests.test_layerfile import example_entries, write

    base_tar, diff_tar = base_layer(), write(example_entries())
    sim.calls(clear=True)
    _layer_work(host, base_tar, diff_tar, tmp_path / "ok.tar")
    calls = sim.calls(clear=True)
    wanted = {"ImportLayer", "ExportLayer", "HcsImportLayer", "HcsExportLayer", "ProcessBaseImage", "NameToGuid",
              "CreateSandboxLayer", "ActivateLayer"}
    occurrences, seen = [], {}  # type: ignore[var-annotated]
    for fn in calls:
        seen[fn] = seen.get(fn, 0) + 1
        if fn in wanted:
            occurrences.append((fn, seen[fn]))
    assert {"ImportLayer", "HcsImportLayer"} & {fn for fn, _ in occurrences}
    assert {"ExportLayer", "HcsExportLayer"} & {fn for fn, _ in occurrences}
    failed = 0
    for fn, nth in occurrences:
        dest = tmp_path / f"{fn}-{nth}.tar"
        sim.inject(fn, INJECTED, nth=nth, pid=os.getpid())
        try:
            _layer_work(host, base_tar, diff_tar, dest)
        except errors.HcsError as exc:
            failed += 1
            assert exc.operation == fn and exc.hresult == INJECTED, (fn, nth, exc)
            text = str(exc)
            assert fn in text and "layer " in text, text
            assert text.startswith(("importing ", "exporting ", "creating sandbox layer ")), text
            if fn in ("ImportLayer", "HcsImportLayer"):
                assert "layer check" in text, text  # vmcompute's "Catastrophic failure", explained
        finally:
            sim.clear_faults()
        assert layers_left(host) == [], (fn, nth, layers_left(host))
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f"{fn}-{nth}") and
                    (p.suffix == ".partial" or p.stat().st_size == 0)]
        assert not sim.objects()["volumes"], (fn, nth)
    assert failed >= len(occurrences) - 1, (failed, occurrences)


# -- a container's changes -------------------------------------------------------------------


def _entries(tar: bytes) -> dict[str, tuple[LayerEntry, bytes]]:
    return {e.name: (e, d.read() if d is not None else b"") for e, d in LayerReader(io.BytesIO(tar))}


@pytest.mark.simulator("the simulator's object table")
def test_a_stopped_containers_changes_export_with_deletions(host: Host, sim: SimulatedHost, tmp_path: Path) -> None:
    with host.containers.create("windowsservercore", name="changes") as c:
        c.start()
        result = c.run('cmd /S /C "mkdir data && echo hello> data\\new.txt && rd /s /q Users && '
                       'echo changed> Windows\\win.ini"')
        assert result.returncode == 0, result
        with pytest.raises(errors.InvalidState) as running:
            host.layers.export_tar(c.id, tmp_path / "running.tar")
        assert "stop the container first" in str(running.value) and not (tmp_path / "running.tar").exists()
        c.stop()
        out = tmp_path / "changes.tar"
        first = host.layers.export_tar(c.id, out)
        entries = _entries(out.read_bytes())
        assert entries["Files/data/new.txt"][1] == b"hello \r\n"  # the space before && is echoed
        assert entries["Files/Windows/win.ini"][1] == b"changed\r\n"
        assert entries["Files/.wh.Users"][0].kind is EntryKind.WHITEOUT
        assert "Files/Program Files" not in entries  # unchanged content is not part of the diff
        assert {n for n in entries if n.startswith("Hives/")} >= {"Hives/Software_Delta", "Hives/System_Delta"}
        assert check_layer(out).ok
        again = host.layers.export_tar(c.id, tmp_path / "again.tar")
        assert again.diff_id == first.diff_id
        # The sandbox is left as the container had it: activated and prepared.
        volumes = [v for v in sim.objects()["volumes"] if Path(v["layer"]).name == c.id]
        assert [v["prepared"] for v in volumes] == [True]


@pytest.mark.simulator("the simulator's object table")
def test_a_wsl_symlink_in_a_container_is_refused_by_name(host: Host, sim: SimulatedHost, tmp_path: Path) -> None:
    with host.containers.create("windowsservercore", name="lx") as c:
        c.start()
        assert c.run('cmd /S /C "mkdir bin && echo x> bin\\ok.txt"').returncode == 0
        # What WSL leaves in a container's file system: a POSIX symlink (an LX reparse point).
        root = Path(next(s["root"] for s in sim.objects()["systems"] if s["id"] == c.id))
        os.symlink("/usr/bin/vim", root / "bin" / "vi")
        c.stop()
        dest = tmp_path / "lx.tar"
        with pytest.raises(ExportRefused) as info:
            host.layers.export_tar(c.id, dest)
        assert info.value.paths == ["Files/bin/vi"] and "WSL/LX symlink" in str(info.value)
        assert not dest.exists() and not list(tmp_path.iterdir())
        host.layers.export_tar(c.id, dest, unsupported_reparse="skip")
        assert "Files/bin/vi" not in _entries(dest.read_bytes()) and "Files/bin/ok.txt" in _entries(dest.read_bytes())
        host.layers.export_tar(c.id, dest, unsupported_reparse="keep")
        report = check_layer(dest)
        assert [f.path for f in report.errors if f.rule == "unsupported-reparse"] == ["Files/bin/vi"]


def test_a_mounted_sandbox_cannot_be_exported_and_the_error_says_why(host: Host, tmp_path: Path) -> None:
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    sandbox = host.layers.create_sandbox([base])
    try:
        with host.layers.prepared(sandbox) as mount:
            assert mount
            with pytest.raises(errors.Unexpected) as info:
                host.layers.export_tar(sandbox, tmp_path / "x.tar")
            assert "still mounted" in str(info.value) and str(info.value).startswith("exporting layer ")
        assert not (tmp_path / "x.tar").exists()
        host.layers.export_tar(sandbox, tmp_path / "x.tar")  # unmounted: fine (no changes)
        assert _entries((tmp_path / "x.tar").read_bytes()).keys() >= {"Files", "Hives"}
    finally:
        host.layers.destroy(sandbox)
        host.layers.destroy(base)
    assert layers_left(host) == []


# -- progress and the command line -----------------------------------------------------------------


def test_progress_reports_bytes_and_files(host: Host, tmp_path: Path) -> None:
    from tests.test_layerfile import example_entries, write

    seen: list[tuple[int, int]] = []
    base = host.layers.import_tar(io.BytesIO(base_layer()), progress=lambda done, files: seen.append((done, files)))
    tar = write(example_entries())
    imported: list[tuple[int, int]] = []
    layer = host.layers.import_tar(io.BytesIO(tar), parents=[base],
                                   progress=lambda done, files: imported.append((done, files)))
    exported: list[tuple[int, int]] = []
    result = host.layers.export_tar(layer, tmp_path / "out.tar", progress=lambda d, f: exported.append((d, f)))
    try:
        for series in (seen, imported, exported):
            assert series and series == sorted(series), series  # counts only move forward
        assert imported[-1] == (len(tar), 12)
        assert exported[-1] == (result.size, result.entries) and result.size == (tmp_path / "out.tar").stat().st_size
    finally:
        host.layers.destroy(layer)
        host.layers.destroy(base)


def test_layer_commands(host: Host, tmp_path: Path) -> None:
    from tests.conftest import cli
    from tests.test_layerfile import example_entries, write

    blog = tmp_path / "blog.tar"
    blog.write_bytes(blog_layer())
    checked = cli("layer", "check", str(blog), host=host)
    assert checked.returncode == 1
    lines = checked.stdout.decode().splitlines()
    vi = next(line for line in lines if "Files/cygwin64/bin/vi" in line)
    assert "unsupported-reparse" in vi and "error" in vi and "Catastrophic failure" in vi
    as_json = cli("layer", "check", "--json", str(blog), host=host)
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert {f["rule"] for f in doc["findings"]} >= {"unsupported-reparse", "hardlink-into-parent", "recycle-bin"}
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b" + b"nope" * 100)
    assert cli("layer", "check", str(junk), host=host).returncode == 2
    assert cli("layer", "check", str(tmp_path / "missing.tar"), host=host).returncode == 2

    base_tar, app_tar = tmp_path / "base.tar", tmp_path / "app.tar"
    base_tar.write_bytes(base_layer())
    app_tar.write_bytes(write(example_entries()))
    assert cli("layer", "check", str(app_tar), host=host).returncode == 0
    base = cli("layer", "import", str(base_tar), host=host)
    assert base.returncode == 0, base.stderr
    base_id = base.stdout.decode().strip()
    app = cli("layer", "import", "--parent", base_id[:12], str(app_tar), host=host)
    assert app.returncode == 0, app.stderr
    app_id = app.stdout.decode().strip()
    refused = cli("layer", "import", "--parent", base_id, str(blog), host=host)
    assert refused.returncode == 1 and b"Files/cygwin64/bin/vi" in refused.stderr and b"nothing was imported" in refused.stderr
    listed = cli("layer", "ls", host=host).stdout.decode()
    assert base_id[:12] in listed and app_id[:12] in listed and "base" in listed and "diff" in listed
    assert cli("layer", "ls", "-q", host=host).stdout.decode().split() == sorted([base_id, app_id])
    out = tmp_path / "app-out.tar.gz"
    exported = cli("layer", "export", "--compression", "gzip", app_id[:12], str(out), host=host)
    assert exported.returncode == 0, exported.stderr
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert exported.stdout.decode().strip() == check_layer(out).diff_id
    in_use = cli("layer", "rm", base_id[:12], host=host)
    assert in_use.returncode == 1 and b"built on it" in in_use.stderr
    assert cli("layer", "rm", app_id, base_id, host=host).returncode == 0
    assert cli("layer", "ls", "-q", host=host).stdout == b""


def test_compressed_round_trip_and_a_progress_bar(host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tqdm  # noqa: F401  (both are in the test extra: the zstd path and the bar must run)
    import zstandard  # noqa: F401
    from tests.test_layerfile import example_entries, write

    base = host.layers.import_tar(io.BytesIO(base_layer()))
    made = [base]
    try:
        plain = write(example_entries())
        layer = host.layers.import_tar(io.BytesIO(write(example_entries(), compression="zstd")), parents=[base],
                                       progress=True)
        made.append(layer)
        assert layer.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()  # of the uncompressed tar
        for compression, magic in (("zstd", b"\x28\xb5\x2f\xfd"), ("gzip", b"\x1f\x8b")):
            out = tmp_path / f"out.{compression}"
            result = host.layers.export_tar(layer, out, compression=compression, progress=True)
            assert out.read_bytes()[:4].startswith(magic) and result.compressed_size == out.stat().st_size
            again = host.layers.import_tar(out, parents=[base])
            made.append(again)
            assert again.diff_id == result.diff_id
        bars = capsys.readouterr().err
        assert "import " in bars and "export " in bars  # tqdm wrote its bars (with the layer ids)
    finally:
        for layer in reversed(made):
            host.layers.destroy(layer)


@pytest.mark.simulator("the simulator's object table")
def test_lookup_mounting_and_removal(host: Host, sim: SimulatedHost) -> None:
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    sandbox = host.layers.create_sandbox([base])
    try:
        assert host.layers.get(base.id[:10]) == base and host.layers.get(str(base.path)) == base
        assert host.layers.exists(base.id) and not host.layers.exists("f" * 64)
        with pytest.raises(errors.BadInput):
            host.layers.get("some/relative/path")
        with pytest.raises(errors.NotFound) as missing:
            host.layers.get("0" * 64)
        assert "layer ls" in str(missing.value)
        assert json.loads((sandbox.path / "layerchain.json").read_text()) == [str(base.path)]
        assert json.loads((base.path / "layerchain.json").read_text()) is None
        assert sandbox.kind == "sandbox" and sandbox.parents == (base.path,)
        assert {layer.id for layer in host.layers.list()} == {base.id, sandbox.id}

        def volumes() -> list[Any]:
            return [v for v in sim.objects()["volumes"] if Path(v["layer"]) == sandbox.path]

        with host.layers.activated(sandbox) as mount:
            assert mount and [v["prepared"] for v in volumes()] == [False]
        assert volumes() == []
        with host.layers.prepared(sandbox) as mount:
            assert mount and [v["prepared"] for v in volumes()] == [True]
        assert volumes() == []
        with pytest.raises(errors.InvalidState) as in_use:
            host.layers.destroy(base)
        assert sandbox.id[:12] in str(in_use.value)
    finally:
        host.layers.destroy(sandbox)
        host.layers.destroy(base)
    assert layers_left(host) == [] and not host.layers.exists(base.id)


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_layers_example_runs(sim: SimulatedHost) -> None:
    from tests.conftest import run_example

    done = run_example("layers.py", sim)
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "a container from it reads: 'hello from a layer'" in out
    assert "refused: Files/cygwin64/vi" in out and out.rstrip().endswith("layers left: 0")
