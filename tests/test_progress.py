"""``progress=`` taken one way everywhere: True, a callable, a tqdm bar; with or without tqdm."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from wincontainers import Host, errors, progress as progress_module
from wincontainers.build.builder import build
from wincontainers.build.commits import commit
from wincontainers.progress import Progress, open_progress, progress_for
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "dockerfiles" / "multistage"


@pytest.fixture
def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if tqdm were not installed (``import tqdm...`` raises ImportError)."""
    for name in list(sys.modules):
        if name == "tqdm" or name.startswith("tqdm."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setattr(progress_module, "_warned_no_tqdm", [False])


def _every_operation(host: Host, tmp_path: Path, progress: Any) -> list[str]:
    """Run each public method taking ``progress=`` with it; what each made."""
    store = host.images
    done = []
    saved = store.save(["ms:1"], tmp_path / "a.tar", progress=progress)
    done.append("save")
    other = host.image_store(tmp_path / "other")
    other.load(saved, progress=progress)
    done.append("load")
    with host.containers.create("ms:1", image_command=False) as c:
        c.start()
        c.run('cmd /S /C "echo changed> note.txt"')
        c.stop()
        exported = host.layers.export_tar(c.id, tmp_path / "sandbox.tar", progress=progress)
        done.append("export_tar")
        assert exported.entries > 0
        commit(c, "ms:committed", progress=progress)
        done.append("commit")
    build(host, EXAMPLE, tags=["ms:2"], no_cache=True, output=lambda _t: None, progress=progress)
    done.append("build")
    for image in other.list():
        other.remove(image.id, force=True, prune=False)
    other.gc()
    return done


def test_progress_true_without_tqdm_is_silent_and_says_why(
        built: Host, tmp_path: Path, no_tqdm: None, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.INFO, logger="wincontainers.progress"):
        assert _every_operation(built, tmp_path, True) == ["save", "load", "export_tar", "commit", "build"]
    said = [r.getMessage() for r in caplog.records if r.name == "wincontainers.progress"]
    assert len(said) == 1 and "wincontainers[progress]" in said[0]  # once, not per operation
    assert capsys.readouterr().err == ""


def test_progress_true_callable_and_a_callers_bar_everywhere(built: Host, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tqdm import tqdm

    assert _every_operation(built, tmp_path, True) == ["save", "load", "export_tar", "commit", "build"]
    assert "save a.tar" in capsys.readouterr().err  # the bars were drawn
    seen: list[tuple[int, int]] = []
    _every_operation(built, tmp_path, lambda done, files: seen.append((done, files)))
    assert seen and seen[-1][0] > 0
    bar = tqdm(total=None, disable=False, file=open("/dev/null", "w"))
    try:
        _every_operation(built, tmp_path, bar)
        assert bar.n > 0 and not bar.disable  # advanced by every step, left open for its owner
    finally:
        bar.close()


def test_a_multi_step_operation_reports_one_running_total(built: Host, tmp_path: Path) -> None:
    store = built.images
    image = store.get("ms:1")
    saved = store.save(["ms:1"], tmp_path / "a.tar")
    seen: list[tuple[int, int]] = []
    other = built.image_store(tmp_path / "other")
    result = other.load(saved, progress=lambda done, files: seen.append((done, files)))
    assert result.layers_imported == len(image.diff_ids) > 1
    assert seen == sorted(seen)  # the second layer's counts continue the first's
    layer_files = sum(r.size for r in other.layer_chain(other.get("ms:1")) if r is not None)
    assert seen[-1][0] >= layer_files > 0
    for each in other.list():
        other.remove(each.id, force=True, prune=False)
    other.gc()


def test_a_bad_progress_value_is_refused_before_any_work(host: Host, tmp_path: Path) -> None:
    import io

    from tests.test_layers import base_layer

    before = host.layers.list()
    with pytest.raises(errors.BadInput, match="progress is True, False, a callable"):
        host.layers.import_tar(io.BytesIO(base_layer()), progress="yes")
    assert host.layers.list() == before
    with pytest.raises(errors.BadInput):
        host.images.save(["nothing"], tmp_path / "x.tar", progress=42)


def test_the_bar_fits_where_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import tqdm.notebook
    import tqdm.std

    real_find_spec = importlib.util.find_spec
    made: list[Any] = []

    def fake(has_widgets: bool) -> None:
        monkeypatch.setattr(progress_module, "_in_notebook", lambda: True)
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: (object() if has_widgets else None) if name == "ipywidgets"
                            else real_find_spec(name, *a))

    class Recorded:
        def __init__(self, **kw: Any) -> None:
            made.append((type(self), kw))

    class Notebook(Recorded):
        pass

    class Text(Recorded):
        pass

    monkeypatch.setattr(tqdm.notebook, "tqdm", Notebook)
    monkeypatch.setattr(tqdm.std, "tqdm", Text)
    fake(has_widgets=False)  # Jupyter without ipywidgets: a text bar, not a widget stuck at zero
    progress_module._new_bar(10, "x")
    fake(has_widgets=True)
    progress_module._new_bar(10, "x")
    monkeypatch.setattr(progress_module, "_in_notebook", lambda: False)
    progress_module._new_bar(None, "")
    assert [m[0] for m in made] == [Text, Notebook, Text]
    assert made[0][1]["total"] == 10 and made[2][1]["total"] is None


def test_steps_join_an_operation() -> None:
    seen: list[tuple[int, int]] = []
    op = open_progress(lambda d, f: seen.append((d, f)))
    assert isinstance(op, Progress)
    for _ in range(2):
        with progress_for(op) as step:
            assert step is not None
            step(10, 1)
            step(25, 2)
            step(20, 2)  # a step's count going back is not a negative move
    assert seen == [(10, 1), (25, 2), (35, 3), (50, 4)]
    with progress_for(None) as nothing:
        assert nothing is None
