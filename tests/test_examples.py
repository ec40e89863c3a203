"""The examples run as a user runs them (their own process), on every simulated profile; the
notebook runs in a Jupyter kernel (nbclient) and shows its objects as HTML."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers import Host
from tests.conftest import SimulatedHost
from tests.conftest import ROOT, run_example

NOTEBOOK = ROOT / "examples" / "notebooks" / "quickstart.ipynb"


@pytest.fixture
def sim(sim: SimulatedHost, profile: str) -> Iterator[SimulatedHost]:
    """The session's simulated host, its build cache emptied after an example that builds
    (an example keeps the cache, as a user's script would; the next tests expect none).
    (``profile`` is named so that the tests are parametrized over it: pytest before 9 does
    not look into the fixture this one overrides when it parametrizes.)"""
    yield sim
    with Host.open(sim=sim.profile.name, root=sim.root) as host:
        assert host.containers.list(all=True) == []
        for image in host.images.list():
            host.images.remove(image.id, force=True, prune=False)
        host.images.cache_clear()
        host.images.gc()
        assert host.layers.list() == [], host.layers.list()


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_hello_example(sim: SimulatedHost) -> None:
    done = run_example("hello.py", sim)
    assert done.returncode == 0, done.stderr
    assert "output: 'hello' (exit code 0)" in done.stdout and "containers left: 0" in done.stdout


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_blog_scenario(sim: SimulatedHost) -> None:
    done = run_example("blog.py", sim, timeout=300)
    out = done.stdout
    assert done.returncode == 0, done.stderr + out
    assert "step 3 failed: RUN cd C:\\cygwin64\\bin && ln -s vim vi" in out
    assert "error unsupported-reparse Files/cygwin64/bin/vi" in out and "Catastrophic failure" in out
    assert "PING.EXE" in out  # top lists the running container's processes
    assert "commit while running is refused: stop it first" in out
    assert "committed " in out and out.rstrip().endswith("containers left: 0")


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_images_example(sim: SimulatedHost) -> None:
    done = run_example("images.py", sim, timeout=300)
    out = done.stdout
    assert done.returncode == 0, done.stderr + out
    assert "loaded into a second store: [['hello:1']]" in out
    assert "a container of the loaded image reads: 'the application'" in out
    assert "fsck: clean / clean" in out


@pytest.mark.simulator("a simulated host of its own")
def test_the_notebook_runs_and_shows_rich_displays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat

    sys.path.insert(0, str(ROOT / "tools"))
    import notebook as tool  # tools/notebook.py: the cells and how they are run

    saved = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in saved.cells] == [source for _, source in tool.CELLS], \
        "examples/notebooks/quickstart.ipynb is stale: run python tools/notebook.py"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("WINCONTAINERS_ROOT", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    work = tmp_path / "examples" / "notebooks"
    work.mkdir(parents=True)
    for folder in ("dockerfiles", "blog"):
        (tmp_path / "examples" / folder).symlink_to(ROOT / "examples" / folder)
    try:
        ran = tool.execute(saved, work)
    finally:
        sim = SimulatedHost("ws2019", tmp_path / "state" / "wincontainers" / "sim" / "ws2019")
        sim.stop()
    html = {}
    for cell in ran.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{cell.source}: {output.get('ename')}: {output.get('evalue')}"
            if "text/html" in output.get("data", {}):
                html[cell.source] = output["data"]["text/html"]
    shown = "\n".join(html.values())
    for kind in ("<strong>Container</strong>", "<strong>Image</strong>", "<strong>Build</strong>",
                 "<strong>Layer check</strong>", "<strong>Host</strong>", "<strong>Containers</strong>"):
        assert kind in shown, f"no {kind} among the notebook's HTML outputs"
    assert "Files/cygwin64/bin/vi" in shown  # the layer report names the file
    streams = "".join("".join(o.get("text", "")) for c in ran.cells for o in c.get("outputs", [])
                      if o.output_type == "stream" and o.name == "stdout")
    assert "Step 1/10 : FROM windowsservercore" in streams and "the application" in streams  # live output
    # the saved notebook carries the same displays (it is what a reader sees without running it)
    on_disk = nbformat.read(NOTEBOOK, as_version=4)
    saved_html = json.dumps([o.get("data", {}).get("text/html") for c in on_disk.cells for o in c.get("outputs", [])])
    assert "<strong>Layer check</strong>" in saved_html and "<strong>Container</strong>" in saved_html


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_hyperv_example(sim: SimulatedHost) -> None:
    done = run_example("hyperv.py", sim)
    assert done.returncode == 0, done.stderr
    routes = {"tp3": [], "2016": ["vmcompute"], "ws2019": ["vmcompute", "computecore"]}[sim.profile.name]
    if not routes:
        assert "no Hyper-V containers here" in done.stdout and "Hyper-V routes: none" in done.stdout
    for route in routes:
        assert f"[{route}] output: 'hello' (exit code 0)" in done.stdout, done.stdout
        assert f"[{route}] processes, with the utility VM's PIDs: " in done.stdout
    assert "containers left: 0" in done.stdout


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_registry_example(sim: SimulatedHost) -> None:
    done = run_example("registry.py", sim)
    assert done.returncode == 0, done.stderr
    assert "(the same: True)" in done.stdout and "output: 'hello from the image'" in done.stdout, done.stdout
