"""Rich display in Jupyter and IPython: each object describes itself once, drawn as HTML or text.

An object that mixes in :class:`RichDisplay` says what it is in :meth:`RichDisplay._shown_`
(a :class:`Shown`: a title, a state badge, fields, a table, a block of text); this module draws
that as ``_repr_html_`` (notebooks) and ``_repr_pretty_`` (IPython's terminal, ``pretty``).
IDs are shown short with the full ID on hover, sizes in binary units, states as coloured badges;
tables stop after :data:`MAX_ROWS` rows and say how many more there are. Everything shown is
escaped: names and output come from containers and archives, which may be hostile.
"""

from __future__ import annotations

import datetime
import html
import re
from typing import Any, Iterable, Optional, Sequence, Union

import attrs

__all__ = ["Cell", "Shown", "RichDisplay", "Value", "badge", "short_id", "name_or_id", "human_size", "when", "MAX_ROWS"]

#: rows shown in a table before "... and N more"
MAX_ROWS = 200
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$")
#: characters of a table cell in text (the last column excepted)
MAX_CELL = 48
#: characters of a text block shown (output can be long)
MAX_TEXT = 20_000

_BADGE_COLOURS = {
    "running": "#1a7f37", "up": "#1a7f37", "pass": "#1a7f37", "ok": "#1a7f37", "graceful": "#1a7f37",
    "created": "#57606a", "exited": "#57606a", "already-stopped": "#57606a", "skip": "#57606a",
    "base": "#57606a", "diff": "#0969da", "sandbox": "#8250df", "cached": "#57606a",
    "paused": "#9a6700", "warning": "#9a6700", "forced": "#9a6700", "removing": "#9a6700",
    "fail": "#cf222e", "error": "#cf222e", "dead": "#cf222e", "failed": "#cf222e", "rejected": "#cf222e",
}


@attrs.frozen
class Cell:
    """One value: its text, the full value on hover (``title``), drawn as a badge or not."""

    text: str
    title: Optional[str] = None
    badge: bool = False


Value = Union[str, int, float, None, Cell]


def short_id(full: Optional[str], length: int = 12) -> Cell:
    """An ID shown short (a digest's algorithm dropped), the full ID on hover."""
    if not full:
        return Cell("-")
    digits = full.split(":", 1)[1] if ":" in full else full
    return Cell(digits[:length], title=full)


def name_or_id(text: str, longest: int = 40) -> Value:
    """A name as it is, or (a long one: an image ID, a layer list) short with the whole on hover."""
    return text if len(text) < longest else short_id(text)


