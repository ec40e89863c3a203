"""The binding layer against the simulated DLLs: declarations, exports, probe, strings, allocators."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from cffi import FFI

from wincontainers import Host, errors
from wincontainers._native import cdefs, declarations, library
from tests.conftest import SimulatedHost
from wincontainers.sim.profiles import PROFILES
from tests.conftest import ROOT

NATIVE = ROOT / "wincontainers" / "sim" / "native"


@pytest.mark.parametrize("generation", [1, 2, 3])
def test_declarations_parse_and_structs_have_windows_layout(generation: int) -> None:
    for dll in cdefs.GENERATION_EXPORTS[generation]:
        ffi = FFI()
        ffi.cdef(declarations(dll, generation))
        assert ffi.sizeof("HCS_PROCESS_INFORMATION") == 32
        assert ffi.offsetof("HCS_PROCESS_INFORMATION", "StdError") == 24
        assert ffi.sizeof("WC_LAYER_DESCRIPTOR") == 32
        assert ffi.offsetof("WC_LAYER_DESCRIPTOR", "Path") == 24
        assert ffi.sizeof("DriverInfo") == 16 and ffi.offsetof("DriverInfo", "HomeDir") == 8
        assert ffi.sizeof("HCS_EVENT") == 24 and ffi.offsetof("HCS_EVENT", "Operation") == 16
        assert ffi.sizeof("GUID") == 16


def _all_names() -> set[str]:
    return {name for table in cdefs.PROTOTYPES.values() for name in table}


@pytest.mark.simulator("the simulator's own files")
@pytest.mark.parametrize("profile_name", list(PROFILES))
def test_each_profile_exports_exactly_its_functions(sim_roots: dict[str, SimulatedHost], profile_name: str) -> None:
    sim = sim_roots[profile_name].start()
    profile = PROFILES[profile_name]
    present = {p.name for p in sim.system_directory.glob("*.dll")}
    assert present == set(profile.exports)
    for dll, names in profile.exports.items():
        found = library._exports(sim.system_directory / dll, sorted(_all_names()))
        assert found == set(names), (dll, sorted(found ^ set(names)))


@pytest.mark.simulator("the simulator's own files")
@pytest.mark.parametrize("profile_name,expected", [("tp3", [1]), ("2016", [2]), ("ws2019", [3, 2])])
def test_generation_probe(sim_roots: dict[str, SimulatedHost], profile_name: str, expected: list[int]) -> None:
    sim = sim_roots[profile_name].start()
    assert library.probe_generations(sim.system_directory) == expected
    assert library.load(sim.system_directory).generation == expected[0]
    absent = next(g for g in (3, 1, 2) if g not in expected)
    with pytest.raises(errors.NotSupported, match=f"API generation {absent} .* is not offered"):
        library.load(sim.system_directory, absent)


@pytest.mark.simulator("the simulator's call log")
def test_forced_generation_on_ws2019_uses_vmcompute(sim_roots: dict[str, SimulatedHost]) -> None:
    sim = sim_roots["ws2019"].start()
    host = Host.open(sim="ws2019", root=sim.root, generation=2)
    assert host.generation == 2
    with host.containers.create("windowsservercore") as c:
        c.start()
        assert c.run('cmd /S /C "echo via-vmcompute"').stdout == b"via-vmcompute\r\n"
    assert "HcsCreateComputeSystem" in sim.calls(clear=True)


@pytest.mark.simulator("the simulator's own NameToGuid")
def test_name_to_guid_in_the_dll_agrees_with_the_simulators_own(host: Host) -> None:
    # The DLL computes it (no service call); the daemon checks layer ids with its own copy.
    # Lengths 1..80 cross the SHA-1 padding and block boundaries (16 + 2n bytes hashed).
    from wincontainers.sim import storage

    for n in range(1, 81):
        name = "".join(chr(0x41 + (i * 7 + n) % 26) if i % 11 else "\u00e9" for i in range(n))
        assert host.driver.name_to_guid(name) == uuid.UUID(bytes_le=storage.name_to_guid(name)), n


@pytest.mark.simulator("the simulator's own NameToGuid")
def test_the_binding_converts_every_shape_of_call(host: Host) -> None:
    # The usual shape (inputs as given, one out after them), then the ones that leave it: a
    # None input (NULL), an out passed as NULL (null_outs), a kept-alive pointer.
    from wincontainers._native.library import _KeepAlive
    from wincontainers.sim import storage

    vm = host.binding.vmcompute
    hr, guid = vm.call("NameToGuid", "layer-1")
    assert hr == 0 and type(guid) is uuid.UUID and guid == uuid.UUID(bytes_le=storage.name_to_guid("layer-1"))
    assert vm.call("NameToGuid", None) == (0x80004003, uuid.UUID(int=0))  # E_POINTER, the cell untouched
    assert vm.call("NameToGuid", "layer-1", null_outs=(1,)) == (0x80004003, None)
    name = vm.ffi.new("char16_t[]", "layer-1")
    assert vm.call("NameToGuid", _KeepAlive(vm.ffi.cast("PCWSTR", name), name)) == (0, guid)
    with pytest.raises(TypeError, match="takes 1 input"):
        vm.call("NameToGuid", "a", "b")


def test_the_quick_uuid_is_the_constructors_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    # make_uuid skips the constructor's checks: what it makes must behave as the constructor's
    # in every way a caller can see, and a Python whose UUID is laid out otherwise gets the
    # constructor (the check at import says no).
    import copy
    import pickle

    from wincontainers._native import guids

    for value in (0, 1, 0x00112233_4455_6677_8899_AABBCCDDEEFF, (1 << 128) - 1):
        made, proper = guids.make_uuid(value), uuid.UUID(int=value)
        assert (made == proper, hash(made), str(made), repr(made), made.bytes_le, made.is_safe) == \
            (True, hash(proper), str(proper), repr(proper), proper.bytes_le, proper.is_safe)
        assert pickle.loads(pickle.dumps(made)) == proper and copy.deepcopy(made) == proper
        assert {made: 1}[proper] == 1 and not made < proper and not made > proper
        with pytest.raises(TypeError):
            made.int = 5  # type: ignore[misc]
    monkeypatch.setattr(guids, "_set_field", lambda *args: None)  # a layout this code does not know
    assert guids.uuid_layout_is_known() is False


@pytest.mark.simulator("the simulator's own NameToGuid")
def test_strings_round_trip_lone_surrogates_and_astral(host: Host, sim: SimulatedHost) -> None:
    # Into the DLL: the daemon hashes exactly the UTF-16 it received.
    from wincontainers.sim import storage

    name = "layer-\ud800-\U0001f600-x"
    assert host.driver.name_to_guid(name) == uuid.UUID(bytes_le=storage.name_to_guid(name))
    if host.generation == 1:
        return
    # And back: HCS's error document quotes the property type it did not know.
    weird = "no-such-\udfff-\U0001f433"
    with host.containers.create("windowsservercore") as c:
        with pytest.raises(errors.InvalidArgument) as info:
            c._system().properties([weird])
    assert weird in (info.value.detail or "")


@pytest.mark.simulator("handle counts")
def test_allocator_misuse_is_detected_and_the_binding_has_none(host: Host, sim: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        c.run('cmd /S /C "echo hi"')
        c.top()
    assert str(os.getpid()) not in sim.allocator_misuse()
    # The check can fail: free a vmcompute (CoTaskMem) string with LocalFree.
    vm = host.binding.vmcompute
    out = vm.ffi.new("PWSTR *")
    assert vm.raw("GetBaseImages")(out) == 0
    ffi = FFI()
    ffi.cdef("void *LocalFree(void *hMem);")
    kernel32 = ffi.dlopen(str(sim.system_directory / "kernel32.dll"))
    kernel32.LocalFree(ffi.cast("void *", out[0]))
    import time

    deadline = time.monotonic() + 5
    while str(os.getpid()) not in sim.allocator_misuse() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any("LocalFree on memory that needs CoTaskMemFree" in m for m in sim.allocator_misuse()[str(os.getpid())])


def test_null_homedir_is_rejected(host: Host) -> None:
    vm = host.binding.vmcompute
    info = vm.ffi.new("DriverInfo *")
    info.Flavour = 1  # HomeDir left NULL: vmcompute dereferences it
    exists = vm.ffi.new("BOOL *")
    assert vm.raw("LayerExists")(info, vm.ffi.new("char16_t[]", "/x"), exists) & 0xFFFFFFFF == 0x80004003


def test_layer_mount_path_two_call_protocol(host: Host) -> None:
    with host.containers.create("windowsservercore") as c:
        vm = host.binding.vmcompute
        fn = vm.raw("GetLayerMountPath")
        info = library.unwrap(host.binding.driver_info(""))
        path = vm.ffi.new("char16_t[]", c.record.sandbox)
        length = vm.ffi.new("UINT64 *")
        assert fn(info, path, length, vm.ffi.NULL) == 0
        n = int(length[0])
        small = vm.ffi.new("char16_t[]", 3)
        length[0] = 3
        assert fn(info, path, length, small) & 0xFFFFFFFF == 0x8007007A
        assert int(length[0]) == n
        mount = host.driver.layer_mount_path(c.record.sandbox)
        assert mount.startswith("\\\\?\\Volume{") and mount.endswith("}\\") and len(mount) + 1 == n


@pytest.mark.simulator("stops and starts the simulated service")
def test_gen3_operations(sim_roots: dict[str, SimulatedHost]) -> None:
    sim = sim_roots["ws2019"].start()
    host = Host.open(sim="ws2019", root=sim.root)
    cc = host.binding.computecore
    op = cc.call("HcsCreateOperation", None, None)[0]
    try:
        assert cc.call("HcsGetOperationResult", op)[0] == 0x80370115  # not started
        assert cc.call("HcsWaitForOperationResult", op, 10)[0] == 0x80370115
        assert cc.call("HcsGetOperationType", op)[0] == -1
        assert cc.call("HcsEnumerateComputeSystems", None, op)[0] == 0
        hr, doc = cc.call("HcsWaitForOperationResult", op, 5000)
        assert hr == 0 and doc is not None and doc.startswith("[")
        assert cc.call("HcsGetOperationType", op)[0] == 0  # Enumerate
    finally:
        cc.call("HcsCloseOperation", op)
    with host.containers.create("windowsservercore") as c:
        c.start()
        system = c._system()
        handle = system._handle  # type: ignore[attr-defined]
        again = cc.call("HcsSetComputeSystemCallback", handle, 0, library.Binding.context(1),
                        system.driver.callback)[0]  # type: ignore[attr-defined]
        assert again == 0x80370119  # one callback per handle
        c.exec("ping -n 30 localhost")
        sim.ignore_shutdown(c.id)
        op = cc.call("HcsCreateOperation", None, None)[0]
        try:
            assert cc.call("HcsShutDownComputeSystem", handle, op, None)[0] == 0
            assert cc.call("HcsWaitForOperationResult", op, 100)[0] == 0x80370118  # timeout
            assert cc.call("HcsGetOperationResult", op)[0] == 0x80370117  # still pending
            assert cc.call("HcsCancelOperation", op)[0] == 0
        finally:
            cc.call("HcsCloseOperation", op)
        sim.ignore_shutdown(c.id, False)


def _c_formats() -> dict[tuple[str, str], str]:
    """(group, function) -> the marshalling format the C client sends."""
    formats: dict[tuple[str, str], str] = {}
    for path in NATIVE.glob("*.c"):
        group = path.stem
        if group == "client":
            continue  # the core's own messages are checked separately
        text = path.read_text()
        for name, fmt in re.findall(r'wc_call\("(\w+)",\s*"(\w*)"', text):
            formats[(group, name)] = fmt
        for name, fmt in re.findall(r'OP_CALL\(\w+,\s*"(\w+)",\s*"(\w*)"', text):
            formats[(group, name)] = fmt
        for name, fmt in re.findall(r'wc_oneway\("(\w+)",\s*"(\w*)"', text):
            formats[(group, name)] = fmt
        for name, fmt in re.findall(r'wc_request\(&\w+,\s*"(\w+)",\s*"(\w*)"', text):
            formats[(group, name)] = fmt
        for name, fmt in re.findall(r'simple\("(\w+)",\s*"(\w*)"', text):
            formats[(group, name)] = fmt
        macro = re.search(r'#define SYSTEM_OP\(name(?:, type)?\).*?\n(?:.*\\\n)*?.*#name, "(\w+)"', text)
        if macro:
            for name in re.findall(r"^SYSTEM_OP\((\w+)", text, re.M):
                formats[(group, name)] = macro.group(1)
        if group == "computenetwork":
            for kind, plural, enum in re.findall(r"^HCN_KIND\((\w+), (\w+), (\w+)\)", text, re.M):
                formats[(group, f"HcnEnumerate{enum}")] = "sSS"
                formats[(group, f"HcnOpen{kind}")] = "gHS"
                formats[(group, f"HcnModify{kind}")] = "hsS"
                formats[(group, f"HcnQuery{kind}Properties")] = "hsSS"
                formats[(group, f"HcnDelete{kind}")] = "gS"
                formats[(group, f"HcnClose{kind}")] = "h"
    return formats


@pytest.mark.simulator("the simulator's sources")
def test_c_client_and_daemon_agree_on_every_call_format() -> None:
    from wincontainers.sim.service import HANDLERS

    c_side = _c_formats()
    client = (NATIVE / "client.c").read_text()
    core_messages = dict(re.findall(r'wc_oneway\("(\w+)",\s*"(\w*)"', client))
    assert core_messages == {"AllocatorMisuse": "s", "HcsCreateOperation": "u", "HcsCloseOperation": "u"}
    assert HANDLERS[("any", "AllocatorMisuse")].fmt == "s"
    c_side[("computecore", "HcsCreateOperation")] = c_side[("computecore", "HcsCloseOperation")] = "u"
    py_side = {key: api.fmt for key, api in HANDLERS.items() if key[0] != "any"}
    missing = sorted(set(c_side) - set(py_side))
    assert not missing, f"the daemon has no handler for {missing}"
    mismatched = {k: (c_side[k], py_side[k]) for k in c_side if c_side[k] != py_side[k]}
    assert not mismatched
    assert len(c_side) >= 130


@pytest.mark.simulator("the simulator's DLL build cache")
def test_build_cache_is_reused_and_rebuilt_when_the_source_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wincontainers.sim import build

    monkeypatch.setenv("WINCONTAINERS_CACHE", str(tmp_path / "cache"))
    profile = PROFILES["tp3"]
    first = build.build_dll(profile, "ole32.dll")
    stamp = first.stat().st_mtime_ns
    assert build.build_dll(profile, "ole32.dll") == first and first.stat().st_mtime_ns == stamp
    native = tmp_path / "native"
    import shutil

    shutil.copytree(build.NATIVE_DIR, native)
    (native / "allocators.c").write_text((native / "allocators.c").read_text() + "\n/* changed */\n")
    monkeypatch.setattr(build, "NATIVE_DIR", native)
    assert build.build_dll(profile, "ole32.dll") != first
