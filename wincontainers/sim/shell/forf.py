"""``for /f``: lines of files, a string or a command's output, cut into tokens."""

from __future__ import annotations

import io as _io
import re
from typing import TYPE_CHECKING, BinaryIO, Iterator, Optional, cast

import attrs

from wincontainers.sim.shell.textio import CommandError, Io

if TYPE_CHECKING:
    from wincontainers.sim.shell.interpreter import Shell

__all__ = ["for_f_rows", "ForOptions", "parse_options"]

_KEYWORDS = ("eol=", "skip=", "delims=", "tokens=", "usebackq")


@attrs.define
class ForOptions:
    eol: Optional[str] = ";"
    skip: int = 0
    delims: str = " \t"
    tokens: list[int] = attrs.field(factory=lambda: [1])
    rest: bool = False  # "*": the rest of the line after the last token
    backq: bool = False


def parse_options(text: str) -> ForOptions:
    opts = ForOptions()
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        low = text[i:].lower()
        key = next((k for k in _KEYWORDS if low.startswith(k)), None)
        if key is None:
            raise CommandError(f"{text[i:]} was unexpected at this time.", 255)
        i += len(key)
        if key == "usebackq":
            opts.backq = True
            continue
        if key == "delims=":
            end = _next_keyword(text, i)
            opts.delims = text[i:end]
            i = end
            continue
        if key == "eol=":
            opts.eol = text[i] if i < n else None
            i += 1
            continue
        end = text.find(" ", i)
        end = n if end < 0 else end
        value = text[i:end]
        i = end
        if key == "skip=":
            if not value.isdigit():
                raise CommandError(f"{value} was unexpected at this time.", 255)
            opts.skip = int(value)
        else:
            opts.tokens, opts.rest = _tokens(value)
    return opts


def _next_keyword(text: str, start: int) -> int:
    best = len(text)
    for k in _KEYWORDS:
        m = re.compile(" " + re.escape(k), re.IGNORECASE).search(text, start)
        if m:
            best = min(best, m.start())
    return best


def _tokens(spec: str) -> tuple[list[int], bool]:
    rest = spec.endswith("*")
    spec = spec.rstrip("*").rstrip(",")
    numbers: set[int] = set()
    for part in filter(None, spec.split(",")):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None or int(m.group(1)) == 0:
            raise CommandError(f"tokens={spec} was unexpected at this time.", 255)
        low = int(m.group(1))
        high = int(m.group(2) or low)
        numbers.update(range(low, high + 1))
    return sorted(numbers), rest


def _source_lines(shell: "Shell", opts: ForOptions, items: str, io: Io) -> list[str]:
    text = items.strip()
    command_quote, string_quote = ("`", "'") if opts.backq else ("'", '"')
    if len(text) >= 2 and text[0] == command_quote and text[-1] == command_quote:
        out = _io.BytesIO()
        child = shell.child()
        child.run_isolated_line(text[1:-1], Io(cast(BinaryIO, _io.BytesIO()), cast(BinaryIO, out), io.stderr))
        data = out.getvalue()
    elif len(text) >= 2 and text[0] == string_quote and text[-1] == string_quote:
        return [text[1:-1]]
    else:
        data = b""
        names = re.findall(r'"[^"]*"|\S+', text)
        for name in names:
            path = shell.fs.host(name.strip('"'))
            try:
                data += path.read_bytes()
            except OSError:
                raise CommandError(f"The system cannot find the file {name.strip(chr(34))}.") from None
    return data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")


def for_f_rows(shell: "Shell", options: str, items: str, var: str, io: Io) -> Iterator[dict[str, str]]:
    """The variables of each iteration of ``for /f "options" %var in (items)``."""
    opts = parse_options(options)
    lines = _source_lines(shell, opts, items, io)
    if lines and lines[-1] == "":
        lines.pop()
    for index, line in enumerate(lines):
        if index < opts.skip or not line:
            continue
        if opts.eol and line.startswith(opts.eol):
            continue
        values = _split(line, opts)
        if values:
            yield {chr(ord(var) + i): v for i, v in enumerate(values) if v is not None}


def _split(line: str, opts: ForOptions) -> list[Optional[str]]:
    spans: list[tuple[int, int]] = []
    i, n = 0, len(line)
    delims = opts.delims
    while i < n:
        while i < n and line[i] in delims:
            i += 1
        if i >= n:
            break
        j = i
        while j < n and line[j] not in delims:
            j += 1
        spans.append((i, j))
        i = j
    values: list[Optional[str]] = []
    for number in opts.tokens:
        values.append(line[spans[number - 1][0]:spans[number - 1][1]] if number <= len(spans) else None)
    if opts.rest:
        after = opts.tokens[-1] if opts.tokens else 0
        values.append(line[spans[after][0]:] if after < len(spans) else None)
    if all(v is None for v in values):
        return []
    return values
