"""cmd's parsing phases: percent expansion (phase 1) and the line's structure (phase 2).

Phase 1 works on the raw line: ``%VAR%``, ``%VAR:a=b%``, ``%VAR:~n,m%``; in a batch file also
``%%`` -> ``%``, ``%0``-``%9``, ``%*`` and ``%~dp1``, and an undefined variable expands to
nothing, where on a command line it stays as typed. Phase 2 then reads quotes (which protect
everything), carets (which escape the next character outside quotes), the operators (``|``
binds tightest, then ``&&`` and ``||``, then ``&``), redirections (taken out of the command
wherever they stand), parenthesised blocks and ``if``/``for``, whose command runs to the end of
the line. The tree keeps each command's text as cmd passes it on (quotes kept, carets gone,
spaces before an operator kept: ``echo a & echo b`` prints ``a `` with its space).
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Union

import attrs

from wincontainers.sim.shell.textio import ShellSyntaxError

__all__ = [
    "Redirect", "Simple", "Block", "Binary", "IfNode", "ForNode", "Node",
    "parse", "expand_percent", "expand_delayed", "edit_value", "is_incomplete", "split_arguments",
    "DELIMITERS", "COMPARE_OPS",
]

DELIMITERS = " \t,;="
_SPACE = " \t"
COMPARE_OPS = ("equ", "neq", "lss", "leq", "gtr", "geq")


@attrs.frozen
class Redirect:
    """``handle`` (0, 1, 2) redirected: ``<``, ``>``, ``>>`` to a file, or ``>&`` to another handle."""

    handle: int
    mode: str
    target: str


@attrs.frozen
class Simple:
    text: str
    redirects: tuple[Redirect, ...] = ()


@attrs.frozen
class Block:
    body: Optional["Node"]
    redirects: tuple[Redirect, ...] = ()


@attrs.frozen
class Binary:
    op: str  # "&", "&&", "||", "|"
    left: "Node"
    right: "Node"


@attrs.frozen
class IfNode:
    negate: bool
    kind: str  # "exist", "defined", "errorlevel", "compare"
    args: tuple[str, ...]  # the operand(s); for "compare": left, right
    op: str  # "==" or a compare-op word (lower case)
    insensitive: bool
    then: "Node"
    orelse: Optional["Node"]


@attrs.frozen
class ForNode:
    switch: str  # "", "/l", "/f", "/d", "/r"
    options: str  # /f's option string; /r's root folder
    var: str  # the letter
    items: str  # the text between the parentheses
    body: "Node"


Node = Union[Simple, Block, Binary, IfNode, ForNode]


# -- phase 1 -----------------------------------------------------------------------------------


def edit_value(value: str, modifier: str) -> Optional[str]:
    """``%VAR:modifier%``: ``~start,length`` or ``search=replace`` (``*search`` from the start)."""
    if modifier.startswith("~"):
        m = re.fullmatch(r"~\s*(-?\d+)?\s*(?:,\s*(-?\d+)?\s*)?", modifier)
        if m is None:
            return None
        start = int(m.group(1) or 0)
        n = len(value)
        start = max(0, n + start) if start < 0 else min(start, n)
        if m.group(2) is None:
            return value[start:]
        length = int(m.group(2))
        end = max(start, n + length) if length < 0 else min(n, start + length)
        return value[start:end]
    if "=" not in modifier:
        return None
    search, replace = modifier.split("=", 1)
    if not search:
        return None
    if search.startswith("*"):
        needle = search[1:]
        if not needle:
            return None
        at = value.lower().find(needle.lower())
        return value if at < 0 else replace + value[at + len(needle):]
    return re.sub(re.escape(search), lambda _: replace, value, flags=re.IGNORECASE)


def expand_percent(
    text: str,
    lookup: Callable[[str], Optional[str]],
    batch_arg: Optional[Callable[[str, str], str]] = None,
) -> str:
    """Phase 1 on ``text``. ``batch_arg(modifiers, which)`` is given in a batch file
    (``which`` is a digit or ``*``); without it the line is read in command-line mode."""
    out: list[str] = []
    i, n = 0, len(text)
    batch = batch_arg is not None
    while i < n:
        c = text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        if batch:
            if text.startswith("%%", i):
                out.append("%")
                i += 2
                continue
            m = re.compile(r"%(~[fdpnxsatz$:A-Za-z]*?)?([0-9*])").match(text, i)
            if m and (m.group(2) != "*" or not m.group(1)):
                assert batch_arg is not None
                out.append(batch_arg(m.group(1) or "", m.group(2)))
                i = m.end()
                continue
        close = text.find("%", i + 1)
        if close < 0:
            if not batch:
                out.append("%")
            i += 1
            continue
        spec = text[i + 1:close]
        value = _variable(spec, lookup)
        if value is None:
            if batch:
                i = close + 1
            else:
                out.append("%" + spec)
                i = close
            continue
        out.append(value)
        i = close + 1
    return "".join(out)


def _variable(spec: str, lookup: Callable[[str], Optional[str]]) -> Optional[str]:
    if not spec or "\n" in spec:
        return None
    name, colon, modifier = spec.partition(":")
    value = lookup(name)
    if value is None or not colon:
        return value
    return edit_value(value, modifier)


def expand_delayed(text: str, lookup: Callable[[str], Optional[str]]) -> str:
    """Phase 5 (delayed expansion on): ``!VAR!`` and ``!VAR:a=b!``; ``^!`` is a literal ``!``."""
    if "!" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "^" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if c != "!":
            out.append(c)
            i += 1
            continue
        close = text.find("!", i + 1)
        if close < 0:
            i += 1
            continue
        value = _variable(text[i + 1:close], lookup)
        out.append(value or "")
        i = close + 1
    return "".join(out)


# -- phase 2 -----------------------------------------------------------------------------------


def parse(text: str) -> Optional[Node]:
    """The tree of one (already percent-expanded) line; ``None`` for an empty line.

    An unfinished block (a ``(`` never closed) raises ShellSyntaxError with ``more`` set, so a
    batch reader can join the next line and try again.
    """
    p = _Parser(text)
    node = p.sequence()
    p.skip(_SPACE + "\n")
    if p.i < p.n:
        raise ShellSyntaxError(f"{p.s[p.i]} was unexpected at this time.")
    return node


class _Incomplete(ShellSyntaxError):
    more = True


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)
        self.depth = 0

    def skip(self, chars: str) -> None:
        while self.i < self.n and self.s[self.i] in chars:
            self.i += 1

    def at(self, token: str) -> bool:
        return self.s.startswith(token, self.i)

    def at_word(self, word: str) -> bool:
        end = self.i + len(word)
        return (self.s[self.i:end].lower() == word
                and (end >= self.n or self.s[end] in DELIMITERS + "(\n&|<>)\"" ))

    def sequence(self) -> Optional[Node]:
        left = self.and_or()
        while True:
            self.skip(_SPACE)
            if self.at("&") and not self.at("&&"):
                self.i += 1
            elif self.at("\n") and self.depth > 0:
                self.i += 1
            else:
                return left
            right = self.and_or()
            if right is None:
                continue
            left = right if left is None else Binary("&", left, right)

    def and_or(self) -> Optional[Node]:
        left = self.pipeline()
        while True:
            self.skip(_SPACE)
            if self.at("&&"):
                op = "&&"
            elif self.at("||"):
                op = "||"
            else:
                return left
            self.i += 2
            right = self.pipeline()
            if left is None or right is None:
                raise ShellSyntaxError(f"{op[0]} was unexpected at this time.")
            left = Binary(op, left, right)

    def pipeline(self) -> Optional[Node]:
        left = self.command()
        while True:
            self.skip(_SPACE)
            if not self.at("|") or self.at("||"):
                return left
            self.i += 1
            right = self.command()
            if left is None or right is None:
                raise ShellSyntaxError("| was unexpected at this time.")
            left = Binary("|", left, right)

    def command(self) -> Optional[Node]:
        self.skip(DELIMITERS + "@" if self.depth == 0 else DELIMITERS + "@\n")
        if self.i >= self.n:
            return None
        c = self.s[self.i]
        if c in "&|":
            return None
        if c == ")" and self.depth > 0:
            return None
        if c == "(":
            return self.block()
        if self.at_word("if"):
            self.i += 2
            return self.if_command()
        if self.at_word("for"):
            self.i += 3
            return self.for_command()
        if self.at_word("rem"):
            end = self.s.find("\n", self.i)
            end = self.n if end < 0 else end
            text = self.s[self.i:end]
            self.i = end
            return Simple(text)
        return self.simple()

    def block(self) -> Block:
        self.i += 1
        self.depth += 1
        body = self.sequence()
        self.skip(_SPACE + "\n")
        if self.i >= self.n:
            raise _Incomplete("More? (a block is not closed)")
        if self.s[self.i] != ")":
            raise ShellSyntaxError(f"{self.s[self.i]} was unexpected at this time.")
        self.i += 1
        self.depth -= 1
        redirects: list[Redirect] = []
        while True:
            self.skip(_SPACE)
            if self.i < self.n and self.s[self.i] in "<>" or (
                    self.i + 1 < self.n and self.s[self.i] in "012" and self.s[self.i + 1] in "<>"):
                handle = None
                if self.s[self.i] in "012":
                    handle = int(self.s[self.i])
                    self.i += 1
                redirects.append(self.redirect(handle))
            else:
                break
        return Block(body, tuple(redirects))

    def simple(self) -> Simple:
        buf: list[str] = []
        redirects: list[Redirect] = []
        quoted = False
        s, n = self.s, self.n
        while self.i < n:
            c = s[self.i]
            if c == "\n":
                break
            if quoted:
                buf.append(c)
                self.i += 1
                if c == '"':
                    quoted = False
                continue
            if c == '"':
                quoted = True
                buf.append(c)
                self.i += 1
                continue
            if c == "^":
                if self.i + 1 < n and s[self.i + 1] != "\n":
                    buf.append(s[self.i + 1])
                self.i += 2
                continue
            if c in "&|":
                break
            if c == ")" and self.depth > 0:
                break
            if c in "<>":
                handle = None
                if buf and buf[-1] in "0123456789" and (len(buf) == 1 or buf[-2] in DELIMITERS):
                    handle = int(buf.pop())
                redirects.append(self.redirect(handle))
                continue
            buf.append(c)
            self.i += 1
        return Simple("".join(buf), tuple(redirects))

    def redirect(self, handle: Optional[int]) -> Redirect:
        s = self.s
        if s[self.i] == "<":
            mode, default = "<", 0
            self.i += 1
        elif self.at(">>"):
            mode, default = ">>", 1
            self.i += 2
        else:
            mode, default = ">", 1
            self.i += 1
        handle = default if handle is None else handle
        if self.at("&") and self.i + 1 < self.n and s[self.i + 1] in "0123456789":
            target = s[self.i + 1]
            self.i += 2
            return Redirect(handle, ">&" if mode != "<" else "<&", target)
        self.skip(_SPACE)
        target = self.word(stop="&|<>" + (")" if self.depth > 0 else ""))
        if not target:
            raise ShellSyntaxError("The syntax of the command is incorrect.")
        return Redirect(handle, mode, target.replace('"', ""))

    def word(self, stop: str, delimiters: str = _SPACE) -> str:
        """One token: quotes kept, carets applied outside them."""
        return self.scan(lambda c: c in delimiters or c in stop)

    def scan(self, breaks: Callable[[str], bool]) -> str:
        """Characters up to one that ``breaks`` (outside quotes) or the line's end; quotes kept,
        carets applied outside them."""
        buf: list[str] = []
        quoted = False
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\n":
                break
            if c == '"':
                quoted = not quoted
            elif not quoted:
                if c == "^" and self.i + 1 < self.n:
                    buf.append(self.s[self.i + 1])
                    self.i += 2
                    continue
                if breaks(c):
                    break
            buf.append(c)
            self.i += 1
        return "".join(buf)

    def body(self) -> Node:
        """The command of an ``if``, ``else`` or ``for``: a block, or the rest of the line."""
        self.skip(DELIMITERS)
        if self.at("("):
            return self.block()
        node = self.sequence()
        if node is None:
            raise ShellSyntaxError("The syntax of the command is incorrect.")
        return node

    def cond_token(self) -> str:
        """An operand of ``if``: it ends at a delimiter, ``==`` or an operator."""
        self.skip(DELIMITERS.replace("=", ""))
        while self.at("=") and not self.at("=="):
            self.i += 1
        return self.scan(lambda c: c in " \t,;&|<>(" or self.at("==") or (c == ")" and self.depth > 0))

    def if_command(self) -> IfNode:
        insensitive = negate = False
        token = self.cond_token()
        if token.lower() == "/i":
            insensitive = True
            token = self.cond_token()
        if token.lower() == "not":
            negate = True
            token = self.cond_token()
        low = token.lower()
        op = ""
        args: tuple[str, ...]
        if low in ("exist", "defined", "errorlevel") and not self._at_compare():
            arg = self.cond_token()
            if not arg:
                raise ShellSyntaxError("The syntax of the command is incorrect.")
            kind, args = low, (arg,)
        else:
            self.skip(_SPACE)
            if self.at("=="):
                self.i += 2
                while self.at("="):
                    self.i += 1
                op = "=="
            else:
                word = self.cond_token()
                if word.lower() not in COMPARE_OPS:
                    raise ShellSyntaxError(f"{word or token} was unexpected at this time.")
                op = word.lower()
            right = self.cond_token()
            if not token and not right and op == "==":
                raise ShellSyntaxError("The syntax of the command is incorrect.")
            kind, args = "compare", (token, right)
        then = self.body()
        orelse = None
        if isinstance(then, Block):
            save = self.i
            self.skip(_SPACE)
            if self.at_word("else"):
                self.i += 4
                orelse = self.body()
            else:
                self.i = save
        return IfNode(negate, kind, args, op, insensitive, then, orelse)

    def _at_compare(self) -> bool:
        save = self.i
        self.skip(_SPACE)
        found = self.at("==") or any(self.at_word(w) for w in COMPARE_OPS)
        self.i = save
        return found

    def for_command(self) -> ForNode:
        self.skip(_SPACE)
        switch = options = ""
        if self.at("/"):
            switch = self.word(stop="").lower()
            if switch not in ("/l", "/f", "/d", "/r"):
                raise ShellSyntaxError(f"{switch} was unexpected at this time.")
            self.skip(_SPACE)
            if switch == "/f" and self.at('"'):
                options = self.word(stop="").strip('"')
                self.skip(_SPACE)
            elif switch == "/r" and not self.at("%"):
                options = self.word(stop="").strip('"')
                self.skip(_SPACE)
        var = self.word(stop="")
        if len(var) != 2 or var[0] != "%":
            raise ShellSyntaxError(f"{var} was unexpected at this time.")
        self.skip(_SPACE)
        if not self.at_word("in"):
            raise ShellSyntaxError(f"{self.word(stop='') or 'The syntax of the command is incorrect.'}"
                                   " was unexpected at this time.")
        self.i += 2
        self.skip(_SPACE)
        if not self.at("("):
            raise ShellSyntaxError(f"{self.word(stop='')} was unexpected at this time.")
        self.i += 1
        items: list[str] = []
        quoted = False
        while True:
            if self.i >= self.n:
                raise _Incomplete("More? (the for list is not closed)")
            c = self.s[self.i]
            if c == '"':
                quoted = not quoted
            elif not quoted and c == "^" and self.i + 1 < self.n:
                items.append(self.s[self.i + 1])
                self.i += 2
                continue
            elif not quoted and c == ")":
                self.i += 1
                break
            items.append(c)
            self.i += 1
        self.skip(_SPACE)
        if not self.at_word("do"):
            raise ShellSyntaxError(f"{self.word(stop='') or 'The syntax of the command is incorrect.'}"
                                   " was unexpected at this time.")
        self.i += 2
        return ForNode(switch, options, var[1], "".join(items), self.body())


def is_incomplete(exc: ShellSyntaxError) -> bool:
    return isinstance(exc, _Incomplete)


def split_arguments(text: str, delimiters: str = DELIMITERS) -> list[str]:
    """Arguments of an internal command or a batch file: delimiters split, quotes kept."""
    out: list[str] = []
    buf: list[str] = []
    quoted = False
    for c in text:
        if c == '"':
            quoted = not quoted
            buf.append(c)
        elif c in delimiters and not quoted:
            if buf:
                out.append("".join(buf))
                buf = []
        else:
            buf.append(c)
    if buf:
        out.append("".join(buf))
    return out
