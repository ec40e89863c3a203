"""What a real Windows host refuses, the simulated one refuses too, and the library copes.

Each test here stands for a defect a review against hcsshim found (issue 8): the library's one
Win32 code path runs against the simulator's kernel32/advapi32, and where the naive call a
former version made would fail on Windows, the test shows the simulator failing it the same way
and the library's call succeeding.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wincontainers import Host, errors
from wincontainers._native import win32 as w32
from wincontainers._native.layerfs import remove_tree
from wincontainers.layerfile import EntryKind, LayerEntry, LayerReader
from wincontainers.layerfile.security import SecurityDescriptor
from tests.conftest import ROOT, SimulatedHost
from tests.test_layers import as_exported, base_layer, tar_of, view

T = dict(creation_time=131_000_000_000_000_000, last_access_time=131_000_000_000_001_000,
         last_write_time=131_000_000_000_002_000, change_time=131_000_000_000_003_000)
TRUSTED_INSTALLER = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"
#: owned by TrustedInstaller, which alone may write; administrators and SYSTEM only read
PROTECTED_SD = SecurityDescriptor.from_sddl(
    f"O:{TRUSTED_INSTALLER}G:{TRUSTED_INSTALLER}D:PAI(A;;FA;;;{TRUSTED_INSTALLER})(A;;0x1200a9;;;BA)"
    "(A;;0x1200a9;;;SY)").to_bytes()


def entries_of(tar: bytes) -> dict[str, tuple[LayerEntry, bytes]]:
    return {e.name: (e, d.read() if d is not None else b"") for e, d in LayerReader(io.BytesIO(tar))}


def import_bytes(host: Host, tar: bytes, tmp_path: Path, name: str, **kwargs: Any) -> Any:
    path = tmp_path / name
    path.write_bytes(tar)
    return host.layers.import_tar(str(path), **kwargs)


def export_bytes(host: Host, layer: Any, tmp_path: Path, name: str) -> bytes:
    out = tmp_path / name
    host.layers.export_tar(layer, str(out))
    return out.read_bytes()


# -- defect 1: handles are 64 bits, privileges really get enabled ---------------------------------


def test_privileges_are_really_enabled(host: Host) -> None:
    api = w32.Win32(host.binding.system_dir)  # a fresh token view: nothing asked yet
    ffi = w32._FFI
    current = api.k32.GetCurrentProcess()
    assert int(ffi.cast("intptr_t", current)) == -1, "the pseudo handle is -1 in all 64 bits"
    token = ffi.new("HANDLE *")
    # What a ctypes call without restype passed on: the pseudo handle cut to 32 bits.
    assert not api.advapi.OpenProcessToken(ffi.cast("HANDLE", 0xFFFFFFFF), w32.TOKEN_QUERY, token)
    assert api.last_error() == 6  # ERROR_INVALID_HANDLE: nothing enabled, and the old code never noticed

    wanted = ("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
    assert api.enable_privileges(*wanted) == {name: True for name in wanted}
    enabled = token_privileges(api)
    for name in wanted:
        assert enabled[name], f"{name} is not enabled in the token: {enabled}"


def token_privileges(api: w32.Win32) -> dict[str, bool]:
    """TokenPrivileges of the process token: name -> enabled."""
    ffi = w32._FFI
    token = api._token(w32.TOKEN_QUERY)
    try:
        size = ffi.new("DWORD *")
        api.advapi.GetTokenInformation(token, 3, ffi.NULL, 0, size)
        buf = ffi.new("uint8_t[]", int(size[0]))
        assert api.advapi.GetTokenInformation(token, 3, buf, int(size[0]), size), api.last_error()
        state = ffi.cast("TOKEN_PRIVILEGES *", buf)
        each = ffi.cast("LUID_AND_ATTRIBUTES *", ffi.addressof(state.Privileges[0]))  # ANYSIZE_ARRAY
        out = {}
        for wanted in ("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege", "SeShutdownPrivilege"):
            luid = ffi.new("LUID *")
            assert api.advapi.LookupPrivilegeValueW(ffi.NULL, wanted, luid)
            for i in range(int(state.PrivilegeCount)):
                entry = each[i]
                if (entry.Luid.LowPart, entry.Luid.HighPart) == (luid.LowPart, luid.HighPart):
                    out[wanted] = bool(entry.Attributes & w32.SE_PRIVILEGE_ENABLED)
        return out
    finally:
        api.k32.CloseHandle(token)


def test_a_failed_open_names_the_real_error(host: Host, tmp_path: Path) -> None:
    missing = w32.long_path(tmp_path / "no such folder" / "file.txt")
    with pytest.raises(w32.PathNotFound) as caught:
        host.win32.create_file(missing, w32.GENERIC_READ, w32.OPEN_EXISTING)
    text = str(caught.value)
    assert "CreateFileW" in text and "no such folder" in text and "ERROR_PATH_NOT_FOUND" in text
    assert "handle is invalid" not in text


@pytest.mark.simulator("a simulated host of its own")
def test_a_standard_user_is_told_which_privileges_layer_import_needs(tmp_path: Path) -> None:
    sim = SimulatedHost("ws2019", tmp_path / "sim", user="standard").start()
    try:
        tar = tmp_path / "base.tar"
        tar.write_bytes(base_layer())
        result = run_cli(sim, "layer", "import", "--base", str(tar))
        assert result.returncode != 0
        err = result.stderr.decode()
        assert "SeBackupPrivilege" in err and "SeRestorePrivilege" in err, err
        assert "handle is invalid" not in err and "Traceback" not in err, err
        assert "elevated" in err
        assert not any(p.name for p in (sim.root / "wincontainers" / "layers").iterdir()), "half a layer left"
    finally:
        sim.stop()


def run_cli(sim: SimulatedHost, *args: str, env: Any = None) -> "subprocess.CompletedProcess[bytes]":
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "wincontainers", "--sim", sim.profile.name, "--root", str(sim.root),
                           *args], capture_output=True, timeout=180, env=environ)


# -- defect 2: a base layer's junctions are entries, never followed --------------------------------


@pytest.mark.simulator("the simulator's list of its own internal names")
def test_a_base_layer_exports_exactly_its_own_files(host: Host, tmp_path: Path) -> None:
    base = Path(host.base_images()[0].path)
    # Followed, the junctions lead to the host's own C:\Users and C:\ProgramData.
    through = host.win32.listdir(w32.long_path(base / "Files" / "Documents and Settings"))
    assert "Administrator" in {e.name for e in through}, "the simulated junction does not lead to the host's folder"

    from wincontainers.sim import ntfs

    tar = export_bytes(host, str(base), tmp_path, "base.tar")
    exported = entries_of(tar)
    own = set()
    for folder, dirs, files in os.walk(base / "Files"):
        for name in dirs + files:
            if not ntfs.is_internal(name):
                own.add(os.path.relpath(os.path.join(folder, name), base).replace(os.sep, "/"))
    got = {n for n in exported if n.startswith("Files/")}
    assert got == own, f"extra: {sorted(got - own)[:5]} missing: {sorted(own - got)[:5]}"
    for name, target in (("Files/Documents and Settings", "C:\\Users"), ("Files/Users/All Users", "C:\\ProgramData"),
                         ("Files/ProgramData/Application Data", "C:\\ProgramData")):
        entry = exported[name][0]
        assert entry.kind is EntryKind.JUNCTION and entry.link_target == target, entry
    assert not any("host-only" in n or "NTUSER.DAT" in n for n in exported)


# -- defect 3: ExportLayer wants a folder that exists --------------------------------------------


def test_export_into_a_missing_folder_is_refused_and_the_library_makes_it_first(host: Host, tmp_path: Path) -> None:
    base = host.base_images()[0]
    with pytest.raises(errors.HcsError) as caught:
        host.driver.export_layer(str(base.path), str(tmp_path / "not-made"), [])
    assert caught.value.hresult in (0x80070003, 0x80070002), caught.value
    assert not (tmp_path / "not-made").exists()
    # The library's export (which makes the folder first) works, for a base and for a sandbox:
    assert "Files/Windows" in entries_of(export_bytes(host, str(base.path), tmp_path, "ok.tar"))
    with host.containers.create("windowsservercore", 'cmd /S /C "echo x> made.txt"', workdir="C:\\") as c:
        c.start()
        c.wait(60)
        assert "Files/made.txt" in entries_of(export_bytes(host, c.id, tmp_path, "changes.tar"))


# -- defect 4: hard links replace the placeholders ImportLayer left ---------------------------------


def test_a_diff_layer_replacing_parent_files_with_hard_links(host: Host, tmp_path: Path) -> None:
    base = import_bytes(host, base_layer(), tmp_path, "base.tar", base=True)
    diff_entries = [
        (LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **T), None),
        (LayerEntry("Files/new.txt", EntryKind.FILE, size=3, attributes=0x20, **T), b"new"),
        # keep.txt and old.txt are the base's: this layer makes them links to new.txt
        (LayerEntry("Files/keep.txt", EntryKind.HARDLINK, attributes=0x20, link_target="Files/new.txt", **T), None),
        (LayerEntry("Files/old.txt", EntryKind.HARDLINK, attributes=0x20, link_target="Files/new.txt", **T), None),
        (LayerEntry("Hives", EntryKind.DIRECTORY, attributes=0x10, **T), None),
        (LayerEntry("Hives/System_Delta", EntryKind.FILE, size=4, attributes=0x20, **T), b"regf"),
    ]
    tar = tar_of(diff_entries)
    diff = import_bytes(host, tar, tmp_path, "diff.tar", parents=[base.id])
    try:
        # ImportLayer left placeholders under the names: a link made over them as is fails.
        with pytest.raises(w32.AlreadyExists):
            host.win32.create_hard_link(w32.long_path(diff.path / "Files" / "keep.txt"),
                                        w32.long_path(diff.path / "Files" / "new.txt"))
        got = view(export_bytes(host, diff, tmp_path, "out.tar"))
        want = view(as_exported(tar))
        assert got["Files/keep.txt"][1] == b"new" and got["Files/old.txt"][1] == b"new"
        assert got["Files/keep.txt"][8] == frozenset({"Files/keep.txt", "Files/old.txt", "Files/new.txt"})
        assert {n: v for n, v in got.items() if n.startswith("Files/")} == \
            {n: v for n, v in want.items() if n.startswith("Files/")}
    finally:
        host.layers.destroy(diff)
        host.layers.destroy(base)


# -- defect 5: read-only files and junctions are deleted, targets untouched ------------------------


@pytest.mark.simulator("the simulator's own files")
def test_read_only_files_and_junctions_are_removed(host: Host, sim: SimulatedHost, tmp_path: Path) -> None:
    tree = tar_of([
        (LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **T), None),
        (LayerEntry("Files/locked.txt", EntryKind.FILE, size=2, attributes=0x21, **T), b"ro"),
        (LayerEntry("Files/dir", EntryKind.DIRECTORY, attributes=0x11, **T), None),
        (LayerEntry("Files/dir/also.txt", EntryKind.FILE, size=2, attributes=0x23, **T), b"ro"),
        (LayerEntry("Files/to-data", EntryKind.JUNCTION, attributes=0x410, link_target="C:\\ProgramData", **T), None),
        (LayerEntry("Files/to-users", EntryKind.SYMLINK, attributes=0x410, link_target="C:\\Users", **T), None),
    ])
    layer = import_bytes(host, tree, tmp_path, "tree.tar", base=True)
    files = layer.path / "Files"
    with pytest.raises(w32.AccessDenied):  # what DeleteFileW alone does with a read-only file
        host.win32.delete_file(w32.long_path(files / "locked.txt"))
    with pytest.raises(w32.AccessDenied):  # ... and with a directory junction
        host.win32.delete_file(w32.long_path(files / "to-data"))
    host_data = sorted(p.name for p in (sim.root / "ProgramData").rglob("*"))
    remove_tree(host.win32, layer.path)
    assert host.win32.attributes(w32.long_path(layer.path)) is None
    assert sorted(p.name for p in (sim.root / "ProgramData").rglob("*")) == host_data, "followed a junction"
    assert (sim.root / "Users" / "Administrator" / "NTUSER.DAT").exists()


# -- defect 6: alternate data streams of a protected base file ---------------------------------------


def test_streams_of_a_trusted_installer_file_in_a_base_layer(host: Host, tmp_path: Path) -> None:
    entries = [
        (LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10, **T), None),
        (LayerEntry("Files/Windows", EntryKind.DIRECTORY, attributes=0x10, **T), None),
        (LayerEntry("Files/Windows/kernel.dll", EntryKind.FILE, size=6, attributes=0x20, security=PROTECTED_SD, **T),
         b"kernel"),
        (LayerEntry("Files/Windows/kernel.dll:Zone.Identifier", EntryKind.STREAM, size=9,
                    last_access_time=T["last_access_time"], last_write_time=T["last_write_time"],
                    change_time=T["change_time"]), b"[ZoneId]\n"),
    ]
    tar = tar_of(entries)
    layer = import_bytes(host, tar, tmp_path, "protected.tar", base=True)
    try:
        target = w32.long_path(layer.path / "Files" / "Windows" / "kernel.dll") + ":extra"
        with pytest.raises(w32.AccessDenied):  # open(path:stream) without backup intent, as before
            host.win32.create_file(target, w32.GENERIC_WRITE, w32.OPEN_ALWAYS)
        got = view(export_bytes(host, layer, tmp_path, "out.tar"))
        want = view(as_exported(tar))
        assert got["Files/Windows/kernel.dll"] == want["Files/Windows/kernel.dll"]
        assert got["Files/Windows/kernel.dll"][7] == [("Zone.Identifier", b"[ZoneId]\n")]
    finally:
        host.layers.destroy(layer)


# -- defect 7: a replace waits for a reader instead of failing -------------------------------------


def test_a_record_is_replaced_while_another_handle_reads_it(host: Host) -> None:
    path = host.state_dir / "containers" / "probe.json"
    host.files.write(path, b'{"v": 1}')
    reader = host.win32.create_file(w32.long_path(path), w32.GENERIC_READ, w32.OPEN_EXISTING,
                                    share=w32.FILE_SHARE_READ)  # as Python's open() shares on Windows
    other = w32.long_path(path.with_name("other.json"))
    host.files.write(path.with_name("other.json"), b"{}")
    with pytest.raises(w32.AccessDenied):  # a plain replace (os.replace) fails while it is open
        host.win32.move(other, w32.long_path(path), replace=True)
    timer = threading.Timer(0.3, reader.close)
    timer.start()
    started = time.monotonic()
    host.files.write(path, b'{"v": 2}')
    timer.join()
    assert time.monotonic() - started >= 0.25, "the write did not wait for the reader"
    assert host.files.read_json(path) == {"v": 2}
    # only this record's temporary files: other containers' records may be written meanwhile
    assert not [e.name for e in host.files.entries(path.parent) if e.name.startswith(".probe.json.")]
    host.files.remove(path)
    host.files.remove(other)


def test_a_replace_gives_up_after_a_while_with_a_typed_error(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    path = host.state_dir / "containers" / "held.json"
    host.files.write(path, b"{}")
    monkeypatch.setattr(w32, "retry_while_shared",
                        lambda action, attempts=3, delay=0.01: _original_retry(action, attempts=attempts, delay=delay))
    with host.win32.create_file(w32.long_path(path), w32.GENERIC_READ, w32.OPEN_EXISTING, share=w32.FILE_SHARE_READ):
        with pytest.raises(w32.AccessDenied) as caught:
            host.files.write(path, b'{"x": 1}')
    assert "MoveFileExW" in str(caught.value)
    assert host.files.read_json(path) == {}
    assert not any(e.name.startswith(".held.json.") for e in host.files.entries(path.parent)), "temporary file left"
    host.files.remove(path)


_original_retry = w32.retry_while_shared


# -- defect 8: another account's live process is alive ---------------------------------------------


@pytest.mark.simulator("marks a process as another account's")
def test_another_accounts_process_counts_as_alive(host: Host, sim: SimulatedHost) -> None:
    store = host.images
    digest = store.put_blob(b"held by a lease of another account's process " + os.urandom(8))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sim.mark_foreign(other.pid)
        handle = host.win32.k32.OpenProcess(w32.PROCESS_QUERY_LIMITED_INFORMATION, 0, other.pid)
        assert handle == w32._FFI.NULL and host.win32.last_error() == 5  # ERROR_ACCESS_DENIED
        assert host.win32.process_alive(other.pid)
        lease = store.leases_dir / f"{other.pid}-0-0.json"
        host.files.write(lease, json.dumps({"objects": [digest], "folders": []}).encode())
        store.gc()
        assert store.has_blob(digest), "the live lease of another account's process was collected"
    finally:
        other.kill()
        other.wait()
    assert not host.win32.process_alive(other.pid)
    store.gc()
    assert not store.has_blob(digest)
    assert not host.files.exists(store.leases_dir / f"{other.pid}-0-0.json")


# -- defect 9: deep paths are cleaned ---------------------------------------------------------------


def test_deep_leftovers_are_removed(host: Host) -> None:
    leftover = host.layers_root / ".spool-999999999-deep"
    folder = leftover
    host.win32.create_directory(w32.long_path(folder))
    while len(str(folder)) < 400:
        folder = folder / ("d" * 40)
        host.win32.create_directory(w32.long_path(folder))
    with host.win32.create_file(w32.long_path(folder / "f.txt"), w32.GENERIC_WRITE, w32.CREATE_NEW) as f:
        f.write(b"deep")
    host.win32.set_attributes(w32.long_path(folder / "f.txt"), w32.FILE_ATTRIBUTE_READONLY)
    with pytest.raises(w32.Win32Error) as caught:  # without \\?\ Windows refuses the path
        host.win32.attributes(str(folder / "f.txt"))
    assert caught.value.code == 206  # ERROR_FILENAME_EXCED_RANGE
    assert leftover in host.layers.leftovers()
    assert leftover in host.layers.cleanup()
    assert host.win32.attributes(w32.long_path(leftover)) is None


# -- defect 10: state files are UTF-8 whatever the locale -------------------------------------------


@pytest.mark.simulator("the simulator's own files")
def test_non_ascii_labels_survive_the_store_under_a_c_locale(sim: SimulatedHost, profile: str) -> None:
    labels = {"owner": "Zoë Ångström", "team": "日本語", "emoji": "🐳"}
    note = "crème brûlée"
    # The scripts are ASCII (a C locale cannot pass anything else on a command line).
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": "ascii:backslashreplace"}
    write = f"""
