"""How cmd compares: wildcards (``*.*`` matches names without a dot), numbers (decimal, ``0x``
hexadecimal, ``0`` octal) and ``if``'s comparison operators."""

from __future__ import annotations

import fnmatch
import re
from typing import Optional

__all__ = ["wildcard_match", "integer", "compare"]


def wildcard_match(mask: str, name: str) -> bool:
    if mask in ("*", "*.*"):
        return True
    if mask.endswith(".*") and "." not in name and fnmatch.fnmatch(name.lower(), mask[:-2].lower()):
        return True
    return fnmatch.fnmatchcase(name.lower(), mask.lower().replace("[", "[[]"))


def integer(text: str) -> Optional[int]:
    t = text.strip()
    try:
        if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", t):
            return int(t, 16)
        if re.fullmatch(r"[-+]?0[0-7]+", t):
            return int(t, 8)
        if re.fullmatch(r"[-+]?\d+", t):
            return int(t)
    except ValueError:
        return None
    return None


def compare(left: str, right: str, op: str, insensitive: bool) -> bool:
    if op == "==":
        return left.lower() == right.lower() if insensitive else left == right
    a, b = integer(left), integer(right)
    if a is None or b is None:
        x, y = (left.lower(), right.lower()) if insensitive else (left, right)
        a, b = (x > y) - (x < y), 0  # type: ignore[assignment]
    assert a is not None and b is not None
    return {"equ": a == b, "neq": a != b, "lss": a < b, "leq": a <= b, "gtr": a > b, "geq": a >= b}[op]
