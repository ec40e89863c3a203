"""Shell-like word processing of Dockerfile arguments, with BuildKit's rules.

``ENV``, ``ARG``, ``COPY``, ``WORKDIR``... expand ``$VAR``, ``${VAR}`` and the modifiers
``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``, ``${VAR+word}``, ``${VAR:?msg}``,
``${VAR?msg}``, ``${VAR#pat}``, ``${VAR##pat}``, ``${VAR%pat}``, ``${VAR%%pat}``,
``${VAR/pat/repl}`` and ``${VAR//pat/repl}``; remove quotes (``'...'`` literal, ``"..."``
expanding, the escape token escaping one character); and, for :meth:`ShellLex.process_words`,
split on unquoted whitespace *after* expansion (a value holding spaces makes several words
unless it was quoted). There is no command substitution, arithmetic or globbing: a Dockerfile
is not run by a shell.

Positional and special parameters (``$1``, ``$@``, ``$#``, ``$$``...) are never set. On Windows
variable names compare case-insensitively (``$pwd`` is ``$PWD``), as Docker does for Windows
images; :class:`ShellLex` takes that as ``case_insensitive``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Mapping, Optional, Union

from wincontainers import errors

__all__ = ["ShellLex", "ShellLexError", "go_is_space", "Env", "MAX_WORD", "MAX_PATTERN_SUBJECT"]

Env = Union[Mapping[str, str], Iterable[str]]

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_HEREDOC_SPACE = frozenset(" \t\r")


#: Go's ``unicode.IsSpace`` (Python's ``str.isspace`` also counts U+001C..U+001F)
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_GO_SPACES = frozenset(_GO_SPACE)
_SPACE_RUN = re.compile(f"[{re.escape(_GO_SPACE)}]+")


def go_is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace`` for one character."""
    return ch in _GO_SPACES


class ShellLexError(errors.BadInput):
    """A word cannot be processed (unterminated quote, bad substitution, ``${X:?}`` unset...)."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> Optional[str]:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> Optional[str]:
        if self.pos >= len(self.text):
            return None
        ch = self.text[self.pos]
        self.pos += 1
        return ch


#: the longest word an expansion may produce, and the most text a pattern substitution
#: (``${X#p}``, ``${X%p}``, ``${X/p/r}``) may search; past them a Dockerfile is refused
MAX_WORD = 1 << 20
MAX_PATTERN_SUBJECT = 1 << 16


class _Words:
    """Splits on unquoted whitespace; quoted text and escaped characters stay in the word.
    The current word is a list of pieces, joined once: appending stays linear."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word: list[str] = []

    def _end_word(self) -> None:
        text = "".join(self.word)
        if text:
            self.words.append(text)
        self.word = []

    def add_char(self, ch: str) -> None:
        if go_is_space(ch):
            self._end_word()
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word.append(text)

    def add_string(self, text: str) -> None:
        """An expanded value: it splits on its whitespace (a run at a time, not a character)."""
        pos = 0
        for space in _SPACE_RUN.finditer(text):
            if space.start() > pos:
                self.add_raw(text[pos:space.start()])
            self._end_word()
            pos = space.end()
        if pos < len(text):
            self.add_raw(text[pos:])

    def result(self) -> list[str]:
        self._end_word()
        return self.words


class ShellLex:
    """Processes words with an escape token (``\\`` or `````) and options:

    - ``raw_quotes``: keep the quote characters in the result;
    - ``raw_escapes``: keep escape tokens in the result;
    - ``skip_unset_env``: leave references to unset variables as written;
    - ``skip_process_quotes``: quotes are ordinary characters (heredoc bodies);
    - ``case_insensitive``: variable names compare case-insensitively (Windows).
    """

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset_env: bool = False, skip_process_quotes: bool = False,
                 case_insensitive: bool = False) -> None:
        if escape not in ("\\", "`"):
            raise ValueError("the escape token is \\ or `")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.skip_process_quotes = skip_process_quotes
        self.case_insensitive = case_insensitive

    def process_word(self, word: str, env: Env = ()) -> str:
        """``word`` with variables expanded and quotes removed (spaces kept)."""
        return _Run(self, word, _env_map(env)).run()[0]

    def process_words(self, word: str, env: Env = ()) -> list[str]:
        """``word`` expanded, then split into words on unquoted whitespace."""
        return _Run(self, word, _env_map(env)).run()[1]


def _env_map(env: Env) -> dict[str, str]:
    if isinstance(env, Mapping):
        return dict(env)
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        out.setdefault(key, value if sep else "")  # the first definition wins
    return out


