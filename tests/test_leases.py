"""Folder leases (wincontainers/sim/leases.py): kernel32 works alone in a folder it just made,
and nobody can tell.

The lease is the simulator's private arrangement: each test here either compares what a caller
sees with the lease and without it (the simulator can be told not to grant any), or shows
another caller (another process, an HCS call) finding exactly what Windows would show it, with
the lease settled first. The lease statistics prove the local path was taken.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from wincontainers import Host
from wincontainers._native import win32 as w32
from wincontainers._native.layerfs import LayerFolder, remove_tree
from wincontainers.layerfile.backup import BackupWriter
from wincontainers.layerfile.security import SecurityDescriptor
from tests.conftest import SimulatedHost
from tests.conftest import ROOT
from tests.test_layers import Entry, base_layer, tar_of, trees

T = (131_000_000_000_000_000, 131_000_000_000_001_000, 131_000_000_000_002_000, 131_000_000_000_003_000)
SD = SecurityDescriptor.from_sddl("O:BAG:SYD:PAI(A;;FA;;;BA)(A;;0x1200a9;;;BU)").to_bytes()

#: another process's view of a folder tree: names, attributes, times, sizes, data, backup streams
SNAPSHOT = textwrap.dedent("""
    import hashlib, json, sys
    from wincontainers import Host
    from wincontainers._native import win32 as w32
    profile, root, top = sys.argv[1:4]
    host = Host.open(sim=profile, root=root)
    api = host.win32
    api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
    out = {}
    def walk(path, rel):
        for e in sorted(api.listdir(path), key=lambda e: e.name):
            sub = path + "\\\\" + e.name
            name = rel + "/" + e.name if rel else e.name
            with api.open_for_backup(sub, w32.GENERIC_READ | w32.ACCESS_SYSTEM_SECURITY,
                                     share=w32.FILE_SHARE_ALL) as f:
                stream = f.backup_reader(process_security=True).read()
                basic = f.basic_info()
            out[name] = [e.attributes, e.creation, e.access, e.write, e.size, basic.attributes, list(basic.times),
                         hashlib.sha256(stream).hexdigest()]
            if e.is_dir and not e.is_reparse_point:
                walk(sub, name)
    walk(w32.long_path(top), "")
    print(json.dumps(out))
""")


def snapshot(sim: SimulatedHost, top: Path) -> dict[str, Any]:
    """What another process finds in ``top``."""
    result = subprocess.run([sys.executable, "-c", SNAPSHOT, sim.profile.name, str(sim.root), str(top)],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def leases(sim: SimulatedHost) -> Iterator[SimulatedHost]:
    """The simulator granting leases again at the end, whatever the test did."""
    yield sim
    sim.leases(enabled=True)


def fill(api: w32.Win32, top: Path) -> None:
    """A small tree written as a layer import writes: folders, files from backup streams with a
    security descriptor, times and attributes set on the handle, a read-only file."""
    folder = LayerFolder(api, top)
    folder.mkdir("Sub")
    folder.mkdir("Sub/Deeper")
    for rel, data, attributes in (("Sub/File.txt", b"hello", 0x20), ("Sub/Deeper/ro.bin", b"\0" * 300, 0x21),
                                  ("top.dat", b"", 0x80)):
        stream = io.BytesIO()
        backup = BackupWriter(stream)
        backup.security(SD)
        backup.data(len(data), io.BytesIO(data))
        writer = folder.begin_entry(rel, directory=False)
        writer.write(stream.getvalue())
        writer.finish(T, attributes)
    for rel in ("Sub/Deeper", "Sub"):
        folder.set_times(rel, T)


def made_and_filled(api: w32.Win32, sim: SimulatedHost, top: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``top`` made (so leased, when grants are on) and filled: the lease counts before and after."""
    before = sim.leases()
    api.create_directory(w32.long_path(top))
    fill(api, top)
    return before, sim.leases()


