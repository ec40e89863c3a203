"""Rich display: every public object draws itself as HTML (Jupyter) and text (IPython)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import attrs
import pytest

from wincontainers import Host
from wincontainers.build.builder import build
from wincontainers.display import MAX_ROWS, RichDisplay, Shown, short_id
from wincontainers.layerfile import check_layer
from tests.conftest import ROOT
from tests.hostile_layers import blog_layer
from tests.test_layers import base_layer

EXAMPLE = ROOT / "examples" / "dockerfiles" / "multistage"


class Printer:
    """What IPython hands ``_repr_pretty_``: collects the text."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def text(self, value: str) -> None:
        self.out.append(value)


def drawn(obj: Any) -> tuple[str, str]:
    """(HTML, text) of ``obj``, checked to be well formed enough to show."""
    assert isinstance(obj, RichDisplay), type(obj)
    html = obj._repr_html_()
    printer = Printer()
    obj._repr_pretty_(printer, False)
    text = "".join(printer.out)
    assert html.startswith('<div class="wincontainers"') and html.endswith("</div>")
    assert html.count("<table") == html.count("</table>") and html.count("<span") == html.count("</span>")
    assert text and "object at 0x" not in text and "PosixPath" not in text
    cycled = Printer()
    obj._repr_pretty_(cycled, True)
    assert cycled.out == [f"<{type(obj).__name__} ...>"]
    return html, text


def test_every_object_family_draws_itself(host: Host, tmp_path: Path) -> None:
    result = build(host, EXAMPLE, tags=["ms:1"], output=lambda _t: None)
    try:
        html, text = drawn(result)
        assert "Build" in text and "ms:1" in text and f"{len(result.steps)} (" in text
        assert f'title="{result.image.id}"' in html and result.image.short_id in html  # short ID, full on hover

        html, text = drawn(result.image)
        assert "ms:1" in text and "layers" in text and result.image.short_id in text

        html, text = drawn(host.images)
        assert "ms:1" in text and "KiB" in text  # sizes in binary units

        with host.containers.create("ms:1", name="shown", image_command=False) as c:
            html, text = drawn(c)
            assert "Container shown [created]" in text and c.short_id in text
            assert f'title="{c.id}"' in html and "created</span>" in html  # a state badge
            c.start()
            assert "[running]" in drawn(c)[1]
            proc = c.exec("cmd /c echo hi")
            proc.wait()
            assert f"Process {proc.pid} [exited]" in drawn(proc)[1]
            proc.close()
            done = c.run("cmd /c echo <b>bold</b>")
            html, text = drawn(done)
            assert "&lt;b&gt;" in html and "<b>" not in html  # output is escaped, never markup
            assert "exit code" in text
            html, text = drawn(host.containers)
            assert "shown" in text and "running" in text
            background = c.exec("ping -n 30 127.0.0.1")
            html, text = drawn(c.top())
            assert text.startswith("Processes") and "PING.EXE" in text.upper() and "PID" in text
            background.kill()
            background.wait(30)
            background.close()
            stopped = c.stop()
            assert "Stop [" in drawn(stopped)[1]

        layer = host.layers.import_tar(io.BytesIO(base_layer()))
        try:
            html, text = drawn(layer)
            assert "Layer" in text and "[base]" in text and str(layer.path) not in text  # no machine path
            assert f'title="{layer.path}"' in html  # ... but there on hover
            assert layer.short_id in drawn(host.layers)[1]
        finally:
            host.layers.destroy(layer)

        network = host.networks.default()
        html, text = drawn(network)
        assert network.name in text and "driver" in text
        assert network.name in drawn(host.networks)[1]
        endpoint = network.create_endpoint(name="shown-ep")
        try:
            html, text = drawn(endpoint)
            assert "shown-ep" in text and "IP" in text
        finally:
            endpoint.remove()

        html, text = drawn(host)
        assert f"Windows build   {host.build}" in text and "images" in text
    finally:
        for image in host.images.list():
            host.images.remove(image.id, force=True, prune=False)
        host.images.cache_clear()
        host.images.gc()


def test_a_layer_report_names_the_files_and_escapes_them() -> None:
    report = check_layer(io.BytesIO(blog_layer()))
    html, text = drawn(report)
    assert "rejected" in text and "unsupported-reparse" in text and '"Files/cygwin64/bin/vi"' in text
    assert text.index("unsupported-reparse") < text.index("recycle-bin")  # errors first
    from tests.test_layerfile import example_entries, write

    entries = example_entries()
    hostile = attrs.evolve(entries[-1][0], name="Files/<img src=x onerror=alert(1)>:stream")
    html, text = drawn(check_layer(io.BytesIO(write([*entries, (hostile, entries[-1][1])]))))
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" in text


def test_tables_are_cut_and_say_how_many_more() -> None:
    shown = Shown.table("Things", ("ID", "Name"), ((short_id("sha256:" + f"{i:064x}"), f"n{i}")
                                                    for i in range(MAX_ROWS + 5)))
    assert len(shown.rows) == MAX_ROWS and shown.total_rows == MAX_ROWS + 5
    assert "... and 5 more" in shown.plain() and "... and 5 more" in shown.html()
    empty = Shown.table("Things", ("ID",), [], empty="no thing")
    assert "(no thing)" in empty.plain() and "no thing" in empty.html()


@pytest.mark.parametrize("value, expected", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ('" onmouseover="x', "&quot; onmouseover=&quot;x"),
])
def test_everything_shown_is_escaped(value: str, expected: str) -> None:
    html = Shown("Thing", value, state=value, fields=((value, value),), text=value).html()
    assert "<script>" not in html and 'onmouseover="' not in html
    assert html.count(expected) == 5  # title, state, label, value, text


def test_live_output_of_run_and_build_in_the_cell(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    """``run(echo=True)`` and ``build(output=True)`` write output as it comes (a notebook cell
    is this process's stdout) and still return it."""
    result = build(host, EXAMPLE, tags=["ms:live"], output=True)
    try:
        shown = capsys.readouterr().out
        assert "Step 1/" in shown and f"Successfully built {result.image.short_id}" in shown
        with host.containers.create("ms:live", image_command=False) as c:
            c.start()
            done = c.run("cmd /c echo live", echo=True, text=True)
            assert done.stdout == "live\n" and capsys.readouterr().out.replace("\r\n", "\n") == "live\n"
            proc = c.exec("cmd /c echo also live", echo=True, text=True)
            assert proc.stdout.read() == "also live\n" and proc.wait(30) == 0  # shown, and still readable
            proc.close()
            assert capsys.readouterr().out.replace("\r\n", "\n") == "also live\n"
            c.stop()
        with pytest.raises(Exception, match="output is True, a callable"):
            build(host, EXAMPLE, output="yes")  # type: ignore[arg-type]
    finally:
        host.images.remove("ms:live", force=True)
        host.images.cache_clear()  # the build's cached steps hold layers too
        host.images.gc()
