"""Crash consistency: a process killed (SIGKILL) at a random moment of commit, build or load
never leaves the image store broken: fsck finds no dangling tag or missing object, and gc
removes whatever the killed process left half made. 102 trials, spread over the profiles."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wincontainers import Host
from wincontainers.build.builder import build
from wincontainers.images.archive import save
from tests.conftest import SimulatedHost
from tests.conftest import ROOT

TRIALS_PER_PROFILE = 34
EXAMPLE = ROOT / "examples" / "dockerfiles" / "hello"

WORKER = r"""
import itertools, os, sys
sys.path.insert(0, sys.argv[1])
from wincontainers import Host
from wincontainers.build.builder import build
from wincontainers.build.commits import commit
from wincontainers.images.archive import load
operation, profile, root, example, archive = sys.argv[2:7]
host = Host.open(sim=profile, root=root)
print("ready", flush=True)
for n in itertools.count():
    if operation == "commit":
        c = host.containers.create("windowsservercore", name=f"crash-{os.getpid()}-{n}")
        c.start()
        c.run('cmd /S /C "echo data> data.txt"')
        commit(c, f"crash/commit:{n % 3}", stop=True)
        c.remove(force=True)
    elif operation == "build":
        build(host, example, tags=[f"crash/build:{n % 3}"], no_cache=True, output=lambda _t: None)
    else:
        load(host.images, archive)
"""


def _cleanup(host: Host) -> None:
    for record in list(host.records.all()):
        try:
            host.containers.get(record.id).remove(force=True)
        except Exception:
            pass


@pytest.mark.simulator("a simulated host of its own")
@pytest.mark.parametrize("profile_name", ["tp3", "2016", "ws2019"])
def test_sigkill_during_commit_build_and_load(profile_name: str, tmp_path: Path) -> None:
    # A simulated host of its own: killed clients leave daemon-side state (activated volumes,
    # compute systems) that is theirs, not the image store's, and other tests must not see it.
    sim = SimulatedHost(profile_name, tmp_path / "sim").start()
    host = Host.open(sim=profile_name, root=sim.root)
    build(host, EXAMPLE, tags=["crash/source:1"], output=lambda _t: None)
    archive = save(host.images, ["crash/source:1"], tmp_path / "source.tar")
    rng = random.Random(f"crash-{profile_name}")
    operations = ["commit", "build", "load"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    killed_mid_work = 0
    left_garbage = 0
    try:
        for trial in range(TRIALS_PER_PROFILE):
            operation = operations[trial % 3]
            worker = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(ROOT), operation, profile_name, str(sim.root), str(EXAMPLE),
                 str(archive)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            assert worker.stdout is not None
            line = worker.stdout.readline()
            assert line == b"ready\n", worker.stderr.read() if worker.stderr else line  # type: ignore[union-attr]
            time.sleep(rng.uniform(0.02, 1.5))
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            code = worker.wait(30)
            assert code == -signal.SIGKILL, (
                f"trial {trial} ({operation}): the worker ended on its own ({code}): "
                f"{worker.stderr.read().decode(errors='replace')[-3000:]}")  # type: ignore[union-attr]
            killed_mid_work += 1
            report = host.images.fsck()
            assert report.clean, f"trial {trial} ({operation}): {report.summary()}"
            left_garbage += bool(report.garbage)
            for image in host.images.list():  # every tag resolves to a complete image
                assert host.images.layer_chain(image)
            if trial % 5 == 4:  # now and then, clean up as an operator would
                _cleanup(host)
                host.images.gc()
                assert host.images.fsck().garbage == ()
    finally:
        _cleanup(host)
        for image in host.images.list():
            host.images.remove(image.id, force=True, prune=False)
        host.images.cache_clear()
        host.images.gc()
        report = host.images.fsck()
        host.close()
        sim.stop()
    assert killed_mid_work == TRIALS_PER_PROFILE
    assert left_garbage >= 5, "the kills did not land inside the work (no half-made object was ever seen)"
    assert report.clean and report.garbage == (), report.summary()