@pytest.mark.simulator("the simulator's write leases")
def test_a_leased_folder_looks_to_others_as_one_made_through_the_daemon(host: Host, leases: SimulatedHost,
                                                                         tmp_path: Path) -> None:
    api = host.win32
    api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
    leased = tmp_path / "leased"
    before, during = made_and_filled(api, leases, leased)
    assert during["granted"] > before["granted"], "the folder was not leased"
    assert during["journal"] >= before["journal"] + 6, "kernel32 did not work in the lease by itself"

    leases.leases(enabled=False)
    plain = tmp_path / "plain"
    api.create_directory(w32.long_path(plain))
    fill(api, plain)
    assert leases.leases()["granted"] == during["granted"]

    # The holder's own listings (kernel32 lists a folder made in its lease by itself) are the daemon's.
    for rel in ("Sub", "Sub/Deeper"):
        mine = api.listdir(w32.long_path(leased / rel))
        theirs = api.listdir(w32.long_path(plain / rel))
        assert [attrs.astuple(e) for e in mine] == [attrs.astuple(e) for e in theirs], rel
    seen_leased, seen_plain = snapshot(leases, leased), snapshot(leases, plain)
    assert sorted(seen_leased) == ["Sub", "Sub/Deeper", "Sub/Deeper/ro.bin", "Sub/File.txt", "top.dat"]
    # Times the daemon chose itself (none here: every time was set) and the folders' own would differ.
    assert seen_leased == seen_plain
    assert leases.leases()["settled"] > during["settled"], "another process's look did not settle the lease"


@pytest.mark.simulator("the simulator's write leases")
def test_another_process_meets_the_handles_held_in_a_lease(host: Host, leases: SimulatedHost,
                                                          tmp_path: Path) -> None:
    api = host.win32
    top = tmp_path / "held"
    api.create_directory(w32.long_path(top))
    path = w32.long_path(top / "Locked.txt")
    journal = leases.leases()["journal"]
    with api.create_file(path, w32.GENERIC_READ | w32.GENERIC_WRITE, w32.CREATE_NEW, share=0) as f:
        f.write(b"abc")
        assert leases.leases()["journal"] == journal, "the file was made by the daemon, not in the lease"
        other = textwrap.dedent(f"""
            import sys
            from wincontainers import Host
            from wincontainers._native import win32 as w32
            api = Host.open(sim={leases.profile.name!r}, root={str(leases.root)!r}).win32
            try:
                api.create_file({path!r}.replace("Locked", "LOCKED"), w32.GENERIC_READ, w32.OPEN_EXISTING,
                                share=w32.FILE_SHARE_ALL)
            except w32.SharingViolation:
                print("sharing violation")
            api.create_file({w32.long_path(top / "theirs.txt")!r}, w32.GENERIC_WRITE, w32.CREATE_NEW).close()
        """)
        result = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["sharing", "violation"]
        assert leases.leases()["adopted"] >= 1
    # The lease is over: the daemon decides now, and knows what the other process made.
    with pytest.raises(w32.AlreadyExists):
        api.create_file(w32.long_path(top / "THEIRS.TXT"), w32.GENERIC_WRITE, w32.CREATE_NEW)
    with api.create_file(path, w32.GENERIC_READ, w32.OPEN_EXISTING, share=0) as f:
        assert f.read() == b"abc"
    remove_tree(api, top)
    assert api.attributes(w32.long_path(top)) is None