def human_size(size: Optional[int]) -> str:
    """``1.5 MiB``: binary units, as ``docker images`` shows sizes."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


def when(stamp: Union[None, float, str]) -> Cell:
    """A time in UTC, minutes precision (seconds and the full stamp on hover)."""
    if stamp is None or stamp == "":
        return Cell("-")
    try:
        if isinstance(stamp, str):  # RFC 3339, nanoseconds as Docker writes them: drop the fraction
            found = _RFC3339.match(stamp)
            if found is None:
                return Cell(stamp)
            zone = found.group(2) or "+00:00"
            moment = datetime.datetime.fromisoformat(found.group(1) + ("+00:00" if zone == "Z" else zone))
        else:
            moment = datetime.datetime.fromtimestamp(float(stamp), tz=datetime.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return Cell(str(stamp))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    moment = moment.astimezone(datetime.timezone.utc)
    return Cell(moment.strftime("%Y-%m-%d %H:%M UTC"), title=moment.isoformat())


def badge(state: Optional[str]) -> Cell:
    return Cell(state or "-", badge=state is not None)


def _cell(value: Value) -> Cell:
    if isinstance(value, Cell):
        return value
    return Cell("-" if value is None else str(value))


@attrs.frozen
class Shown:
    """What an object shows of itself (see the module docstring)."""

    kind: str
    title: Value = None
    state: Optional[str] = None
    fields: tuple[tuple[str, Value], ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Value, ...], ...] = ()
    #: rows there were in all (more than ``rows`` when cut)
    total_rows: Optional[int] = None
    text: str = ""
    empty: str = "none"

    @classmethod
    def table(cls, kind: str, columns: Sequence[str], rows: Iterable[Sequence[Value]], *,
              title: Value = None, fields: Sequence[tuple[str, Value]] = (), empty: str = "none") -> "Shown":
        """A collection: ``rows`` (an iterable, read up to :data:`MAX_ROWS`, counted to the end)."""
        kept: list[tuple[Value, ...]] = []
        count = 0
        for row in rows:
            count += 1
            if len(kept) < MAX_ROWS:
                kept.append(tuple(row))
        return cls(kind, title, fields=tuple(fields), columns=tuple(columns), rows=tuple(kept),
                   total_rows=count, empty=empty)

    # -- HTML ----------------------------------------------------------------------------------

    def html(self) -> str:
        parts = ['<div class="wincontainers" style="font-family: var(--jp-content-font-family, sans-serif); '
                 'line-height: 1.4">']
        head = f"<strong>{_esc(self.kind)}</strong>"
        if self.title is not None:
            head += " " + _html_cell(_cell(self.title), code=True)
        if self.state is not None:
            head += " " + _html_cell(badge(self.state))
        parts.append(f"<div>{head}</div>")
        if self.fields:
            parts.append('<table style="border-collapse: collapse; margin: 2px 0">')
            for label, value in self.fields:
                parts.append(f'<tr><th style="text-align: left; padding: 1px 12px 1px 0; font-weight: 600">'
                             f'{_esc(label)}</th><td style="text-align: left; padding: 1px 0">'
                             f'{_html_cell(_cell(value))}</td></tr>')
            parts.append("</table>")
        if self.columns:
            if not self.rows:
                parts.append(f"<div><em>{_esc(self.empty)}</em></div>")
            else:
                parts.append('<table style="border-collapse: collapse"><thead><tr>')
                parts += [f'<th style="text-align: left; padding: 2px 10px 2px 0">{_esc(c)}</th>'
                          for c in self.columns]
                parts.append("</tr></thead><tbody>")
                for row in self.rows:
                    parts.append("<tr>" + "".join(
                        f'<td style="text-align: left; padding: 1px 10px 1px 0">{_html_cell(_cell(v))}</td>'
                        for v in row) + "</tr>")
                parts.append("</tbody></table>")
                more = (self.total_rows or 0) - len(self.rows)
                if more > 0:
                    parts.append(f"<div><em>... and {more} more</em></div>")
        if self.text:
            parts.append('<pre style="margin: 4px 0; max-height: 24em; overflow: auto">'
                         f"{_esc(_cut(self.text))}</pre>")
        parts.append("</div>")
        return "".join(parts)

    # -- text ------------------------------------------------------------------------------------

    def plain(self) -> str:
        head = self.kind
        if self.title is not None:
            head += " " + _cell(self.title).text
        if self.state is not None:
            head += f" [{self.state}]"
        lines = [head]
        if self.fields:
            width = max(len(label) for label, _ in self.fields)
            lines += [f"  {label.ljust(width)}  {_cell(value).text}" for label, value in self.fields]
        if self.columns:
            if not self.rows:
                lines.append(f"  ({self.empty})")
            else:
                last = len(self.columns) - 1  # the last column runs on; the others are cut to fit
                cells = [[t if i == last or len(t) <= MAX_CELL else t[:MAX_CELL - 3] + "..."
                          for i, t in enumerate(_cell(v).text for v in row)] for row in self.rows]
                widths = [max([len(c)] + [len(r[i]) for r in cells if i < len(r)]) for i, c in enumerate(self.columns)]
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip())
                lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
                more = (self.total_rows or 0) - len(self.rows)
                if more > 0:
                    lines.append(f"  ... and {more} more")
        if self.text:
            lines += ["  " + line for line in _cut(self.text).splitlines()]
        return "\n".join(lines)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"\n... ({len(text) - MAX_TEXT} more characters)"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_cell(cell: Cell, code: bool = False) -> str:
    text = _esc(cell.text)
    if cell.badge:
        colour = _BADGE_COLOURS.get(cell.text.split(" ")[0].lower(), "#57606a")
        text = (f'<span style="background: {colour}; color: #fff; border-radius: 8px; padding: 0 7px; '
                f'font-size: 85%">{text}</span>')
    elif code:
        text = f"<code>{text}</code>"
    if cell.title:
        return f'<span title="{_esc(cell.title)}">{text}</span>'
    return text


class RichDisplay:
    """Mixed into public objects: ``_repr_html_`` and ``_repr_pretty_`` from ``_shown_()``."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # IPython's pretty printer takes a class's own __repr__ (attrs writes one) over an
        # inherited _repr_pretty_: each subclass carries its own copy
        super().__init_subclass__(**kwargs)
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = RichDisplay._repr_pretty_  # type: ignore[method-assign]

    def _shown_(self) -> Shown:  # pragma: no cover - each class says what it shows
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return self._shown_().html()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"<{type(self).__name__} ...>" if cycle else self._shown_().plain())
