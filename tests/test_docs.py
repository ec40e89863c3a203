"""The documentation: every code block runs, and every public name is in the API reference.

Each page's blocks run in order in one process, on the simulated host (``ws2019`` unless a
block opens another profile), in a folder of their own: ``python`` blocks share one namespace,
an ``sh`` block runs as one bash script, and in ``console`` blocks each line after ``$ `` runs
on its own (a trailing ``# exits N`` gives the exit status expected). ``text`` and other blocks show output
or Windows-only commands and are not run.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import api_reference  # noqa: E402

DOCS = ROOT / "docs"
RUNNABLE = ("python", "sh", "console")
BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)

RUNNER = r'''
import json, os, re, subprocess, sys
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for lang, code, where in blocks:
    if lang == "python":
        exec(compile(code, where, "exec"), namespace)
        continue
    if lang == "sh":  # one script: a cd holds for the lines after it
        done = subprocess.run(["bash", "-ec", code])
        if done.returncode != 0:
            sys.exit(f"{where}: the sh block exited {done.returncode}")
        continue
    lines = [l[2:] for l in code.splitlines() if l.startswith("$ ")]
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        expected = 0
        found = re.search(r"#\s*exits (\d+)\s*$", line)
        if found:
            expected = int(found.group(1))
        sys.stdout.flush()
        done = subprocess.run(["bash", "-c", line])
        if done.returncode != expected:
            sys.exit(f"{where}: `{line}` exited {done.returncode}, not {expected}")
'''


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "reference" not in p.relative_to(DOCS).parts)


def code_blocks(page: Path) -> list[tuple[str, str, str]]:
    text = page.read_text(encoding="utf-8")
    out = []
    for found in BLOCK.finditer(text):
        line = text.count("\n", 0, found.start()) + 1
        out.append((found.group(1), found.group(2), f"{page.relative_to(ROOT)}:{line}"))
    return out


RUN_PAGES = [p for p in pages() if any(lang in RUNNABLE for lang, _, _ in code_blocks(p))]


@pytest.mark.simulator("the documentation's examples run on the simulated host")
@pytest.mark.parametrize("page", RUN_PAGES, ids=[str(p.relative_to(DOCS)) for p in RUN_PAGES])
def test_the_code_blocks_of_a_page_run(page: Path, tmp_path: Path) -> None:
    blocks = [b for b in code_blocks(page) if b[0] in RUNNABLE]
    (tmp_path / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    state = tmp_path / "state"
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, WINCONTAINERS_SIM="ws2019", XDG_STATE_HOME=str(state),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""), PYTEST_ADDOPTS="")
    env.pop("WINCONTAINERS_ROOT", None)
    env.pop("WINCONTAINERS_TEST_PROFILES", None)
    try:
        done = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "blocks.json")],
                              cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{page.name}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    finally:
        for profile_root in (state / "wincontainers" / "sim").glob("*") if state.exists() else []:
            subprocess.run([sys.executable, "-m", "wincontainers", "--sim", profile_root.name, "--root",
                            str(profile_root), "sim", "stop"], env=env, capture_output=True, timeout=120)


def test_every_page_with_code_has_runnable_blocks_or_says_why() -> None:
    """A block in a language the runner skips is output (text) or needs Windows (powershell)."""
    allowed = set(RUNNABLE) | {"text", "powershell", "json", "dockerfile", ""}
    for page in pages():
        for lang, _, where in code_blocks(page):
            assert lang in allowed, f"{where}: a ```{lang} block is neither run nor known to be output"


def test_every_public_name_is_in_the_api_reference() -> None:
    missing = []
    for module_name in api_reference.public_modules():
        page = DOCS / "reference" / api_reference.page_name(module_name)
        text = page.read_text(encoding="utf-8") if page.exists() else ""
        for name in getattr(importlib.import_module(module_name), "__all__", ()):
            if f"::: {module_name}.{name}\n" not in text and f"| `{name}` |" not in text:
                missing.append(f"{module_name}.{name}")
    assert missing == [], f"not in docs/reference (run python tools/api_reference.py): {missing}"


def test_the_api_reference_pages_are_current() -> None:
    wanted = api_reference.pages()
    have = {p.name: p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md")}
    assert have == wanted, "docs/reference is stale: run python tools/api_reference.py"


def test_the_site_navigation_names_every_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    named = set(re.findall(r"([\w./-]+\.md)", nav))
    every = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert every == named, f"pages not in mkdocs.yml nav: {every - named}; nav entries without a page: {named - every}"