@pytest.mark.simulator("the simulator's write leases")
def test_names_deletions_and_refusals_in_a_lease_are_the_daemons(host: Host, leases: SimulatedHost,
                                                                tmp_path: Path) -> None:
    api = host.win32
    api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege")
    for enabled, name in ((True, "with"), (False, "without")):
        leases.leases(enabled=enabled)
        top = tmp_path / name
        api.create_directory(w32.long_path(top))
        api.create_directory(w32.long_path(top / "Dir"))
        with api.create_file(w32.long_path(top / "Dir" / "A.txt"), w32.GENERIC_WRITE, w32.CREATE_NEW) as f:
            f.write(b"x")
        with pytest.raises(w32.AlreadyExists):  # names ignore case
            api.create_file(w32.long_path(top / "dir" / "a.TXT"), w32.GENERIC_WRITE, w32.CREATE_NEW)
        with pytest.raises(w32.AlreadyExists):
            api.create_directory(w32.long_path(top / "DIR"))
        with api.open_for_backup(w32.long_path(top / "Dir"), w32.DELETE, share=w32.FILE_SHARE_ALL) as d:
            with pytest.raises(w32.DirectoryNotEmpty):
                d.delete_on_close()
        with api.create_file(w32.long_path(top / "ro.txt"), w32.GENERIC_WRITE, w32.CREATE_NEW) as f:
            f.set_basic_info(attributes=0x1)
        with pytest.raises(w32.AccessDenied):  # Windows refuses to delete a read-only file on close
            api.open_for_backup(w32.long_path(top / "ro.txt"), w32.DELETE, share=w32.FILE_SHARE_ALL,
                                flags=w32.FILE_FLAG_DELETE_ON_CLOSE)
        api.open_for_backup(w32.long_path(top / "Dir" / "A.txt"), w32.DELETE, share=w32.FILE_SHARE_ALL,
                            flags=w32.FILE_FLAG_DELETE_ON_CLOSE).close()
        assert [e.name for e in api.listdir(w32.long_path(top / "Dir"))] == []
        remove_tree(api, top)
        assert api.attributes(w32.long_path(top)) is None
        assert not top.exists()


