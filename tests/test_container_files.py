"""``cp``, ``diff`` and ``export``: trees copied into and out of containers keep their Windows
metadata (attributes, security descriptors, alternate data streams, links as themselves), on a
stopped container and on a running one, and never pass through a link."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.conftest import cli
from wincontainers import Host, errors
from wincontainers.layerfile import LayerReader, LayerWriter
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layerfile.security import SecurityDescriptor

SD = SecurityDescriptor.from_sddl("O:BAG:SYD:PAI(A;;FA;;;BA)(A;;FR;;;BU)").to_bytes()
T = 133_000_000_000_000_000  # a FILETIME


def _tar(entries: list[tuple[LayerEntry, Optional[bytes]]]) -> io.BytesIO:
    out = io.BytesIO()
    with LayerWriter(out) as writer:
        for entry, data in entries:
            writer.add(entry, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    return out


def _tree() -> io.BytesIO:
    """A small tree with what a plain copy would lose."""
    times = {"creation_time": T, "last_access_time": T, "last_write_time": T, "change_time": T}
    return _tar([
        (LayerEntry("tree", EntryKind.DIRECTORY, attributes=0x10, security=SD, **times), None),
        (LayerEntry("tree/plain.txt", EntryKind.FILE, size=5, attributes=0x20, **times), b"plain"),
        (LayerEntry("tree/hidden.txt", EntryKind.FILE, size=6, attributes=0x23, security=SD, **times), b"secret"),
        (LayerEntry("tree/hidden.txt:note", EntryKind.STREAM, size=4, **times), b"side"),
        (LayerEntry("tree/sub", EntryKind.DIRECTORY, attributes=0x10, **times), None),
        (LayerEntry("tree/sub/deep.bin", EntryKind.FILE, size=3, attributes=0x20, **times), b"\x00\x01\x02"),
        (LayerEntry("tree/sub/twin.bin", EntryKind.HARDLINK, link_target="tree/sub/deep.bin", attributes=0x20,
                    **times), None),
    ])


def _summary(tar: Any, prefix: str) -> dict[str, tuple[Any, ...]]:
    """What must survive a copy, per entry (names from ``prefix`` down)."""
    out = {}
    with LayerReader(tar) as reader:
        for entry, data in reader:
            if not (entry.name == prefix or entry.name.startswith(prefix + "/")):
                continue
            name = entry.name[len(prefix):] or "."
            body = data.read() if data is not None else b""
            out[name] = (entry.kind, entry.effective_attributes if entry.kind is not EntryKind.STREAM else None,
                         entry.security, body, entry.last_write_time,
                         entry.link_target[len(prefix):] if entry.kind is EntryKind.HARDLINK and entry.link_target
                         else None)
    return out


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_a_tree_round_trips_with_attributes_security_and_streams(host: Host, tmp_path: Path, running: bool) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        if not running:
            c.stop()
        done = c.copy_to(_tree(), "C:\\")
        assert done.entries == 6 and done.bytes == 14
        out = io.BytesIO()
        c.copy_from("C:\\tree", out)
        out.seek(0)
        assert _summary(out, "tree") == _summary(_tree(), "tree")
        # and through a host folder, back into the container under another name
        c.copy_from("C:\\tree", tmp_path / "copy")
        assert (tmp_path / "copy" / "sub" / "deep.bin").read_bytes() == b"\x00\x01\x02"
        c.copy_to(tmp_path / "copy", "C:\\again")
        again = io.BytesIO()
        c.copy_from("C:\\again", again)
        again.seek(0)
        assert _summary(again, "again") == _summary(_tree(), "tree")
        if running:
            assert c.run('cmd /S /C "type C:\\tree\\plain.txt"').stdout == b"plain"
            c.stop()
        # what the container's own layer export says agrees
        layer = tmp_path / "layer.tar"
        host.layers.export_tar(c.id, layer)
        exported, expected = _summary(str(layer), "Files/tree"), _summary(_tree(), "tree")
        exported.pop("/sub/twin.bin"), expected.pop("/sub/twin.bin")  # the sandbox export writes a second name as a file
        assert exported == expected
        changes = {str(ch) for ch in c.diff()}
        assert {"A C:\\tree", "A C:\\tree\\hidden.txt", "A C:\\again\\sub\\deep.bin"} <= changes


def test_a_copy_never_passes_through_a_link(host: Host, tmp_path: Path) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        junction = _tar([(LayerEntry("evil", EntryKind.JUNCTION, link_target="C:\\Windows", attributes=0x410), None)])
        c.copy_to(junction, "C:\\")
        with pytest.raises(errors.BadInput, match="link"):
            c.copy_to(_tree(), "C:\\evil")
        with pytest.raises(errors.BadInput, match="link"):
            c.copy_from("C:\\evil\\System32", tmp_path / "out")
        assert not (tmp_path / "out").exists()
        sneaky = _tar([(LayerEntry("j", EntryKind.JUNCTION, link_target="C:\\Windows", attributes=0x410), None),
                       (LayerEntry("j/planted.txt", EntryKind.FILE, size=1, attributes=0x20), b"x")])
        with pytest.raises(errors.BadInput, match="link"):
            c.copy_to(sneaky, "C:\\")
        for bad in ("../up.txt", "/abs.txt", "C:/drive.txt"):
            with pytest.raises(errors.BadInput):
                c.copy_to(_tar([(LayerEntry(bad, EntryKind.FILE, size=1, attributes=0x20), b"x")]), "C:\\")
        outside = _tar([(LayerEntry("l", EntryKind.HARDLINK, link_target="Windows/win.ini"), None)])
        with pytest.raises(errors.BadInput, match="hard link"):
            c.copy_to(outside, "C:\\")
        with pytest.raises(errors.BadInput):
            c.copy_to(_tree(), "D:\\elsewhere")
        with pytest.raises(errors.NotFound):
            c.copy_from("C:\\no-such-thing", tmp_path / "x")
        c.copy_from("C:\\evil", tmp_path / "junction")  # the link itself is copied, not what it names
        assert not (tmp_path / "junction" / "System32").exists()
        c.stop()


def test_a_name_copied_twice_in_one_copy_ends_as_the_second(host: Host, tmp_path: Path) -> None:
    # Entries are written in batches: the second "dup.txt" must still replace the first, as a
    # copy replaces a file that was there before it.
    times = {"creation_time": T, "last_access_time": T, "last_write_time": T, "change_time": T}
    with host.containers.create("windowsservercore") as c:
        tar = _tar([(LayerEntry("twice", EntryKind.DIRECTORY, attributes=0x10, **times), None),
                    (LayerEntry("twice/dup.txt", EntryKind.FILE, size=5, attributes=0x20, **times), b"first"),
                    (LayerEntry("twice/other.txt", EntryKind.FILE, size=1, attributes=0x20, **times), b"o"),
                    (LayerEntry("twice/dup.txt", EntryKind.FILE, size=6, attributes=0x21, **times), b"second")])
        c.copy_to(tar, "C:\\")
        out = io.BytesIO()
        c.copy_from("C:\\twice", out)
        out.seek(0)
        got = _summary(out, "twice")
        assert got["/dup.txt"][1:4] == (0x21, None, b"second")
        assert got["/other.txt"][3] == b"o"


def test_diff_and_export_of_a_stopped_container_and_refusal_while_running(host: Host, tmp_path: Path) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        c.run('cmd /S /C "mkdir C:\\app && echo v1> C:\\app\\v.txt && echo changed> C:\\Windows\\win.ini '
              '&& del C:\\Windows\\System32\\license.rtf"')
        with pytest.raises(errors.InvalidState, match="stop it first"):
            c.diff()
        c.stop()
        changes = {str(ch) for ch in c.diff()}
        assert {"A C:\\app", "A C:\\app\\v.txt", "C C:\\Windows\\win.ini",
                "D C:\\Windows\\System32\\license.rtf"} <= changes
        export = tmp_path / "fs.tar"
        done = c.export(export)
        with LayerReader(str(export)) as reader:
            names = {e.name for e, _ in reader}
        assert {"app/v.txt", "Windows/win.ini"} <= names and "Windows/System32/license.rtf" not in names
        assert done.entries == len([n for n in names if ":" not in n.rpartition("/")[2]])


def test_cli_cp_both_ways_diff_and_export(host: Host, tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f.txt").write_bytes(b"hello")
    assert cli("run", "-d", "--name", "files", "windowsservercore", "ping", "-t", "127.0.0.1", host=host).returncode == 0
    try:
        put = cli("cp", str(source), "files:C:\\data", host=host)
        assert put.returncode == 0, put.stderr
        assert cli("exec", "files", "cmd", "/S", "/C", "type C:\\data\\sub\\f.txt", host=host).stdout == b"hello"
        got = cli("cp", "files:C:\\data", str(tmp_path / "out"), host=host)
        assert got.returncode == 0 and (tmp_path / "out" / "sub" / "f.txt").read_bytes() == b"hello", got.stderr
        streamed = cli("cp", "files:C:\\data", "-", host=host)
        with LayerReader(io.BytesIO(streamed.stdout)) as reader:
            assert "data/sub/f.txt" in {e.name for e, _ in reader}
        assert cli("cp", str(source), str(tmp_path / "x"), host=host).returncode == 1  # neither side a container
        assert cli("diff", "files", host=host).returncode == 1  # running: refused, with the reason
        assert cli("stop", "files", host=host).returncode == 0
        assert "A C:\\data\\sub\\f.txt" in cli("diff", "files", host=host).stdout.decode()
        assert cli("export", "-o", str(tmp_path / "fs.tar"), "files", host=host).returncode == 0
        assert (tmp_path / "fs.tar").stat().st_size > 0
    finally:
        cli("rm", "-f", "files", host=host)