from wincontainers import Host
from wincontainers.build import commit
host = Host.open(sim={profile!r}, root={str(sim.root)!r})
c = host.containers.create("windowsservercore", 'cmd /S /C "echo hi"', name="labels-c-locale", labels={labels!a})
c.start()
c.wait(60)
image = commit(c, "labels:c", changes=[{('LABEL note="' + note + '"')!a}])
print(image.id)
"""
    read = f"""
import json
from wincontainers import Host
host = Host.open(sim={profile!r}, root={str(sim.root)!r})
c = host.containers.get("labels-c-locale")
image = host.images.get("labels:c")
print(json.dumps({{"container": c.inspect()["Config"]["Labels"], "image": image.config["config"]["Labels"]}}))
c.remove(force=True)
host.images.remove("labels:c")
"""
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    first = subprocess.run([sys.executable, "-c", write], capture_output=True, timeout=180, env=environ)
    assert first.returncode == 0, first.stderr.decode()
    second = subprocess.run([sys.executable, "-c", read], capture_output=True, timeout=180, env=environ)
    assert second.returncode == 0, second.stderr.decode()
    doc = json.loads(second.stdout.decode())
    assert doc["container"] == labels
    assert doc["image"]["note"] == note


# -- 11: smaller ones -------------------------------------------------------------------------------


@pytest.mark.simulator("the documents HCS was given")
def test_flushes_are_skipped_only_on_the_first_boot(host: Host, sim: SimulatedHost) -> None:
    sim.documents(clear=True)
    with host.containers.create("windowsservercore") as c:
        c.start()
        c.stop(timeout=5)
        c.start()
    docs = [d["documents"][0] for d in sim.documents("CreateComputeSystem") + sim.documents("HcsCreateComputeSystem")
            if d["documents"]]
    assert len(docs) == 2, docs
    if host.generation == 3:  # schema 2.1 has no such field: neither document may carry it
        assert not any("IgnoreFlushesDuringBoot" in json.dumps(d) for d in docs)
        return
    assert docs[0].get("IgnoreFlushesDuringBoot") is True
    assert "IgnoreFlushesDuringBoot" not in docs[1]


def test_the_hives_folder_metadata_travels_in_its_wcidirs_file(host: Host, tmp_path: Path) -> None:
    from wincontainers._native.layerfs import LayerFolder
    from wincontainers.layers.transcode import WCIDIRS, TransportWriter

    staging = LayerFolder(host.win32, tmp_path / "staging", create=True)
    writer = TransportWriter(staging)
    writer.add(LayerEntry("Hives", EntryKind.DIRECTORY, attributes=0x10, **T), None)
    writer.add(LayerEntry("Hives/System_Delta", EntryKind.FILE, size=4, attributes=0x20, **T), io.BytesIO(b"regf"))
    writer.close()
    marker = w32.long_path(tmp_path / "staging" / ("Hives" + WCIDIRS))
    with host.win32.open_for_backup(marker, w32.GENERIC_READ) as f:
        info = f.basic_info()
    assert info.times == (T["creation_time"], T["last_access_time"], T["last_write_time"], T["change_time"])
    remove_tree(host.win32, tmp_path / "staging")


# -- the simulated host is strict ---------------------------------------------------------------------


@pytest.mark.simulator("simulated hosts of several profiles")
def test_an_image_of_another_build_is_refused(host: Host, sim_roots: dict[str, SimulatedHost], profile: str,
                                              tmp_path: Path) -> None:
    other = next(p for p in sim_roots if p != profile)
    with Host.open(sim=other, root=sim_roots[other].start().root) as foreign:
        base = foreign.base_images()[0]
        foreign.layers.export_tar(str(base.path), str(tmp_path / "foreign-base.tar"))
    layer = host.layers.import_tar(str(tmp_path / "foreign-base.tar"), base=True)
    containers = [c.id for c in host.containers.list(all=True)]
    layers = [entry.id for entry in host.layers.list()]
    try:
        with pytest.raises(errors.HcsError) as caught:
            host.containers.create([str(layer.path)])
        # vmcompute's ERROR_VMCOMPUTE_IMAGE_MISMATCH; computecore answers HCS_E_IMAGE_MISMATCH
        assert caught.value.hresult == (0x80370101 if host.generation == 3 else 0xC0370101), caught.value
        assert "os.version" in str(caught.value) and "Hyper-V" in str(caught.value)
        # nothing of the refused container stays: no record, no sandbox
        assert [c.id for c in host.containers.list(all=True)] == containers
        assert [entry.id for entry in host.layers.list()] == layers
    finally:
        host.layers.destroy(layer, force=True)


@pytest.mark.simulator("a simulated host of its own")
def test_each_profile_is_a_host_of_its_own(tmp_path: Path) -> None:
    from wincontainers.sim.control import default_root

    roots = {p: default_root(p) for p in ("tp3", "2016", "ws2019")}
    assert len(set(roots.values())) == 3
    one = SimulatedHost("2016", tmp_path / "one").start()
    try:
        with pytest.raises(errors.BadInput) as caught:
            SimulatedHost("tp3", tmp_path / "one").start()
        assert "2016" in str(caught.value) and "--root" in str(caught.value)
        created = run_cli(one, "run", "--name", "only-on-2016", "windowsservercore", "cmd", "/S", "/C", "echo hi")
        assert created.returncode == 0, created.stderr.decode()
        state = tmp_path / "xdg"
        mine = run_cli(one, "ps", "-a")
        assert b"only-on-2016" in mine.stdout
        environ = {k: v for k, v in os.environ.items() if k not in ("WINCONTAINERS_ROOT", "WINCONTAINERS_SIM")}
        environ.update(XDG_STATE_HOME=str(state), PYTHONPATH=str(ROOT))
        for profile in ("tp3", "2016"):
            listed = subprocess.run([sys.executable, "-m", "wincontainers", "--sim", profile, "ps", "-a"],
                                    capture_output=True, timeout=180, env=environ)
            assert listed.returncode == 0, listed.stderr.decode()
            assert b"only-on-2016" not in listed.stdout
        assert sorted(p.name for p in (state / "wincontainers" / "sim").iterdir()) == ["2016", "tp3"]
        for profile in ("tp3", "2016"):
            SimulatedHost(profile, state / "wincontainers" / "sim" / profile).stop()
    finally:
        one.stop()


@pytest.mark.simulator("a simulated host of its own")
def test_stopping_the_service_ends_the_containers_processes(tmp_path: Path) -> None:
    sim = SimulatedHost("2016", tmp_path / "sim").start()
    with Host.open(sim="2016", root=sim.root) as host:
        c = host.containers.create("windowsservercore")
        c.start()
        c.exec('cmd /S /C "ping -t localhost"')
        deadline = time.monotonic() + 10
        while len(sim.container_processes()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = sim.container_processes()
        assert len(pids) >= 2, pids
        assert sim.stop()
    assert not [p for p in pids if _running(p)]

    sim.start()  # a daemon that dies hard leaves them running until `sim stop`
    with Host.open(sim="2016", root=sim.root) as host:
        c = host.containers.create("windowsservercore")
        c.start()
        c.exec('cmd /S /C "ping -t localhost"')
        time.sleep(0.5)
        pids = sim.container_processes()
        info = sim.status()
        assert info is not None
        os.kill(int(info["pid"]), signal.SIGKILL)
        time.sleep(0.2)
        assert [p for p in pids if _running(p)], "the processes should outlive a killed daemon"
        assert not sim.stop()  # it was not running, yet its containers' processes end
    assert not [p for p in pids if _running(p)]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_share_modes_case_and_long_paths(host: Host, tmp_path: Path) -> None:
    api = host.win32
    path = w32.long_path(tmp_path / "Share Test.TXT")
    with api.create_file(path, w32.GENERIC_WRITE, w32.CREATE_NEW, share=w32.FILE_SHARE_READ) as writer:
        writer.write(b"abc")
        with pytest.raises(w32.SharingViolation):  # a second writer is not shared
            api.create_file(path, w32.GENERIC_WRITE, w32.OPEN_EXISTING, share=w32.FILE_SHARE_ALL)
        with api.create_file(w32.long_path(tmp_path / "share test.txt"), w32.GENERIC_READ, w32.OPEN_EXISTING,
                             share=w32.FILE_SHARE_ALL) as reader:  # names are case-insensitive
            assert reader.read() == b"abc"
    with pytest.raises(w32.AlreadyExists):
        api.create_file(w32.long_path(tmp_path / "SHARE TEST.txt"), w32.GENERIC_WRITE, w32.CREATE_NEW)
    deep = str(tmp_path / ("x" * 250) / "y.txt")
    with pytest.raises(w32.Win32Error) as caught:
        api.create_file(deep, w32.GENERIC_WRITE, w32.CREATE_ALWAYS)
    assert caught.value.code == 206
    api.delete_file(path)


def test_a_forgotten_file_is_closed_when_collected(host: Host, tmp_path: Path) -> None:
    """No finalizer of ours: IOBase's calls close(), which closes the HANDLE (a second writer is
    refused while it lives, and welcome after)."""
    import gc

    api = host.win32
    path = w32.long_path(tmp_path / "forgotten.txt")
    forgotten = api.create_file(path, w32.GENERIC_WRITE, w32.CREATE_NEW, share=0)
    with pytest.raises(w32.SharingViolation):
        api.create_file(path, w32.GENERIC_WRITE, w32.OPEN_EXISTING, share=w32.FILE_SHARE_ALL)
    del forgotten
    gc.collect()
    api.create_file(path, w32.GENERIC_WRITE, w32.OPEN_EXISTING, share=w32.FILE_SHARE_ALL).close()
