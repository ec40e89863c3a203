"""Damaged state: every command says which file is unreadable, and fsck --repair gives back a
working store (quarantining what it could not read)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers import Host, errors
from wincontainers.build.builder import build
from tests.conftest import SimulatedHost
from tests.conftest import ROOT, cli

EXAMPLE = ROOT / "examples" / "dockerfiles" / "multistage"


@pytest.fixture
def damaged(host: Host, sim: SimulatedHost) -> Iterator[tuple[Host, SimulatedHost]]:
    build(host, EXAMPLE, tags=["dmg:1"], output=lambda _t: None)
    container = host.containers.create("dmg:1", name="victim")
    container.close()
    store = host.images
    chain = store.layer_chain("dmg:1")
    (store.layers_dir / f"{chain[-1].chain_id.split(':')[1]}.json").write_bytes(b'{"chain_id": "sha256:\xff\xfe')
    (host.state_dir / "containers" / f"{container.id}.json").write_bytes(b"\xff{truncat")
    (store.root / "index.json").write_bytes(b'{"manifests": [tru')
    yield host, sim
    store.fsck(repair=True)  # the simulated host is shared with other tests: leave it whole
    shutil.rmtree(store.root / "quarantine", ignore_errors=True)
    for record in host.records.all():
        host.containers.get(record.id).remove(force=True)
    for image in store.list():
        store.remove(image.id, force=True, prune=False)
    store.cache_clear()
    store.gc()


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_damaged_state_is_named_never_a_traceback(damaged: tuple[Host, SimulatedHost]) -> None:
    host, sim = damaged
    for args in (["images"], ["image", "gc"], ["run", "--rm", "dmg:1", "cmd", "/c", "echo", "hi"],
                 ["inspect", "victim"]):
        run = cli(*args, sim=sim)
        assert run.returncode != 0, args
        text = run.stderr.decode()
        assert "Traceback" not in text and "is damaged" in text and "Hint:" in text, (args, text)
    fsck = cli("image", "fsck", sim=sim)
    assert fsck.returncode == 1 and b"Traceback" not in fsck.stderr
    assert b"index.json: not valid JSON" in fsck.stdout
    ps = cli("ps", "-a", sim=sim)
    assert ps.returncode == 0 and b"Damaged record" in ps.stdout and b"victim" in ps.stdout
    with pytest.raises(errors.DamagedRecord) as info:
        host.containers.get("victim")
    assert "rm -f" in str(info.value)


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_fsck_repair_gives_back_a_working_store(damaged: tuple[Host, SimulatedHost]) -> None:
    host, sim = damaged
    run = cli("image", "fsck", "--repair", sim=sim)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout.decode()
    assert out.count("quarantined:") == 3 and "index.json rebuilt" in out and "layer record" in out, out
    assert "container" in out and "removed" in out
    box = host.images.root / "quarantine"
    assert sorted(p.name for p in box.rglob("*.json"))[0:1] and len(list(box.rglob("*.json"))) == 3
    store = host.images
    assert store.fsck().clean and store.fsck().garbage == ()
    assert host.records.damaged() == [] and list(host.records.all()) == []
    images = store.list()
    assert len(images) == 2 and all(not i.tags for i in images)  # the tags were in the damaged index
    built = next(i for i in images if len(i.diff_ids) > 1)
    store.tag(built.id, "dmg:again")
    result = host.containers.run("dmg:again", "cmd /c echo repaired")
    assert result.returncode == 0 and result.stdout.strip() == b"repaired"
    assert cli("image", "gc", sim=sim).returncode == 0


@pytest.mark.simulator("the simulator's object table")
def test_rm_f_removes_a_container_whose_record_is_damaged(host: Host, sim: SimulatedHost) -> None:
    build(host, EXAMPLE, tags=["dmg:2"], output=lambda _t: None)
    container = host.containers.create("dmg:2", "ping -t localhost", name="broken")  # not its CMD: it ends
    container.start()
    sandbox = Path(container.record.sandbox)
    container.close()
    (host.state_dir / "containers" / f"{container.id}.json").write_text(json.dumps(["not", "a", "record"]))
    assert container.id.lower() in json.dumps(sim.objects()).lower()
    assert cli("rm", "broken", sim=sim).returncode == 1
    run = cli("rm", "-f", "broken", sim=sim)
    assert run.returncode == 0, run.stderr
    assert not sandbox.exists() and host.records.damaged() == []
    assert container.id.lower() not in json.dumps(sim.objects()).lower()  # its compute system is gone
    assert cli("run", "--rm", "--name", "broken", "dmg:2", "cmd", "/c", "echo", "ok", sim=sim).returncode == 0
    for image in host.images.list():  # base images included: the next test finds an empty host
        host.images.remove(image.id, force=True, prune=False)
    host.images.cache_clear()
    host.images.gc()
    assert list(host.layers_root.iterdir()) == []
