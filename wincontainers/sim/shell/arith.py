"""``set /a``: cmd's 32-bit integer expressions, assignments included.

Numbers are decimal, ``0x`` hexadecimal or ``0`` octal; a bare name is a variable (undefined
is 0); the operators are C's, with cmd's precedence, and results wrap to a signed 32-bit value.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from wincontainers.sim.shell.textio import CommandError

__all__ = ["evaluate"]

_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)|([A-Za-z_$#@.\[\]{}~`'?][\w$#@.\[\]{}`'?]*)"
                    r"|(<<=|>>=|[*/%+\-&^|]=|<<|>>|[-+*/%()!~&^|=,]))")
_BINARY = {  # operator: (precedence, function)
    "*": (6, lambda a, b: a * b), "/": (6, None), "%": (6, None),
    "+": (5, lambda a, b: a + b), "-": (5, lambda a, b: a - b),
    "<<": (4, lambda a, b: a << (b & 31)), ">>": (4, lambda a, b: a >> (b & 31)),
    "&": (3, lambda a, b: a & b), "^": (2, lambda a, b: a ^ b), "|": (1, lambda a, b: a | b),
}
_DIVIDE_BY_ZERO = "Divide by zero error."
_MISSING = "Missing operand."


def _wrap(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _number(text: str) -> int:
    try:
        if text.lower().startswith("0x"):
            return int(text, 16)
        if len(text) > 1 and text.startswith("0"):
            return int(text, 8)
        return int(text)
    except ValueError:
        raise CommandError("Invalid number.  Numeric constants are either decimal (17),\n"
                           "hexadecimal (0x11), or octal (021).", 9167) from None


class _Eval:
    def __init__(self, text: str, get: Callable[[str], Optional[str]], put: Callable[[str, str], None]) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip().strip('"')
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise CommandError(_MISSING, 1073750988)
            pos = m.end()
            if m.group(1):
                self.tokens.append(("num", m.group(1)))
            elif m.group(2):
                self.tokens.append(("name", m.group(2)))
            elif m.group(3):
                self.tokens.append(("op", m.group(3)))
        self.pos = 0
        self.get, self.put = get, put

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.pos += 1
        return tok

    def value_of(self, name: str) -> int:
        raw = self.get(name)
        if raw is None or not raw.strip():
            return 0
        m = re.match(r"\s*(-?(?:0[xX][0-9a-fA-F]+|\d+))", raw)
        return _number(m.group(1)) if m else 0

    def comma(self) -> int:
        value = self.assign()
        while self.peek() == ("op", ","):
            self.take()
            value = self.assign()
        return value

    def assign(self) -> int:
        kind, text = self.peek()
        nxt = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else ("end", "")
        if kind == "name" and nxt[0] == "op" and nxt[1].endswith("=") and nxt[1] not in ("==",):
            self.pos += 2
            right = self.assign()
            op = nxt[1][:-1]
            if op:
                right = self.apply(op, self.value_of(text), right)
            right = _wrap(right)
            self.put(text, str(right))
            return right
        return self.binary(1)

    def apply(self, op: str, a: int, b: int) -> int:
        if op in ("/", "%"):
            if b == 0:
                raise CommandError(_DIVIDE_BY_ZERO, 1073750993)
            q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
            return q if op == "/" else a - q * b
        func = _BINARY[op][1]
        assert func is not None
        return _wrap(func(a, b))

    def binary(self, level: int) -> int:
        left = self.unary()
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in _BINARY or _BINARY[op][0] < level:
                return left
            self.take()
            right = self.binary(_BINARY[op][0] + 1)
            left = self.apply(op, left, right)

    def unary(self) -> int:
        kind, text = self.take()
        if kind == "op" and text in ("-", "+", "!", "~"):
            v = self.unary()
            return {"-": -v, "+": v, "!": int(v == 0), "~": ~v}[text]
        if kind == "op" and text == "(":
            v = self.comma()
            if self.take() != ("op", ")"):
                raise CommandError("Missing closing parenthesis.", 1073750990)
            return v
        if kind == "num":
            return _wrap(_number(text))
        if kind == "name":
            return self.value_of(text)
        raise CommandError(_MISSING, 1073750988)


def evaluate(text: str, get: Callable[[str], Optional[str]], put: Callable[[str, str], None]) -> int:
    """The value of ``set /a text`` (assignments made through ``put``)."""
    ev = _Eval(text, get, put)
    if not ev.tokens:
        raise CommandError("The syntax of the command is incorrect.")
    value = ev.comma()
    if ev.pos < len(ev.tokens):
        raise CommandError(_MISSING, 1073750988)
    return _wrap(value)
