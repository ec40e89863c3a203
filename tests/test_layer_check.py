"""check_layer: every hostile tar is reported with the right rule, and the blog's layer is explained."""

from __future__ import annotations

import io
import json

import pytest

from wincontainers.layerfile import RULES, check_layer
from tests.conftest import DATA
from tests.hostile_layers import blog_layer, corpus

CASES = corpus()


def test_the_corpus_covers_thirty_pitfalls() -> None:
    assert len(CASES) >= 30
    assert len({c.rule for c in CASES}) >= 30
    assert {c.rule for c in CASES} <= set(RULES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_hostile_tar_is_reported_with_its_rule(case) -> None:  # type: ignore[no-untyped-def]
    report = check_layer(io.BytesIO(case.tar), **case.check)
    hits = [f for f in report.findings if f.rule == case.rule]
    assert hits, f"{case.id}: expected {case.rule}, got {[(f.rule, f.path) for f in report.findings]}"
    assert all(f.severity == case.severity for f in hits)
    assert all(f.advice for f in report.findings)
    assert report.ok is (case.severity == "warning" and not report.errors)


def test_a_clean_layer_has_no_findings() -> None:
    from tests.test_layerfile import example_entries, write

    report = check_layer(io.BytesIO(write(example_entries())))
    assert report.findings == ()
    assert report.ok and report.entries == 12
    assert report.diff_id and report.diff_id.startswith("sha256:")


def test_blog_layer_report_names_each_file_with_advice() -> None:
    report = check_layer(io.BytesIO(blog_layer()), base=False, parents=[])
    by_rule = {f.rule: f for f in report.findings}
    assert by_rule["unsupported-reparse"].path == "Files/cygwin64/bin/vi"
    assert "LX symlink" in by_rule["unsupported-reparse"].message
    assert "Catastrophic failure" in by_rule["unsupported-reparse"].advice
    assert by_rule["hardlink-missing-target"].path == "Files/cygwin64/bin/sh.exe"
    assert by_rule["recycle-bin"].path == "Files/$Recycle.Bin/$R1234.txt"
    assert by_rule["long-path"].path.endswith("/file.txt")
    assert not report.ok
    text = report.summary()
    assert "Files/cygwin64/bin/vi" in text and "Files/cygwin64/bin/sh.exe" in text


def test_fixture_with_stray_top_level_entries() -> None:
    report = check_layer(DATA / "layers" / "buildpacks-windows-shaped-layer-a.tar")
    stray = {f.path for f in report.findings if f.rule == "outside-namespace"}
    assert "root" in stray and "root/readonly" in stray
    report_b = check_layer(DATA / "layers" / "buildpacks-windows-shaped-layer-b.tar")
    assert {f.path for f in report_b.findings if f.rule == "outside-namespace"} == {"other-dir", "other-dir/other-file"}
    assert any(f.rule == "posix-symlink" for f in report_b.findings)


def test_unreadable_input_is_a_finding_not_a_crash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    report = check_layer(junk)
    assert report.rules() == {"malformed-tar"} and not report.ok
    assert json.loads(report.dumps())["errors"] == 1
