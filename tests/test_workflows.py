"""The GitHub workflows: the Windows lane runs the selftest and the suite on real hosts, then on
the simulator; the Linux lane runs .ci/run. (.ci/run checks both against GitHub's schema with
check-jsonschema; this checks what the schema cannot: that they do what docs/real-hosts.md
says.)"""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return doc


def commands(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_every_job_and_long_step_has_a_timeout_and_nothing_needs_secrets() -> None:
    for name in ("windows.yml", "ci.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "${{ secrets" not in text and "secrets:" not in text, name
        doc = load(name)
        assert doc["permissions"] == {"contents": "read"}, name
        for job_name, job in doc["jobs"].items():
            assert 0 < job["timeout-minutes"] <= 120, (name, job_name)
            for step in job["steps"]:
                if "pytest" in str(step.get("run", "")) or ".ci/run" in str(step.get("run", "")):
                    assert step.get("timeout-minutes", 0) < job["timeout-minutes"], (name, job_name, step["name"])


def test_the_windows_lane_runs_the_selftest_and_the_suite_on_2019_and_2022_then_on_linux() -> None:
    doc = load("windows.yml")
    real = doc["jobs"]["real-host"]
    matrix = real["strategy"]["matrix"]["include"]
    assert {m["os"] for m in matrix} == {"windows-2019", "windows-2022"}
    # each host gets the base image of its own build (process isolation needs the same build)
    assert {m["os"]: m["image"].rsplit(":", 1)[1] for m in matrix} == {"windows-2019": "ltsc2019",
                                                                       "windows-2022": "ltsc2022"}
    assert real["runs-on"] == "${{ matrix.os }}"
    assert real["env"]["WINCONTAINERS_TEST_HOST"] == "real"
    assert real["env"]["WINCONTAINERS_TEST_IMAGE"] == "${{ matrix.image }}"
    run = commands(real)
    assert "docker pull ${{ matrix.image }}" in run
    assert "wincontainers selftest --json" in run
    assert "pytest --host real" in run and "--junitxml=" in run
    uploaded = [s["with"]["path"] for s in real["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert any("selftest" in p for p in uploaded) and any("junit" in p for p in uploaded)
    assert all(s.get("if") == "always()" for s in real["steps"]
               if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    linux = doc["jobs"]["simulator"]
    assert linux["runs-on"] == "ubuntu-latest" and linux["needs"] == "real-host" and linux["if"] == "always()"
    assert "pip install '.[test]'" in commands(linux) and "-m pytest" in commands(linux)


def test_the_linux_lane_runs_ci_run_and_says_why_check_cdefs_is_skipped() -> None:
    doc = load("ci.yml")
    job = doc["jobs"]["linux"]
    assert "3.9" in job["strategy"]["matrix"]["python"]  # the oldest Python we support
    assert ".ci/run" in commands(job)
    assert job["env"]["WINCONTAINERS_CI_WITHOUT_SHARED"] == "1"
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "WINCONTAINERS_CI_WITHOUT_SHARED" in ci_run and "check-cdefs SKIPPED" in ci_run
    assert "check-jsonschema --builtin-schema vendor.github-workflows" in ci_run


def test_the_readme_and_the_docs_describe_the_lanes() -> None:
    readme = (ROOT / "README.md").read_text()
    doc = (ROOT / "docs" / "real-hosts.md").read_text()
    for text in (readme, doc):
        assert "--host real" in text and "WINCONTAINERS_TEST_IMAGE" in text
        assert ".github/workflows/windows.yml" in text
    assert "Running the suite on a Windows machine" in doc
