"""One image store, several processes: builds, tags, removals and gc at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wincontainers import Host
from tests.conftest import SimulatedHost
from tests.conftest import ROOT

WORKER = r"""
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
from wincontainers import Host
from wincontainers.build.builder import build
profile, root, context, worker, rounds = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
host = Host.open(sim=profile, root=root)
failures = []
for i in range(rounds):
    try:
        result = build(host, context, tags=[f"stress{worker}:{i}"], build_args={"ROUND": str(i % 3)},
                       output=lambda _t: None)
        host.images.tag(result.image.id, f"stress{worker}:again{i}")
        host.images.remove(f"stress{worker}:{i}")
        host.images.remove(f"stress{worker}:again{i}")
        host.images.gc()
    except Exception as exc:
        failures.append(f"round {i}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
host.close()
print(json.dumps({"failures": failures}))
"""


@pytest.mark.parametrize("profile", ["ws2019"])
def test_builds_tags_removals_and_gc_in_four_processes(sim: SimulatedHost, profile: str, tmp_path: Path) -> None:
    rounds = int(os.environ.get("WINCONTAINERS_STRESS_ROUNDS", "20"))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "app.txt").write_text("app")
    (context / "Dockerfile").write_text(
        "FROM windowsservercore\nARG ROUND\nCOPY app.txt C:/app/\nRUN echo %ROUND%> round.txt\n")
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(ROOT), profile, str(sim.root), str(context), str(n),
                          str(rounds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(4)
    ]
    failures = []
    for proc in workers:
        out, err = proc.communicate(timeout=1500)
        assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
        failures += json.loads(out.decode().strip().splitlines()[-1])["failures"]
    assert failures == [], f"{len(failures)} of {4 * rounds} rounds failed:\n" + "\n".join(failures[:3])
    host = Host.open(sim=profile, root=sim.root)
    try:
        store = host.images
        report = store.fsck()
        assert report.clean, report.summary()
        store.cache_clear()
        store.gc()
        known = {os.path.normcase(r.folder) for r in store.layer_records() if r.folder}
        folders = {os.path.normcase(str(layer.path)) for layer in host.layers.list()}
        assert folders <= known, f"layer folders no record holds: {sorted(folders - known)}"
        assert not any(i.repo_tags and i.repo_tags[0].startswith("stress") for i in store.list())
    finally:
        _empty(host)
        host.close()


def _empty(host: Host) -> None:
    """Leave the shared simulated host as the next test expects it: no image, no layer."""
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    host.images.cache_clear()
    host.images.gc()
    assert list(host.layers_root.iterdir()) == []


LOADER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from wincontainers import Host
host = Host.open(sim=sys.argv[2], root=sys.argv[3])
host.images.load(sys.argv[4])
host.close()
"""


@pytest.mark.parametrize("profile", ["ws2019"])
def test_concurrent_loads_of_one_archive_leave_one_folder_per_layer(sim: SimulatedHost, profile: str,
                                                                     tmp_path: Path) -> None:
    from wincontainers.build.builder import build

    host = Host.open(sim=profile, root=sim.root)
    try:
        build(host, ROOT / "examples" / "dockerfiles" / "multistage", tags=["conc:1"], output=lambda _t: None)
        archive = host.images.save(["conc:1"], tmp_path / "conc.tar")
        host.images.remove("conc:1")
        host.images.cache_clear()
        host.images.gc()
        before = {str(layer.path) for layer in host.layers.list()}
        loaders = [subprocess.Popen([sys.executable, "-c", LOADER, str(ROOT), profile, str(sim.root), str(archive)],
                                    stderr=subprocess.PIPE) for _ in range(4)]
        for proc in loaders:
            _out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        store = host.images
        records = {os.path.normcase(r.folder) for r in store.layer_records() if r.folder}
        made = {os.path.normcase(str(layer.path)) for layer in host.layers.list()} - {os.path.normcase(p) for p in before}
        assert made <= records, f"folders no record names: {sorted(made - records)}"
        assert store.fsck().clean and store.fsck().garbage == ()
        # a folder the store made that no record names is reported, and collected
        chain = store.layer_chain(store.get("conc:1"))
        top = tmp_path / "top.tar"
        host.layers.export_tar(str(chain[-1].folder), top)
        stray = host.layers.import_tar(top, parents=[str(chain[-2].folder)], owner="images")
        mine = host.layers.import_tar(top, parents=[str(chain[-2].folder)])
        assert any(stray.id in g for g in store.fsck().garbage)
        store.gc()
        assert not stray.path.exists() and mine.path.exists()  # a layer made outside the store stays
        host.layers.destroy(mine)
    finally:
        _empty(host)
        host.close()
