"""check_layer: every hostile tar is reported with the right rule, and the blog's layer is explained."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _chained_pax(count: int, record_size: int, typeflag: str = "x") -> bytes:
    """``count`` extended headers in a row before one file, each with its own keys."""
    from tests.hostile_layers import files_dir, raw_file
    from wincontainers.layerfile.tarstream import BLOCK, header_block, pax_record

    out = [files_dir()]
    for i in range(count):
        body = pax_record(f"WINCONTAINERS.pad{i}", "v" * record_size)
        out.append(header_block(name="", typeflag=typeflag, size=len(body), raw_name=b"PaxHeaders.0/x"))
        out.append(body + b"\0" * ((-len(body)) % BLOCK))
    out.append(raw_file(b"Files/x"))
    return b"".join(out) + b"\0" * (2 * BLOCK)


@pytest.mark.parametrize("typeflag", ["x", "g"], ids=["per-entry", "global"])
def test_chained_extended_headers_add_up_to_one_limit(typeflag: str) -> None:
    """Each header under 1 MiB, together over it: refused, not accumulated in memory."""
    import tracemalloc

    data = _chained_pax(4, 400_000, typeflag)
    tracemalloc.start()
    try:
        report = check_layer(io.BytesIO(data))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "malformed-tar" in report.rules(), report.summary()
    assert "limit" in report.summary()
    assert peak < 8 << 20
    assert check_layer(io.BytesIO(_chained_pax(2, 400_000, typeflag))).rules() & {"malformed-tar"} == set()


def test_entry_count_and_size_limits_can_be_raised() -> None:
    from tests.hostile_layers import layer, _f
    from wincontainers.layerfile import TarLimits

    many = layer(*[_f(f"Files/f{i}", b"") for i in range(300)])
    tight = TarLimits(max_entries=200)
    report = check_layer(io.BytesIO(many), limits=tight)
    assert "malformed-tar" in report.rules() and "more than 200 entries" in report.summary()
    assert check_layer(io.BytesIO(many), limits=TarLimits(max_entries=400)).ok
    big = layer(_f("Files/big", b"x" * 100_000))
    report = check_layer(io.BytesIO(big), limits=TarLimits(max_total_size=50_000))
    assert "malformed-tar" in report.rules() and "larger than 50000 bytes" in report.summary()
    assert check_layer(io.BytesIO(big)).ok
    with pytest.raises(ValueError):
        TarLimits(max_entries=0)


def test_the_cli_takes_the_limits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.hostile_layers import layer, _f

    path = tmp_path / "many.tar"
    path.write_bytes(layer(*[_f(f"Files/f{i}", b"") for i in range(30)]))
    run = subprocess.run([sys.executable, "-m", "wincontainers", "layer", "check", "--max-entries", "10", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1 and "more than 10 entries" in run.stdout, (run.stdout, run.stderr)
    run = subprocess.run([sys.executable, "-m", "wincontainers", "layer", "check", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, (run.stdout, run.stderr)


def test_findings_name_the_entry_print_paths_as_they_are_and_come_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.hostile_layers import _f, layer, raw_file, raw_tar, files_dir

    by_id = {c.id: c for c in CASES}
    # a header over a limit, once its entry's name is known
    oversized = check_layer(io.BytesIO(by_id["oversized-header"].tar))
    assert [f.path for f in oversized.findings if f.rule == "malformed-tar"] == ["Files"]
    # a tar cut inside an entry's data names that entry; a broken header names the entry before it
    whole = layer(_f("Files/a.txt", b"A" * 2000), _f("Files/b.txt", b"B"))
    cut = check_layer(io.BytesIO(whole[:whole.index(b"A" * 2000) + 700]))
    assert [f.path for f in cut.findings if f.rule == "malformed-tar"] == ["Files/a.txt"]
    broken = raw_tar(files_dir(), raw_file(b"Files/ok.txt"), b"\x01" * 512)
    after = check_layer(io.BytesIO(broken))
    assert [f.path for f in after.findings if f.rule == "malformed-tar"] == ["<stream> (after Files/ok.txt)"]
    # a device path is a device path, not a stream; printed with its backslashes as they are
    device = by_id["nt-prefix"]
    rules = check_layer(io.BytesIO(device.tar)).rules()
    assert "unc-path" in rules and not rules & {"stream-name", "orphan-stream"}
    path = tmp_path / "device.tar"
    path.write_bytes(device.tar)
    run = subprocess.run([sys.executable, "-m", "wincontainers", "layer", "check", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert '"\\\\?\\C:\\x"' in run.stdout and "\\\\\\\\" not in run.stdout, run.stdout
    # one finding per path and rule
    doubled = check_layer(io.BytesIO(layer(_f("Files/./a/./b"))))
    assert [f.rule for f in doubled.findings].count("dot-component") == 1


def test_utility_vm_rules_follow_the_parents(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A diff layer's utility VM needs a parent with one, and deletes only what that one has; a
    base layer may link its utility VM to Files/ (hcsshim #115), a diff layer may not."""
    from tests.hostile_layers import _d, _f, _hard, _wh, layer

    plain = tmp_path / "plain"
    (plain / "Files").mkdir(parents=True)
    with_uvm = tmp_path / "with-uvm"
    (with_uvm / "UtilityVM" / "Files" / "Windows").mkdir(parents=True)
    (with_uvm / "UtilityVM" / "Files" / "Windows" / "old.dll").write_bytes(b"MZ")
    changes = layer(_d("UtilityVM"), _d("UtilityVM/Files"), _d("UtilityVM/Files/Windows"),
                    _wh("UtilityVM/Files/Windows/.wh.old.dll"), _wh("UtilityVM/Files/Windows/.wh.gone.dll"))
    over_plain = check_layer(io.BytesIO(changes), parents=[plain])
    assert "utilityvm-no-parent" in over_plain.rules() and not over_plain.ok
    over_uvm = check_layer(io.BytesIO(changes), parents=[plain, with_uvm])  # the nearest with one counts
    missing = [f for f in over_uvm.findings if f.rule == "utilityvm-whiteout-missing"]
    assert [f.path for f in missing] == ["UtilityVM/Files/Windows/.wh.gone.dll"] and not over_uvm.ok
    linked = layer(_f("Files/a.dll"), _d("UtilityVM"), _d("UtilityVM/Files"),
                   _f("UtilityVM/Files/EFI.bcd"), _hard("UtilityVM/Files/a.dll", "Files/a.dll"), hives=False)
    assert "hardlink-cross-namespace" not in check_layer(io.BytesIO(linked), base=True).rules()
    assert "hardlink-cross-namespace" in check_layer(io.BytesIO(linked), base=False).rules()


_NAME_PARTS = ["Files", "Hives", "Windows", "CON", "nul.txt", "com1", "a.", "b ", "..", ".", "", "x:y", "a\\b",
               "LPT\u00b9", "caf\u00e9", "q?", "x" * 256, "Program Files", "f.txt", "/", "C:", "\\\\?\\C:"]


@given(st.lists(st.sampled_from(_NAME_PARTS) | st.text(alphabet="ab./\\: ?*\u00e9\x01", max_size=6), max_size=8),
       st.integers(0, 16400))
@settings(max_examples=600, deadline=None)
def test_the_quick_name_check_says_what_the_careful_one_says(parts: list[str], depth: int) -> None:
    """validate_name takes a shorter way for plain ASCII names (their folders' findings are
    remembered): whatever the name, its findings are those of the full check, in order."""
    from wincontainers.layerfile.names import _name_problems, validate_name

    for name in ("/".join(parts), "Files/" + "/".join(parts), "Files/" + "d/" * (depth % 140) + "/".join(parts),
                 "Files/" + "d/" * depth + "/".join(parts)):
        assert validate_name(name) == _name_problems(name), name
        assert validate_name(name) == _name_problems(name), name  # remembered: the same again
