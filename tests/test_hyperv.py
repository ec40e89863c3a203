"""Hyper-V isolation: containers in a utility VM, on Server 2016 (vmcompute, schema v1) and on
1809+ (vmcompute's route, or a utility VM of computecore's own as hcsshim makes it).

Each route runs the same lifecycle tests: hello through the CLI, PIDs of the VM (no host PID),
a forced stop within the bound, documents checked against the reference (hcs-api.md 6.1) and
against hcsshim's WCOW utility VM, an image of another Windows build refused with process
isolation and run with Hyper-V, and a fault in every HCS call leaving nothing behind. TP3
refuses with the generation and the alternative.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections import Counter
from typing import Any, Iterator, Optional

import pytest

from wincontainers import Host, errors
from wincontainers.layerfile import EntryKind, LayerEntry, LayerWriter
from tests.conftest import DATA, SimulatedHost, cli
from tests.test_faults import INJECTED, NOT_INJECTABLE, assert_clean

pytestmark = pytest.mark.simulator("the simulated utility VM, its documents and faults")

REFERENCE = (DATA / "reference" / "hcs-api.md").read_text()
ROUTES = [("2016", "vmcompute"), ("ws2019", "vmcompute"), ("ws2019", "computecore")]


@pytest.fixture(params=ROUTES, ids=[f"{p}-{r}" for p, r in ROUTES])
def case(request: pytest.FixtureRequest, sim_roots: dict[str, SimulatedHost]) -> Iterator[tuple[Host, SimulatedHost, str]]:
    profile, route = request.param
    sim = sim_roots[profile].start()
    sim.hyperv(installed=True, boot_delay=0.05)
    host = Host.open(sim=profile, root=sim.root)
    try:
        yield host, sim, route
    finally:
        host.close()
        sim.clear_faults()
        sim.ignore_shutdown("*", False)
        sim.hyperv(installed=True, boot_delay=0.3)


def _systems(sim: SimulatedHost) -> list[dict[str, Any]]:
    return [s for s in sim.objects()["systems"] if s["state"] != "Stopped"]


def test_tp3_has_no_hyperv_containers(sim_roots: dict[str, SimulatedHost]) -> None:
    sim = sim_roots["tp3"].start()
    host = Host.open(sim="tp3", root=sim.root)
    try:
        with pytest.raises(errors.NotSupported) as info:
            host.containers.create("windowsservercore", isolation="hyperv")
        text = str(info.value)
        assert "API generation 1" in text and "process isolation" in text and "2016" in text, text
        assert list(host.records.all()) == [] and not sim.objects()["systems"]
        assert not [p for p in host.layers_root.iterdir()]
        done = cli("run", "--rm", "--isolation", "hyperv", "windowsservercore", "cmd", "/S", "/C", "echo hello",
                   sim=sim)
        assert done.returncode == 125 and b"API generation 1" in done.stderr and b"Traceback" not in done.stderr
    finally:
        host.close()


def test_cli_run_says_hello_from_a_utility_vm(case: tuple[Host, SimulatedHost, str]) -> None:
    host, sim, route = case
    extra = ["--hyperv-route", route] if route != "vmcompute" else []
    done = cli("run", "--rm", "--isolation", "hyperv", *extra, "windowsservercore", "cmd", "/S", "/C", "echo hello",
               sim=sim)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello\r\n"
    assert not _systems(sim) and not sim.objects()["vm_disks"]


def test_processes_have_vm_pids_and_stop_is_forced_in_time(case: tuple[Host, SimulatedHost, str]) -> None:
    host, sim, route = case
    sim.hyperv(boot_delay=0.4)
    started = time.monotonic()
    c = host.containers.create("windowsservercore", isolation="hyperv", hyperv_route=route)
    try:
        c.start()
        assert time.monotonic() - started >= 0.4  # the VM boots (at create for computecore, at start for v1)
        slow = c.exec("cmd /c ping -n 30 127.0.0.1")
        top = c.top()
        mine = [s for s in sim.objects()["systems"] if s["id"] == c.id][0]
        host_pids = set(mine["host_pids"])
        assert host_pids and all(os.path.exists(f"/proc/{p}") for p in host_pids)  # real processes underneath...
        shown = {p.pid for p in top}
        assert slow.pid in shown and not shown & host_pids  # ...shown with the VM's PIDs only
        assert mine["hyperv"] is True
        if route == "computecore":
            vm = [s for s in sim.objects()["systems"] if s["id"] == f"{c.id}@vm"][0]
            assert vm["kind"] == "VirtualMachine" and vm["vm"]["hosted"] == [c.id]
            stats = c.stats()
            assert stats.memory_commit_bytes == 1024 * 1024 * 1024  # the VM's memory (hcsshim's default size)
        sim.ignore_shutdown(c.id)
        result = c.stop(timeout=2)
        assert result.outcome == "forced" and result.elapsed < 4, result
        assert not _systems(sim), _systems(sim)  # the VM went with the container
        assert not sim.objects()["vm_disks"]
        slow.close()
    finally:
        c.remove(force=True)
        c.close()
    assert_clean(host, sim)


def test_a_restarted_hyperv_container_keeps_its_files(case: tuple[Host, SimulatedHost, str]) -> None:
    host, sim, route = case
    with host.containers.create("windowsservercore", isolation="hyperv", hyperv_route=route) as c:
        c.start()
        assert c.run('cmd /S /C "echo kept> C:\\kept.txt"').returncode == 0
        with pytest.raises(errors.InvalidState, match="utility VM"):
            c.copy_from("C:\\kept.txt", io.BytesIO())
        c.stop(timeout=5)
        out = io.BytesIO()
        c.copy_from("C:\\kept.txt", out)  # stopped: its disk can be mounted here
        assert b"kept" in out.getvalue()
        c.start()  # and goes back to a (new) utility VM
        assert c.run('cmd /S /C "type C:\\kept.txt"').stdout == b"kept\r\n"
        c.remove(force=True)
    assert_clean(host, sim)


# -- documents -------------------------------------------------------------------------------------


def _reference_gen2_container() -> dict[str, Any]:
    for block in re.findall(r"```json\n(.*?)```", REFERENCE, re.S):
        try:
            doc = json.loads(block)
        except ValueError:
            continue
        if isinstance(doc, dict) and "EndpointList" in doc and doc.get("SystemType") == "Container":
            return doc
    raise AssertionError("hcs-api.md 6.1 has the gen2 container example")


@pytest.mark.parametrize("profile", ["2016", "ws2019"])  # the vmcompute route (computecore's: below)
def test_the_schema_v1_document_is_the_reference_with_the_hyperv_fields(
        profile: str, sim_roots: dict[str, SimulatedHost], tmp_path: Any) -> None:
    sim = sim_roots[profile].start()
    sim.hyperv(boot_delay=0.05)
    with Host.open(sim=profile, root=sim.root) as host:
        _check_v1_document(host, sim, tmp_path)


def _check_v1_document(host: Host, sim: SimulatedHost, tmp_path: Any) -> None:
    reference = _reference_gen2_container()
    site = tmp_path / "site"
    site.mkdir()
    network = host.networks.create("hvnet", "nat", subnet="172.31.7.0/24")
    sim.documents(clear=True)
    try:
        with host.containers.create("windowsservercore", isolation="hyperv", hostname="web01", memory_mb=2048,
                                    cpu_count=2, volumes={str(site): {"bind": "C:\\inetpub\\wwwroot", "mode": "ro"}},
                                    network=network) as c:
            (sent,) = [e for e in sim.documents() if e["function"] == "HcsCreateComputeSystem"]
            doc = sent["documents"][0]
            base = host.images.layers_for("windowsservercore")[1][-1].path
            # hcs-api.md 6.1: "set HvPartition, SandboxPath, HvRuntime; omit VolumePath / LayerFolderPath".
            # TerminateOnLastHandleClosed is the example's option, not taken: a container outlives
            # the process that made it (detached containers).
            want_keys = (set(reference) - {"VolumePath", "LayerFolderPath", "TerminateOnLastHandleClosed"}) | {
                "SandboxPath", "HvRuntime", "IgnoreFlushesDuringBoot"}
            assert set(doc) == want_keys, set(doc) ^ want_keys
            assert doc["HvPartition"] is True and doc["SystemType"] == "Container" and doc["Owner"] == "wincontainers"
            assert doc["SandboxPath"] == os.path.dirname(c.record.sandbox)  # Docker: the sandbox folder's parent
            assert doc["HvRuntime"] == {"ImagePath": os.path.join(base, "UtilityVM")}
            assert doc["HostName"] == "web01" and doc["Name"] == c.name
            assert doc["MemoryMaximumInMB"] == 2048 and doc["ProcessorCount"] == 2  # the VM's
            assert doc["MappedDirectories"] == [{"HostPath": str(site), "ContainerPath": "C:\\inetpub\\wwwroot",
                                                 "ReadOnly": True}]
            assert [set(layer) for layer in doc["Layers"]] == [set(layer) for layer in reference["Layers"]]
            assert doc["EndpointList"] and doc["AllowUnqualifiedDNSQuery"] is reference["AllowUnqualifiedDNSQuery"]
            c.start()
            assert c.run('cmd /S /C "dir C:\\inetpub\\wwwroot"').returncode == 0
            c.remove(force=True)
    finally:
        network.remove()


SCSI_0 = "df6d0690-79e5-55b6-a5ec-c1e2f77f580a"  # hcsshim guestrequest.ScsiControllerGuids[0]
VSMB = "\\\\?\\VMSMB\\VSMB-{dcc079ae-60ba-4d07-847c-3493609c0870}\\"  # hcsshim GetVSMBUvmPath


def test_the_computecore_documents_follow_hcsshims_wcow_utility_vm(
        sim_roots: dict[str, SimulatedHost], tmp_path: Any) -> None:
    sim = sim_roots["ws2019"].start()
    sim.hyperv(boot_delay=0.05)
    host = Host.open(sim="ws2019", root=sim.root)
    data = tmp_path / "data"
    data.mkdir()
    sim.documents(clear=True)
    try:
        with host.containers.create("windowsservercore", isolation="hyperv", hyperv_route="computecore",
                                    memory_mb=2048, cpu_count=2, hostname="web01",
                                    volumes={str(data): {"bind": "C:\\data", "mode": "ro"}}) as c:
            sent = [(e["function"], e["documents"]) for e in sim.documents()]
            creates = [docs[0] for fn, docs in sent if fn == "HcsCreateComputeSystem"]
            modifies = [docs[0] for fn, docs in sent if fn == "HcsModifyComputeSystem"]
            vm_doc, container_doc = creates
            base = host.images.layers_for("windowsservercore")[1][-1].path
            uvm = os.path.join(base, "UtilityVM")
            # internal/uvm create_wcow.go prepareCommonConfigDoc + prepareConfigDoc
            assert vm_doc["Owner"] == "wincontainers" and vm_doc["SchemaVersion"] == {"Major": 2, "Minor": 1}
            machine = vm_doc["VirtualMachine"]
            assert machine["StopOnReset"] is True
            assert machine["Chipset"] == {"Uefi": {"BootThis": {  # wclayer.BootDirRelativePath + bootmgfw.efi
                "DevicePath": "\\EFI\\Microsoft\\Boot\\bootmgfw.efi", "DeviceType": "VmbFs"}}}
            assert machine["ComputeTopology"] == {"Memory": {"SizeInMB": 2048, "AllowOvercommit": True},
                                                  "Processor": {"Count": 2}}
            devices = machine["Devices"]
            scratch = os.path.join(c.record.sandbox, "vm", "sandbox.vhdx")  # wcow_parse.go: <scratch>\vm\sandbox.vhdx
            assert devices["Scsi"] == {SCSI_0: {"Attachments": {"0": {"Path": scratch, "Type": "VirtualDisk"}}}}
            assert devices["HvSocket"] == {"HvSocketConfig": {"DefaultBindSecurityDescriptor":
                                                              "D:P(A;;FA;;;SY)(A;;FA;;;BA)"}}
            read_only = {"ReadOnly": True, "ShareRead": True, "CacheIo": True, "PseudoOplocks": True,
                         "TakeBackupPrivilege": True}  # DefaultVSMBOptions(true) + TakeBackupPrivilege
            assert devices["VirtualSmb"] == {"Shares": [{"Name": "os", "Path": os.path.join(uvm, "Files"),
                                                         "Options": read_only}],
                                             "DirectFileMappingInMB": 1024}
            assert "ShouldTerminateOnLastHandleClosed" not in vm_doc  # the VM outlives this process, as the container
            # internal/layers wcow_mount.go: a VSMB share per layer, the scratch on SCSI, CombinedLayers
            shares = [m for m in modifies if m.get("ResourcePath") == "VirtualMachine/Devices/VirtualSmb/Shares"]
            assert [s["Settings"]["Path"] for s in shares] == [base, str(data)]
            assert all(s["RequestType"] == "Add" and s["Settings"]["Options"] == read_only for s in shares)
            (disk,) = [m for m in modifies if m.get("ResourcePath", "").startswith("VirtualMachine/Devices/Scsi/")]
            assert disk["ResourcePath"] == f"VirtualMachine/Devices/Scsi/{SCSI_0}/Attachments/1"
            assert disk["Settings"] == {"Path": os.path.join(c.record.sandbox, "sandbox.vhdx"), "Type": "VirtualDisk"}
            assert disk["GuestRequest"]["ResourceType"] == "MappedVirtualDisk"
            root = disk["GuestRequest"]["Settings"]["ContainerPath"]
            (combine,) = [m for m in modifies if "ResourcePath" not in m]
            layer_id = str(host.driver.name_to_guid(os.path.basename(base)))
            layers = [{"Id": layer_id, "Path": VSMB + shares[0]["Settings"]["Name"]}]
            assert combine["GuestRequest"] == {"ResourceType": "CombinedLayers", "RequestType": "Add",
                                               "Settings": {"ContainerRootPath": root, "Layers": layers}}
            # internal/hcsoci hcsdoc_wcow.go, v2 Xenon: the guest's paths, HostingSystemId
            assert container_doc["HostingSystemId"] == f"{c.id}@vm"
            assert container_doc["Container"]["Storage"] == {"Layers": layers, "Path": root + "\\"}
            assert container_doc["Container"]["MappedDirectories"] == [
                {"HostPath": VSMB + shares[1]["Settings"]["Name"], "ContainerPath": "C:\\data", "ReadOnly": True}]
            assert container_doc["Container"]["GuestOs"] == {"HostName": "web01"}
            c.start()
            (data / "in.txt").write_text("from the host")
            assert c.run('cmd /S /C "type C:\\data\\in.txt"').stdout == b"from the host"
            c.remove(force=True)
        with host.containers.create("windowsservercore", isolation="hyperv", hyperv_route="computecore") as c:
            vm_doc = [e["documents"][0] for e in sim.documents() if e["function"] == "HcsCreateComputeSystem"][-2]
            assert vm_doc["VirtualMachine"]["ComputeTopology"] == {  # hcsshim's defaults (create.go)
                "Memory": {"SizeInMB": 1024, "AllowOvercommit": True}, "Processor": {"Count": min(2, os.cpu_count() or 1)}}
            c.remove(force=True)
        _check_computecore_network(host, sim)
    finally:
        host.close()
    assert not _systems(sim)


def _check_computecore_network(host: Host, sim: SimulatedHost) -> None:
    """internal/uvm network.go: the namespace is made in the guest (AddNetNS), each endpoint
    is a network adapter of the VM (a guest PreAdd, then the adapter with its MAC); the container
    names the namespace (hcsdoc_wcow.go) and sees its address."""
    network = host.networks.create("hvcore", "nat", subnet="172.31.9.0/24")
    sim.documents(clear=True)
    try:
        with host.containers.create("windowsservercore", isolation="hyperv", hyperv_route="computecore",
                                    network=network, ports=["8089:80"]) as c:
            sent = [e["documents"][0] for e in sim.documents() if e["function"] == "HcsModifyComputeSystem"]
            (namespace_request,) = [m for m in sent if m.get("GuestRequest", {}).get("ResourceType") == "NetworkNamespace"]
            namespace = c.record.network["namespace"]
            assert namespace_request["GuestRequest"]["RequestType"] == "Add"
            assert str(namespace_request["GuestRequest"]["Settings"]["ID"]).lower() == namespace.lower()
            (pre_add,) = [m for m in sent if m.get("GuestRequest", {}).get("ResourceType") == "Network"
                          and "ResourcePath" not in m]
            (adapter,) = [m for m in sent if m.get("ResourcePath", "").startswith("VirtualMachine/Devices/NetworkAdapters/")]
            nic = pre_add["GuestRequest"]["Settings"]["AdapterId"]
            assert pre_add["GuestRequest"]["Settings"]["RequestType"] == "PreAdd"
            assert adapter["ResourcePath"] == f"VirtualMachine/Devices/NetworkAdapters/{nic}"
            (endpoint_id,) = c.record.network["endpoints"]
            assert str(adapter["Settings"]["EndpointId"]).lower() == str(endpoint_id).lower()
            assert adapter["Settings"]["MacAddress"] and adapter["GuestRequest"]["Settings"] == {
                "AdapterId": nic, "RequestType": "Add"}
            created = [e["documents"][0] for e in sim.documents() if e["function"] == "HcsCreateComputeSystem"][-1]
            assert created["Container"]["Networking"] == {"AllowUnqualifiedDnsQuery": True, "Namespace": namespace}
            c.start()
            shown = c.run("ipconfig").stdout.decode()
            assert "172.31.9." in shown, shown
            c.remove(force=True)
    finally:
        network.remove(force=True)


def test_the_simulator_refuses_what_windows_refuses(sim_roots: dict[str, SimulatedHost]) -> None:
    """A utility VM image that does not exist, Hyper-V not installed, and 2016 asked for the
    computecore route: each refused with the error a real host gives, nothing left."""
    sim = sim_roots["ws2019"].start()
    host = Host.open(sim="ws2019", root=sim.root)
    try:
        with host.containers.create("windowsservercore", isolation="hyperv") as c:
            spec_image = c.record.utility_vm
            c.remove(force=True)
        from wincontainers.container_types import system_spec
        import attrs

        _name, parents = host.images.layers_for("windowsservercore")
        sandbox = host.layers.create_sandbox(parents, layer_id="f" * 64)
        try:
            record = attrs.evolve(c.record, id="f" * 64, sandbox=str(sandbox.path), utility_vm=spec_image + "-missing")
            for route in ("vmcompute", "computecore"):
                spec = system_spec(attrs.evolve(record, hyperv_route=route), "", tuple(parents))
                with pytest.raises(errors.NotFound) as info:  # HCS's own, or the library's before HCS is asked
                    host.driver.create_system(spec, 30)
                if route == "vmcompute":
                    assert info.value.hresult == 0x80070003, info.value
                assert "UtilityVM" in str(info.value) or "utility VM" in str(info.value), info.value
            sim.hyperv(installed=False)
            spec = system_spec(attrs.evolve(record, utility_vm=spec_image, hyperv_route="vmcompute"), "",
                               tuple(parents))
            with pytest.raises(errors.HcsError) as info:
                host.driver.create_system(spec, 30)
            assert info.value.hresult_name == "ERROR_VMCOMPUTE_HYPERV_NOT_INSTALLED"
            assert "Hyper-V" in str(info.value)
        finally:
            sim.hyperv(installed=True)
            host.layers.remove_sandbox(sandbox.path)
        assert not _systems(sim) and not sim.objects()["vm_disks"]
    finally:
        host.close()
    two = sim_roots["2016"].start()
    old = Host.open(sim="2016", root=two.root)
    try:
        with pytest.raises(errors.NotSupported, match="vmcompute"):
            old.containers.create("windowsservercore", isolation="hyperv", hyperv_route="computecore")
        assert list(old.records.all()) == []
    finally:
        old.close()


# -- an image of another Windows build -------------------------------------------------------------


def other_build_base(build: int) -> bytes:
    """A base layer tar of Windows build ``build``: cmd, the hives (SOFTWARE names the build),
    and a utility VM image."""
    def folder(name: str) -> tuple[LayerEntry, Optional[bytes]]:
        return LayerEntry(name, EntryKind.DIRECTORY, attributes=0x10), None

    def file(name: str, data: bytes) -> tuple[LayerEntry, Optional[bytes]]:
        return LayerEntry(name, EntryKind.FILE, size=len(data), attributes=0x20), data

    entries = [folder("Files"), folder("Files/Windows"), folder("Files/Windows/System32"),
               file("Files/Windows/System32/cmd.exe", b"MZ cmd"), folder("Files/Windows/System32/config")]
    from wincontainers.sim.hive import empty_hive, software_hive

    for hive in ("DEFAULT", "SAM", "SECURITY", "SYSTEM"):
        entries.append(file(f"Files/Windows/System32/config/{hive}", empty_hive(hive)))
    entries.append(file("Files/Windows/System32/config/SOFTWARE", software_hive(build, "Windows Server (older)")))
    entries += [folder("UtilityVM"), folder("UtilityVM/Files"), folder("UtilityVM/Files/EFI"),
                folder("UtilityVM/Files/EFI/Microsoft"), folder("UtilityVM/Files/EFI/Microsoft/Boot"),
                file("UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi", b"MZ boot")]
    out = io.BytesIO()
    with LayerWriter(out) as writer:
        for entry, data in entries:
            writer.add(entry, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def test_an_image_of_another_build_needs_hyperv(case: tuple[Host, SimulatedHost, str]) -> None:
    """A store image whose os.version is another build: refused with process isolation (the
    hint names --isolation hyperv), run in a utility VM, through the API and the CLI."""
    from wincontainers.images.config import derive_config, empty_config

    host, sim, route = case
    other = 10586 if host.generation == 2 else 14393
    store = host.images
    tar = store.new_temp_file(".tar")
    tar.write_bytes(other_build_base(other))
    with store.lease() as lease:
        layer = store.add_layer(tar, None, lease=lease)
        config = derive_config(empty_config(f"10.0.{other}.1"), diff_id=layer.diff_id, created_by="older base")
        image = store.add(config, [layer], tags=[f"older:{other}"])
    try:
        assert image.os_version == f"10.0.{other}.1"
        with pytest.raises(errors.HcsError) as info:
            host.containers.create(f"older:{other}")
        assert info.value.hresult_name in ("ERROR_VMCOMPUTE_IMAGE_MISMATCH", "HCS_E_IMAGE_MISMATCH")
        assert "--isolation hyperv" in str(info.value) and 'isolation="hyperv"' in str(info.value)
        assert list(host.records.all()) == [] and not _systems(sim)
        result = host.containers.run(f"older:{other}", 'cmd /S /C "echo hello"', isolation="hyperv",
                                     hyperv_route=route)
        assert result.returncode == 0 and result.stdout == b"hello\r\n"
        refused = cli("run", "--rm", f"older:{other}", "cmd", "/S", "/C", "echo hello", sim=sim)
        assert refused.returncode == 125 and b"--isolation hyperv" in refused.stderr
        extra = ["--hyperv-route", route] if route != "vmcompute" else []
        done = cli("run", "--rm", "--isolation", "hyperv", *extra, f"older:{other}", "cmd", "/S", "/C", "echo hello",
                   sim=sim)
        assert done.returncode == 0 and done.stdout == b"hello\r\n", done.stderr
    finally:
        store.remove(image.id, force=True, prune=False)
        store.gc()
    assert_clean(host, sim)


# -- faults ------------------------------------------------------------------------------------------


def _scenario(host: Host, route: str) -> None:
    with host.containers.create("windowsservercore", name="hv-faulty", isolation="hyperv",
                                hyperv_route=route) as c:
        c.start(timeout=20)
        result = c.run('cmd /S /C "echo hello"', timeout=20)
        assert result.stdout == b"hello\r\n"
        c.stop(timeout=5)
        c.remove()


def test_a_fault_in_every_call_leaves_no_vm_container_sandbox_or_handle(case: tuple[Host, SimulatedHost, str]) -> None:
    host, sim, route = case
    pid = os.getpid()
    sim.calls(clear=True)
    _scenario(host, route)
    calls = sim.calls(clear=True)
    assert_clean(host, sim)
    occurrences: list[tuple[str, int]] = []
    seen: Counter[str] = Counter()
    for fn in calls:
        seen[fn] += 1
        if fn not in NOT_INJECTABLE and fn not in ("HcsCloseComputeSystem", "HcsCloseProcess"):
            occurrences.append((fn, seen[fn]))
    if route == "computecore":
        assert {"HcsModifyComputeSystem", "GrantVmAccess"} <= {fn for fn, _ in occurrences}
    failures = 0
    for fn, nth in occurrences:
        rule = sim.inject(fn, INJECTED, nth=nth, pid=pid)
        raised: Optional[BaseException] = None
        try:
            _scenario(host, route)
        except errors.HcsError as exc:
            raised = exc
        fired = next(r for r in sim.faults()["faults"] if r["id"] == rule)["fired"]
        sim.clear_faults()
        if raised is not None:
            failures += 1
            assert fired and raised.hresult == INJECTED, (fn, nth, raised)
            leftover = host.records.all()
            for record in leftover:  # a failed stop or remove leaves the container to remove again
                host.containers.get(record.id).remove(force=True)
        assert not sim.objects()["vm_disks"], (fn, nth)
        assert_clean(host, sim, f"after failing {fn} #{nth} (raised {raised!r})")
    print(f"{route} on gen{host.generation}: {len(occurrences)} calls failed one by one, {failures} reached the caller")
    # Not vacuous: many calls, and a good share of their faults reach the caller (the others fail
    # clean-up calls, which are retried or absorbed by design; NameToGuid, computed in the DLL
    # itself, takes no faults).
    assert len(occurrences) >= 15 and failures >= len(occurrences) // 3, (failures, len(occurrences))



# -- a crash between the VM and its container ----------------------------------------------------

CREATOR = r"""
import sys
sys.path.insert(0, sys.argv[1])
from wincontainers import Host
host = Host.open(sim="ws2019", root=sys.argv[2])
print("creating", flush=True)
host.containers.create("windowsservercore", name="hv-orphan", isolation="hyperv", hyperv_route="computecore")
print("created", flush=True)
"""


@pytest.mark.parametrize("clean_up", ["rm", "remove_orphans"])
def test_a_process_killed_mid_create_leaves_a_vm_the_owner_clean_up_stops(
        sim_roots: dict[str, SimulatedHost], clean_up: str) -> None:
    """The killed creator's container record names the VM: ``rm -f`` of the container stops it
    (the record was saved before any compute system was made), and ``remove_orphans`` stops any
    VM of this owner whose container does not run."""
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    sim = sim_roots["ws2019"].start()
    sim.hyperv(boot_delay=0.05)
    # the creator stalls on CombinedLayers (its 2nd modify of the VM), and is killed there
    sim.inject("HcsModifyComputeSystem", None, delay=2.0, nth=2)
    child = subprocess.Popen([sys.executable, "-c", CREATOR, str(ROOT), str(sim.root)], stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(s["kind"] == "VirtualMachine" and s["state"] == "Running" for s in sim.objects()["systems"]):
            assert time.monotonic() < deadline and child.poll() is None, "the utility VM never ran"
            time.sleep(0.05)
        time.sleep(0.3)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()  # type: ignore[union-attr]
    time.sleep(2.2)  # the stalled call ends in the daemon
    sim.clear_faults()
    host = Host.open(sim="ws2019", root=sim.root)
    try:
        (orphan,) = [s for s in _systems(sim) if s["kind"] == "VirtualMachine"]
        assert orphan["id"].endswith("@vm") and not orphan["vm"]["hosted"]
        record = host.containers.get("hv-orphan").record
        assert orphan["id"] == f"{record.id}@vm"
        if clean_up == "rm":
            done = cli("rm", "-f", "hv-orphan", sim=sim)
            assert done.returncode == 0, done.stderr
            assert not _systems(sim)
        else:
            assert host.containers.remove_orphans() == [orphan["id"]]
            assert not _systems(sim) and host.containers.remove_orphans() == []
            host.containers.get("hv-orphan").remove(force=True)  # the record the killed process left
    finally:
        host.close()
    assert_clean(host, sim)


# -- builds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["hello", "multistage"])
def test_each_example_builds_with_hyperv_run_steps_and_its_image_runs(
        case: tuple[Host, SimulatedHost, str], example: str) -> None:
    from wincontainers.build.builder import build
    from wincontainers.container_types import default_command
    from tests.conftest import ROOT

    host, sim, route = case
    sim.documents(clear=True)
    try:  # a build's RUN steps take the host's default route; the image then runs on the case's
        result = build(host, ROOT / "examples" / "dockerfiles" / example, tags=[f"hv-{example}:1"],
                       output=lambda _t: None, isolation="hyperv")
        assert result.containers_run >= 1
        created = [e["documents"][0] for e in sim.documents() if e["function"] == "HcsCreateComputeSystem"]
        assert created and all(d.get("HvPartition") is True for d in created if "SystemType" in d)
        command = default_command(result.image.container_config)
        done = host.containers.run(f"hv-{example}:1", command, isolation="hyperv", hyperv_route=route)
        assert done.returncode == 0 and done.stdout.strip(), done
        assert host.containers.run(f"hv-{example}:1", command).stdout == done.stdout  # and with process isolation
    finally:
        for image in host.images.list():
            host.images.remove(image.id, force=True, prune=False)
        host.images.cache_clear()
        host.images.gc()
    assert host.images.fsck().clean
    assert_clean(host, sim)


# -- the sandbox's size, and commit -----------------------------------------------------------------


def test_a_larger_sandbox_is_asked_with_expand_sandbox_size(case: tuple[Host, SimulatedHost, str]) -> None:
    host, sim, route = case
    sim.calls(clear=True)
    size = 50 * 1024 ** 3
    with host.containers.create("windowsservercore", isolation="hyperv", hyperv_route=route,
                                storage_size=size) as c:
        calls = sim.calls()
        assert calls.index("ExpandSandboxSize") == calls.index("CreateSandboxLayer") + 1
        meta = json.loads((sim.root / "wincontainers" / "layers" / c.id / "wcsim-sandbox.json").read_text())
        assert meta["size"] == size and c.record.storage_size == size
        c.remove(force=True)
    done = cli("run", "--rm", "--storage-opt", "size=30g", "--isolation", "hyperv", "windowsservercore", "cmd", "/S",
               "/C", "echo sized", sim=sim)
    assert done.returncode == 0 and done.stdout == b"sized\r\n", done.stderr
    bad = cli("run", "--rm", "--storage-opt", "quota=1", "windowsservercore", "cmd", sim=sim)
    assert bad.returncode == 125 and b"only size=SIZE" in bad.stderr
    assert_clean(host, sim)


def test_tp3_cannot_grow_a_sandbox(sim_roots: dict[str, SimulatedHost]) -> None:
    sim = sim_roots["tp3"].start()
    with Host.open(sim="tp3", root=sim.root) as host:
        with pytest.raises(errors.NotSupported, match="API generation 1"):
            host.containers.create("windowsservercore", storage_size=50 * 1024 ** 3)
        assert list(host.records.all()) == [] and not [p for p in host.layers_root.iterdir()]


def test_a_running_hyperv_container_is_committed_with_stop_and_restarted(
        case: tuple[Host, SimulatedHost, str]) -> None:
    """commit keeps nothing of the isolation (an image has no such field): a Hyper-V container is
    stopped (its VM lets go of the disk), committed, and started again in a utility VM."""
    from wincontainers.build.commits import commit

    host, sim, route = case
    c = host.containers.create("windowsservercore", "cmd /c ping -n 300 127.0.0.1", isolation="hyperv",
                               hyperv_route=route)
    try:
        c.start(detach=True)
        assert c.exec('cmd /S /C "echo kept> C:\\\\kept.txt"').wait(30) == 0
        with pytest.raises(errors.InvalidState):
            commit(c, "hv/commit:1")
        image = commit(c, "hv/commit:1", stop=True, restart=True)
        assert c.status == "running" and c.record.isolation == "hyperv"
        assert [s for s in _systems(sim) if s["id"] == c.id][0]["hyperv"] is True
        done = host.containers.run("hv/commit:1", 'cmd /S /C "type C:\\\\kept.txt"', isolation="hyperv",
                                   hyperv_route=route)
        assert done.stdout == b"kept\r\n" and image.id
    finally:
        c.remove(force=True)
        c.close()
        for image in host.images.list():
            host.images.remove(image.id, force=True, prune=False)
        host.images.gc()
    assert_clean(host, sim)
