"""The subset of Go templates the Docker CLI's ``--format`` and ``inspect -f`` take:
``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``, ``{{json .Field}}``, and a leading ``table``
(a header row from the field names, columns aligned). Anything else is a BadInput naming the
part not understood: never a traceback and never a half-printed table."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from wincontainers import errors

__all__ = ["render", "render_rows", "fields_of"]

_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"\A\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?\Z")


def _lookup(value: Any, path: str) -> Any:
    if path == ".":
        return value
    for key in path[1:].split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise errors.BadInput(f"template: no field {path!r} (known here: {', '.join(sorted(map(str, value)))})"
                                  if isinstance(value, Mapping) else f"template: {path!r} is not a field")
        value = value[key]
    return value


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _action(expr: str, value: Any) -> str:
    words = expr.split()
    if len(words) == 2 and words[0] == "json" and _PATH.match(words[1]):
        return json.dumps(_lookup(value, words[1]))
    if len(words) == 1 and _PATH.match(words[0]):
        return _text(_lookup(value, words[0]))
    raise errors.BadInput(f"template: {{{{{expr}}}}} is not supported (use {{{{.Field}}}} or {{{{json .Field}}}})")


def render(template: str, value: Any) -> str:
    """One object through the template (backslash escapes ``\\t`` and ``\\n`` as Docker's CLI reads them)."""
    text = template.replace("\\t", "\t").replace("\\n", "\n")
    return _ACTION.sub(lambda m: _action(m.group(1), value), text)


def fields_of(template: str, headers: Mapping[str, str] = {}) -> list[str]:
    """The header of a ``table`` template: each action's field name, upper-cased as Docker shows
    it (``RunningFor`` -> ``RUNNING FOR``), or the command's own name for it (``headers``)."""
    names = []
    for expr in _ACTION.findall(template):
        name = expr.split()[-1].lstrip(".").split(".")[-1] or "VALUE"
        names.append(headers.get(name) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper())
    return names


def render_rows(template: str, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, str] = {}) -> list[str]:
    """Every row through the template; with a leading ``table``, a header and aligned columns."""
    if not template.startswith("table"):
        return [render(template, row) for row in rows]
    body = template[len("table"):].strip() or "{{.ID}}"
    cells = [fields_of(body, headers)] + [render(body, row).split("\t") for row in rows]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(max(map(len, cells)))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