class _Run:
    def __init__(self, lex: ShellLex, source: str, env: dict[str, str]) -> None:
        self.lex = lex
        self.source = source
        self.env = env
        self.scanner = _Scanner(source)
        self.folded: Optional[dict[str, str]] = None

    @staticmethod
    def _bounded(size: int) -> int:
        """A word (or quoted part) of ``size`` characters so far: past :data:`MAX_WORD` it is
        refused (an ARG doubled 34 times would otherwise take 16 GiB)."""
        if size > MAX_WORD:
            raise ShellLexError(f"the expanded word is longer than {MAX_WORD} characters")
        return size

    def run(self) -> tuple[str, list[str]]:
        try:
            return self.stop_on(None, self.lex.raw_escapes)
        except ShellLexError as exc:
            raise ShellLexError(f"failed to process {go_quote(self.source)}: {exc}") from None

    # -- the main loop ---------------------------------------------------------------------------

    def stop_on(self, stop: Optional[str], raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end; returns (word, words)."""
        lex, sc = self.lex, self.scanner
        result: list[str] = []
        size = 0
        words = _Words()
        while (ch := sc.peek()) is not None:
            if stop is not None and ch == stop:
                sc.next()
                return "".join(result), words.result()
            special = self._special(ch)
            if special is not None:
                text = special()
                size = self._bounded(size + len(text))
                result.append(text)
                if ch == "$":
                    words.add_string(text)  # an expanded value splits on its whitespace
                else:
                    words.add_raw(text)
                continue
            sc.next()
            if ch == lex.escape:
                if raw_escapes:
                    words.add_raw(ch)
                    result.append(ch)
                escaped = sc.next()
                if escaped is None:
                    break  # an escape token at the end is dropped
                words.add_raw(escaped)
                result.append(escaped)
                continue
            words.add_char(ch)
            result.append(ch)
        if stop is not None:
            raise ShellLexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def _special(self, ch: str):  # type: ignore[no-untyped-def]
        if ch == "$":
            return self.dollar
        if ch == "<":
            return self.possible_heredoc
        if not self.lex.skip_process_quotes:
            if ch == "'":
                return self.single_quote
            if ch == '"':
                return self.double_quote
        return None

    # -- quotes ------------------------------------------------------------------------------------

    def single_quote(self) -> str:
        sc = self.scanner
        quote = "'" if self.lex.raw_quotes else ""
        sc.next()
        out = [quote]
        while True:
            ch = sc.next()
            if ch is None:
                raise ShellLexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                out.append(quote)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        sc, lex = self.scanner, self.lex
        quote = '"' if lex.raw_quotes else ""
        sc.next()
        out = [quote]
        size = 0
        while True:
            ch = sc.peek()
            if ch is None:
                raise ShellLexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                sc.next()
                out.append(quote)
                return "".join(out)
            if ch == "$":
                text = self.dollar()
                size = self._bounded(size + len(text))
                out.append(text)
                continue
            sc.next()
            if ch == lex.escape:
                following = sc.peek()
                if following is None:
                    continue  # an escape token at the end is dropped
                if following in ('"', "$", lex.escape):
                    if lex.raw_escapes:
                        out.append(ch)
                    ch = following
                    sc.next()
            out.append(ch)

    def possible_heredoc(self) -> str:
        """``<<`` (or ``<<-``) keeps the spaces after it in its word: ``<< EOF`` is one word."""
        sc = self.scanner
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        out = ["<<"]
        if sc.peek() == "-":
            out.append(sc.next())  # type: ignore[arg-type]
        while sc.peek() in _HEREDOC_SPACE:
            out.append(sc.next())  # type: ignore[arg-type]
        return "".join(out)

    # -- variables ---------------------------------------------------------------------------------

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        if self.lex.case_insensitive:
            if self.folded is None:
                self.folded = {}
                for key, value in self.env.items():
                    self.folded.setdefault(key.casefold(), value)
            folded = name.casefold()
            if folded in self.folded:
                return self.folded[folded], True
        return "", False

    def name(self) -> str:
        sc = self.scanner
        out: list[str] = []
        while (ch := sc.peek()) is not None:
            if not out and ch.isdecimal():
                while (digit := sc.peek()) is not None and digit.isdecimal():
                    out.append(sc.next())  # type: ignore[arg-type]
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                sc.next()
                return ch
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            out.append(sc.next())  # type: ignore[arg-type]
        return "".join(out)

    def dollar(self) -> str:
        sc = self.scanner
        sc.next()
        if sc.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        sc.next()
        if sc.peek() is None:
            raise ShellLexError("syntax error: missing '}'")
        if sc.peek() in ("{", "}", ":"):
            raise ShellLexError("syntax error: bad substitution")
        name = self.name()
        ch = sc.next()
        if ch is None:
            raise ShellLexError("syntax error: missing '}'")
        if ch == "}":
            value, found = self.lookup(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(name)
        modifier = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            nxt = sc.next()
            if nxt is None:
                raise ShellLexError("syntax error: missing '}'")
            modifier = nxt
        shown = (":" if null_is_unset else "") + modifier
        if modifier not in "+-?#%" or (null_is_unset and modifier in "#%"):
            raise ShellLexError(f"unsupported modifier ({shown}) in substitution")
        word = self._word_until_brace(raw_escapes=modifier in "#%")
        value, found = self.lookup(name)
        if not found and self.lex.skip_unset_env:
            return "${" + name + shown + word + "}"
        unset = not found or (null_is_unset and value == "")
        if modifier == "-":
            return word if unset else value
        if modifier == "+":
            return "" if unset else word
        if modifier == "?":
            if not found:
                raise ShellLexError(f"{name}: {word or 'is not allowed to be unset'}")
            if unset:
                raise ShellLexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(modifier)
        pattern = word[1:] if greedy else word
        return _trim(value, pattern, suffix=modifier == "%", longest=greedy)

    def _word_until_brace(self, raw_escapes: bool) -> str:
        try:
            return self.stop_on("}", raw_escapes)[0]
        except ShellLexError:
            if self.scanner.peek() is None:
                raise ShellLexError("syntax error: missing '}'") from None
            raise

    def _replace(self, name: str) -> str:
        sc = self.scanner
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        try:
            pattern = self.stop_on("/", True)[0]
        except ShellLexError:
            raise ShellLexError("syntax error: missing '/' in ${}") from None
        replacement = self._word_until_brace(raw_escapes=True)
        value, found = self.lookup(name)
        if not found and self.lex.skip_unset_env:
            return "${" + name + ("//" if replace_all else "/") + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern)
        if any(c in pattern for c in "*?[\\"):
            value = _subject(value)
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        return regex.sub(lambda _m: replacement, value, count=1)


# -- shell patterns (for # % /) ----------------------------------------------------------------------


def _pattern_regex(pattern: str) -> "re.Pattern[str]":
    """A shell pattern as a regex: ``*`` any run (``/`` included), ``?`` one character,
    ``[...]`` a class (``[!...]`` negated), ``\\x`` a literal ``x``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append("(?s:.*)")
        elif ch == "?":
            out.append("(?s:.)")
        elif ch == "[":
            end = i + 1
            if end < n and pattern[end] in "!^":
                end += 1
            if end < n and pattern[end] == "]":
                end += 1
            while end < n and pattern[end] != "]":
                end += 1
            if end >= n:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                out.append(f"[{'^' if negate else ''}{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise ShellLexError(f"invalid pattern ({pattern}) in substitution: {exc}") from None


def _subject(value: str) -> str:
    if len(value) > MAX_PATTERN_SUBJECT:
        raise ShellLexError(f"a pattern substitution on a value of {len(value)} characters (the limit is "
                            f"{MAX_PATTERN_SUBJECT})")
    return value


def _trim(value: str, pattern: str, *, suffix: bool, longest: bool) -> str:
    if not any(c in pattern for c in "*?[\\"):  # a literal: no search
        if suffix:
            return value[:-len(pattern)] if pattern and value.endswith(pattern) else value
        return value[len(pattern):] if value.startswith(pattern) else value
    value = _subject(value)
    regex = _pattern_regex(pattern)
    positions = range(len(value) + 1)
    if suffix:  # ${X%p}: shortest matching suffix; ${X%%p}: longest
        order = positions if longest else reversed(positions)
        for i in order:
            if regex.fullmatch(value, i):
                return value[:i]
    else:  # ${X#p}: shortest matching prefix; ${X##p}: longest
        order = reversed(positions) if longest else positions
        for i in order:
            if regex.fullmatch(value, 0, i):
                return value[i:]
    return value


# -- Go's strconv.Quote ----------------------------------------------------------------------------------

_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
                  "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: printable characters as they are, the rest escaped.

    Bytes that were not UTF-8 (kept as surrogate escapes U+DC80..U+DCFF) come out as ``\\xNN``.
    """
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == " " or (code >= 0x20 and unicodedata.category(ch)[0] in "LMNPS"):
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