@pytest.mark.simulator("the simulator's write leases")
def test_a_killed_holder_leaves_no_lease_and_no_handle(host: Host, leases: SimulatedHost, tmp_path: Path) -> None:
    top = tmp_path / "killed"
    holder = textwrap.dedent(f"""
        import sys, time
        from wincontainers import Host
        from wincontainers._native import win32 as w32
        api = Host.open(sim={leases.profile.name!r}, root={str(leases.root)!r}).win32
        api.create_directory({w32.long_path(top)!r})
        f = api.create_file({w32.long_path(top / "open.txt")!r}, w32.GENERIC_WRITE, w32.CREATE_NEW, share=0)
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert any(lease["pid"] == proc.pid for lease in leases.leases()["active"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for _ in range(100):  # the daemon sees the connections go
        if not any(lease["pid"] == proc.pid for lease in leases.leases()["active"]):
            break
        time.sleep(0.05)
    assert not any(lease["pid"] == proc.pid for lease in leases.leases()["active"])
    api = host.win32
    with api.create_file(w32.long_path(top / "open.txt"), w32.GENERIC_WRITE, w32.OPEN_EXISTING, share=0):
        pass  # nobody holds it
    remove_tree(api, top)


@pytest.mark.simulator("the simulator's write leases")
def test_layers_import_and_export_the_same_with_leases_and_without(host: Host, leases: SimulatedHost) -> None:
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    try:
        @settings(max_examples=int(os.environ.get("WC_LAYER_EXAMPLES", "12")), deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])
        @given(tree=trees())
        def same(tree: list[Entry]) -> None:
            tar = tar_of(tree)
            exports = []
            for enabled in (True, False):
                leases.leases(enabled=enabled)
                stats = leases.leases()
                layer = host.layers.import_tar(io.BytesIO(tar), parents=[base])
                try:
                    out = io.BytesIO()
                    host.layers.export_tar(layer, out)
                    exports.append(out.getvalue())
                finally:
                    host.layers.destroy(layer)
                after = leases.leases()
                if enabled:
                    assert after["granted"] > stats["granted"] and after["journal"] > stats["journal"]
                    if all(entry.name.isascii() for entry, _ in tree):  # else the listing ends the lease
                        assert after["listings"] > stats["listings"], "the export folder was not known again"
                else:
                    assert after["granted"] == stats["granted"]
            assert hashlib.sha256(exports[0]).hexdigest() == hashlib.sha256(exports[1]).hexdigest()

        same()
    finally:
        leases.leases(enabled=True)
        host.layers.destroy(base)


@pytest.mark.simulator("the simulator's write leases")
def test_a_forked_child_does_not_work_in_its_parents_lease(host: Host, leases: SimulatedHost, tmp_path: Path) -> None:
    api = host.win32
    top = tmp_path / "forked"
    api.create_directory(w32.long_path(top))
    api.create_file(w32.long_path(top / "parent.txt"), w32.GENERIC_WRITE, w32.CREATE_NEW).close()
    before = leases.leases()
    pid = os.fork()
    if pid == 0:  # the child: its call is another process's, so the daemon decides (and settles the lease)
        code = 0
        try:
            api.create_file(w32.long_path(top / "child.txt"), w32.GENERIC_WRITE, w32.CREATE_NEW).close()
            try:
                api.create_file(w32.long_path(top / "PARENT.TXT"), w32.GENERIC_WRITE, w32.CREATE_NEW)
                code = 3
            except w32.AlreadyExists:
                pass
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    after = leases.leases()
    assert after["settled"] > before["settled"], "the child's call did not settle the parent's lease"
    with pytest.raises(w32.AlreadyExists):  # the parent now asks the daemon, which knows the child's file
        api.create_file(w32.long_path(top / "Child.txt"), w32.GENERIC_WRITE, w32.CREATE_NEW)
    remove_tree(api, top)


@pytest.mark.simulator("the simulator's write leases")
def test_threads_working_in_a_lease_while_another_process_settles_it(host: Host, leases: SimulatedHost,
                                                                      tmp_path: Path) -> None:
    import threading

    api = host.win32
    top = tmp_path / "busy"
    api.create_directory(w32.long_path(top))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            api.create_directory(w32.long_path(top / f"t{n}"))
            for i in range(150):
                with api.create_file(w32.long_path(top / f"t{n}" / f"f{i}.bin"), w32.GENERIC_WRITE,
                                     w32.CREATE_NEW) as f:
                    f.write(bytes([n]) * i)
                if i % 3 == 0:
                    api.delete_for_backup(w32.long_path(top / f"t{n}" / f"f{i}.bin"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    lister = textwrap.dedent(f"""
        from wincontainers import Host
        from wincontainers._native import win32 as w32
        api = Host.open(sim={leases.profile.name!r}, root={str(leases.root)!r}).win32
        for _ in range(20):
            api.listdir({w32.long_path(top)!r})
    """)
    before = leases.leases()["settled"]
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    result = subprocess.run([sys.executable, "-c", lister], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    for t in threads:
        t.join()
    assert not errors, errors
    assert result.returncode == 0, result.stderr
    assert leases.leases()["settled"] > before, "the other process's listing did not settle the lease"
    seen = snapshot(leases, top)
    for n in range(4):
        names = {name.split("/")[1]: info for name, info in seen.items() if name.startswith(f"t{n}/")}
        assert sorted(names) == sorted(f"f{i}.bin" for i in range(150) if i % 3), n
        assert all(names[f"f{i}.bin"][4] == i for i in range(150) if i % 3)  # sizes
    remove_tree(api, top)


@pytest.mark.simulator("the simulator's write leases")
def test_deleting_what_was_just_written_keeps_the_lease(host: Host, leases: SimulatedHost, tmp_path: Path) -> None:
    """A file written without times (the daemon keeps its times) is deleted in the lease: a
    DELETE-only handle reads no times, so the daemon need not be asked, and the lease goes on
    (asking it once ended the lease, and every later call in the folder was a round trip)."""
    api = host.win32
    top = tmp_path / "written"
    api.create_directory(w32.long_path(top))
    for i in range(20):
        with api.create_file(w32.long_path(top / f"f{i}.bin"), w32.GENERIC_WRITE, w32.CREATE_NEW) as f:
            f.write(b"x" * i)
    before = leases.leases()
    for i in range(0, 20, 2):
        api.delete_for_backup(w32.long_path(top / f"f{i}.bin"))
    after = leases.leases()
    assert after["settled"] == before["settled"], "a delete of a written file went to the daemon"
    assert any(lease["folder"] == str(top) for lease in after["active"])
    seen = snapshot(leases, top)  # another process: settles, and sees the deletions
    assert sorted(seen) == sorted(f"f{i}.bin" for i in range(1, 20, 2))
    remove_tree(api, top)


@pytest.mark.simulator("the simulator's write leases")
def test_a_handle_only_to_delete_answers_queries_as_the_daemons_would(host: Host, leases: SimulatedHost,
                                                                     tmp_path: Path) -> None:
    """A DELETE-only, delete-on-close handle in a lease opens nothing until asked (a file
    deleted that way costs no open, stat and close): asked its size, links and id, it answers
    as one the daemon made, for a file with times set and one without; closed, the file goes."""

    def views(enabled: bool) -> list[tuple[Any, ...]]:
        leases.leases(enabled=enabled)
        api = host.win32
        top = tmp_path / f"deferred-{enabled}"
        api.create_directory(w32.long_path(top))
        folder = LayerFolder(api, top)
        ids = {}
        for name, size in (("plain.bin", 300), ("timed.bin", 5)):
            with api.create_file(w32.long_path(top / name), w32.GENERIC_WRITE, w32.CREATE_NEW) as f:
                f.write(name[0].encode() * size)
                ids[name] = f.file_id()  # asked of the handle that made it: no other open settles
                if name == "timed.bin":  # its times are the lease's to give (set on the handle)
                    f.set_basic_info(T)
        before = leases.leases()["settled"]
        seen: list[tuple[Any, ...]] = []
        for name in ("plain.bin", "timed.bin"):
            doomed = api.open_for_backup(w32.long_path(top / name), w32.DELETE, share=w32.FILE_SHARE_ALL,
                                         flags=w32.FILE_FLAG_DELETE_ON_CLOSE)
            with doomed:
                size, links, directory = doomed.standard_info()
                seen.append((name, size, links, directory, doomed.file_id() == ids[name]))
            assert not folder.exists(name), f"{name} outlived its delete-on-close handle"
        if enabled:
            after = leases.leases()
            assert after["settled"] == before, "a delete-only handle went to the daemon"
            assert any(lease["folder"] == str(top) for lease in after["active"])
        remove_tree(api, top)
        return seen

    try:
        local, daemon = views(True), views(False)
    finally:
        leases.leases(enabled=True)
    assert local == daemon == [("plain.bin", 300, 1, False, True), ("timed.bin", 5, 1, False, True)]


@pytest.mark.simulator("the simulator's write leases")
def test_what_a_killed_writer_put_in_its_journal_ring_is_applied(host: Host, leases: SimulatedHost,
                                                                 tmp_path: Path) -> None:
    """kernel32 puts its journal in memory it shares with the daemon (leases.JournalRing), and
    nobody asks for it before the writer is killed: the daemon takes it when the connection
    ends, so the files keep every time, attribute and descriptor their handles set."""
    api = host.win32
    api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
    top = tmp_path / "killed-writer"
    writer = textwrap.dedent(f"""
        import time
        from wincontainers import Host
        from wincontainers._native import win32 as w32
        from tests.test_leases import fill
        api = Host.open(sim={leases.profile.name!r}, root={str(leases.root)!r}).win32
        api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
        api.create_directory({w32.long_path(top)!r})
        fill(api, {str(top)!r})
        print("ready", flush=True)
        time.sleep(600)
    """)
    before = leases.leases()  # (asking settles: not between the writer's work and its end)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen = snapshot(leases, top)
    after = leases.leases()
    assert after["ring"] >= before["ring"] + 6, "the writer's journal did not go through its ring"

    leases.leases(enabled=False)
    try:
        plain = tmp_path / "plain"
        api.create_directory(w32.long_path(plain))
        fill(api, plain)
        assert seen == snapshot(leases, plain)
    finally:
        leases.leases(enabled=True)
    remove_tree(api, top)
    remove_tree(api, plain)


@pytest.mark.simulator("the simulator's write leases")
def test_a_journal_larger_than_its_ring(host: Host, leases: SimulatedHost, tmp_path: Path) -> None:
    """More journal than the ring holds (1 MiB): it wraps, the writer rings and waits, and
    another process then finds every file with the times its handle set, in order."""
    api = host.win32
    top = tmp_path / "many"
    api.create_directory(w32.long_path(top))
    count, pad = 4000, "x" * 230  # about 330 bytes of journal per file
    before = leases.leases()
    for i in range(count):
        with api.create_file(w32.long_path(top / f"{i:05d}{pad}"), w32.GENERIC_WRITE, w32.CREATE_NEW) as f:
            f.write(b"y" * (i % 7))
            f.set_basic_info((T[0] + i, T[1] + i, T[2] + i, T[3] + i))
    listing = textwrap.dedent(f"""
        import json
        from wincontainers import Host
        from wincontainers._native import win32 as w32
        api = Host.open(sim={leases.profile.name!r}, root={str(leases.root)!r}).win32
        print(json.dumps([[e.name, e.size, e.write] for e in api.listdir(w32.long_path({str(top)!r}))]))
    """)
    result = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    seen = sorted(json.loads(result.stdout))
    assert seen == [[f"{i:05d}{pad}", i % 7, T[2] + i] for i in range(count)]
    assert leases.leases()["ring"] >= before["ring"] + count
    remove_tree(api, top)


@pytest.mark.simulator("the simulator's write leases")
def test_a_leased_folder_is_gone_when_its_deletion_returns(host: Host, leases: SimulatedHost, tmp_path: Path) -> None:
    """A folder is gone when the CloseHandle that deletes it returns, as on Windows, to anyone
    looking (the host's own listing included), whether its handle is the daemon's (remove_tree
    asks the folder's attributes, which settles the lease) or kernel32's own in the lease (the
    daemon removes the leased folder, which holds its metadata, from the journal entry: the
    close waits for the ring to be taken)."""
    api = host.win32
    api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
    for i in range(5):
        top = tmp_path / f"gone{i}"
        api.create_directory(w32.long_path(top))
        fill(api, top)
        remove_tree(api, top)
        assert not top.exists(), f"{top} outlived its deletion"
    for i in range(5):
        top = tmp_path / f"local{i}"
        api.create_directory(w32.long_path(top))
        before = leases.leases()
        with api.open_for_backup(w32.long_path(top), w32.DELETE, share=w32.FILE_SHARE_ALL) as f:
            f.delete_on_close()
        assert not top.exists(), f"{top} outlived its deletion"
        after = leases.leases()
        assert after["settled"] == before["settled"] and after["ring"] > before["ring"], "not the lease's way"


@pytest.mark.simulator("stops and starts the simulated service")
def test_leases_after_the_service_restarted(host: Host, leases: SimulatedHost, tmp_path: Path) -> None:
    """A restarted service knows nothing of this process's journal ring or leases: the next
    folder made finds the journal's connection ended, and works in a lease of the new service,
    whose ring is the one taken."""
    api = host.win32
    api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
    old = tmp_path / "old"
    api.create_directory(w32.long_path(old))
    fill(api, old)
    leases.stop()
    leases.start()
    api._privileges.clear()  # the new service's token of this process starts with none enabled
    api.enable_privileges("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
    new = tmp_path / "new"
    before, after = made_and_filled(api, leases, new)
    assert after["granted"] > before["granted"] and after["ring"] >= before["ring"] + 6
    assert sorted(snapshot(leases, new)) == ["Sub", "Sub/Deeper", "Sub/Deeper/ro.bin", "Sub/File.txt", "top.dat"]
    remove_tree(api, new)
    assert not new.exists()
