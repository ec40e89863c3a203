"""The Dockerfile parser: text -> :class:`Dockerfile` (instructions with their arguments).

It follows BuildKit's parser rule for rule, so the same file gives the same tree, and
:meth:`Dockerfile.dump` prints that tree in BuildKit's ``Node.Dump()`` format:

- parser directives (``# escape=``\\``, ``# syntax=``, ``# check=``) in the leading comment block;
  the escape token continues lines and escapes characters;
- logical lines: a line ending with the escape token continues on the next; comment lines and
  empty lines inside a continuation are dropped (the latter with a warning);
- per-instruction argument rules: JSON (exec) form or shell form for ``RUN``/``CMD``/
  ``ENTRYPOINT``/``SHELL``, JSON or whitespace-split lists for ``ADD``/``COPY``/``VOLUME``,
  ``key=value`` triples for ``ENV``/``LABEL``, ``ONBUILD`` wrapping an instruction, leading
  ``--flag`` words;
- heredocs (``RUN <<EOF``) for ``RUN``, ``COPY`` and ``ADD``: their bodies are read verbatim.

Nothing is expanded here: ``$VAR`` and quotes stay as written (see :mod:`.lexer` and
:mod:`.instructions`).

Why one file: it follows BuildKit's parser (parser.go, line_parsers.go, directives) rule for rule,
and is easiest to hold against it as one module.
"""

from __future__ import annotations

import json
import re
from typing import Callable, Optional, Union

import attrs

from wincontainers import errors
from wincontainers.build.lexer import ShellLex, ShellLexError, go_quote, go_is_space

__all__ = ["Dockerfile", "Instruction", "Heredoc", "DockerfileParseError", "parse_dockerfile", "parse_heredoc",
           "heredocs_from_line", "parse_directives", "detect_syntax", "Directive", "MAX_LINE_BYTES"]

MAX_LINE_BYTES = 65535  # BuildKit reads lines with a 64 KiB scanner buffer
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.S)
_SPLIT_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z", re.S)
_HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})


class DockerfileParseError(errors.BadInput):
    """The Dockerfile is not valid; ``line`` (and ``end_line``) say where, 1-based."""

    def __init__(self, message: str, line: Optional[int] = None, end_line: Optional[int] = None) -> None:
        self.reason = message
        self.line = line
        self.end_line = end_line if end_line is not None else line
        where = ""
        if line:
            where = f"line {line}" if not end_line or end_line == line else f"lines {line}-{end_line}"
        super().__init__(f"Dockerfile {where}: {message}" if where else f"Dockerfile: {message}")


@attrs.frozen
class Heredoc:
    """``<<EOF`` ... ``EOF``: the body as written (``chomp``: ``<<-``, leading tabs to strip)."""

    name: str
    content: str = ""
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False

    @property
    def text(self) -> str:
        """The body with ``<<-``'s leading tabs removed."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


Arg = Union[str, "Instruction"]


@attrs.frozen
class Instruction:
    """One instruction: ``keyword`` as written, ``flags`` (``--name=value`` words), ``args``
    as BuildKit's rule for the keyword produced them (an ``ONBUILD``'s arg is an Instruction).
    ``json`` is true for the JSON (exec) form."""

    keyword: str
    args: tuple[Arg, ...] = ()
    flags: tuple[str, ...] = ()
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    original: str = ""
    start_line: int = 0
    end_line: int = 0
    comments: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The keyword in lower case (``run``, ``from``...)."""
        return self.keyword.lower()

    @property
    def strings(self) -> tuple[str, ...]:
        return tuple(a for a in self.args if isinstance(a, str))

    def dump(self) -> str:
        """BuildKit's ``Node.Dump()`` of this instruction."""
        out = self.keyword.lower()
        if self.flags:
            out += " [" + " ".join(go_quote(f) for f in self.flags) + "]"
        for arg in self.args:
            out += " " + (f"({arg.dump()})" if isinstance(arg, Instruction) else go_quote(arg))
        return _go_strip(out)


@attrs.frozen
class Dockerfile:
    """A parsed Dockerfile."""

    instructions: tuple[Instruction, ...]
    escape: str = "\\"
    directives: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def start_line(self) -> int:
        return self.instructions[0].start_line if self.instructions else 0

    @property
    def end_line(self) -> int:
        return self.instructions[-1].end_line if self.instructions else 0

    def directive(self, name: str) -> Optional[str]:
        return next((v for k, v in self.directives if k == name), None)

    def dump(self) -> str:
        """BuildKit's ``Node.Dump()`` of the whole file: one ``(...)`` line per instruction
        (the ``result`` files of BuildKit's parser tests hold this plus a final newline)."""
        return _go_strip("".join(f"({i.dump()})\n" for i in self.instructions))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)


# -- helpers ---------------------------------------------------------------------------------------


def _go_strip(text: str) -> str:
    start, end = 0, len(text)
    while start < end and go_is_space(text[start]):
        start += 1
    while end > start and go_is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def _go_lstrip(text: str) -> str:
    start = 0
    while start < len(text) and go_is_space(text[start]):
        start += 1
    return text[start:]


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _go_lstrip(_trim_newline(line)).startswith("#")


def _lines(text: str) -> list[str]:
    """Lines with their ``\\n`` kept (a last line without one is still a line)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


class _Directives:
    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self.found: list[tuple[str, str]] = []
        self.escape = "\\"
        self._set_escape("\\")

    def _set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise ValueError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        # A trailing escape token continues the line unless it is itself escaped ("c:\\").
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z", re.S)

    def feed(self, line: str) -> None:
        """A line of the leading block (newline trimmed): a directive, or the end of them."""
        if self.done:
            return
        if not line.startswith("#"):
            self.done = True
            return
        match = _DIRECTIVE.match(_go_lstrip(line[1:]))
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return
        name, value = match.group(1).lower(), match.group(2)
        if name in self.seen:
            raise ValueError(f"only one {name} parser directive can be used")
        self.seen[name] = value
        self.found.append((name, value))
        if name == "escape":
            self._set_escape(value)

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without its continuation token, whether the logical line ends here)."""
        if self.continuation.search(line):
            return self.continuation.sub(lambda m: m.group(1) or "", line, count=1), False
        return line, True


# -- argument rules per instruction -----------------------------------------------------------------


class _NotStringArray(ValueError):
    pass


def _parse_json(rest: str) -> Optional[list[str]]:
    """The elements of a JSON array of strings; None when ``rest`` is not a JSON array."""
    rest = _go_lstrip(rest)
    if not rest.startswith("["):
        return None

    def refuse(_name: str) -> None:
        raise ValueError("not JSON")  # NaN/Infinity are not JSON to Go

    try:  # the first JSON value; what follows it is ignored, as Go's json.Decoder does
        value, _end = json.JSONDecoder(parse_constant=refuse).raw_decode(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    out = []
    for item in value:
        if not isinstance(item, str):
            raise _NotStringArray("when using JSON array syntax, arrays must be comprised of strings only")
        # Go turns unpaired surrogates into U+FFFD
        out.append(re.sub("[\ud800-\udfff]", "\ufffd", item))
    return out


def _split_whitespace(rest: str) -> list[str]:
    return _SPLIT_WHITESPACE.split(rest) if rest else []


def _parse_words(rest: str, escape: str) -> list[str]:
    """Words split on unquoted whitespace, quotes and escapes kept as written (ENV, LABEL, ARG)."""
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    i, n = 0, len(rest)
    while True:
        at_end = i >= n
        ch = "" if at_end else rest[i]
        if phase == in_spaces:
            if at_end:
                break
            if go_is_space(ch):
                i += 1
                continue
            phase = in_word
        if phase in (in_word, in_quote) and at_end:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == in_word:
            if go_is_space(ch):
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                i += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue  # an escape token at the end is dropped
                word.append(ch)  # unquoted: the escape and the next character, as written
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        # in a quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if i + 1 == n:
                phase = in_word
                i += 1
                continue
            i += 1
            word.append(ch)
            ch = rest[i]
        word.append(ch)
        i += 1
    return words


def _name_values(keyword: str) -> Callable[[str, _Directives], tuple[list[Arg], bool]]:
    def parse(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
        words = _parse_words(rest, d.escape)
        if not words:
            return [], False
        if "=" not in words[0]:  # the legacy form: KEY value...
            parts = _SPLIT_WHITESPACE.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise ValueError(f"{keyword} must have two arguments")
            return [parts[0], parts[1], ""], False
        out: list[Arg] = []
        for word in words:
            if "=" not in word:
                raise ValueError(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
            key, _, value = word.partition("=")
            out += [key, value, "="]
        return out, False
    return parse


def _name_or_name_value(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    return list(_parse_words(rest, d.escape)), False


def _whitespace_list(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    return list(_split_whitespace(rest)), False


def _string(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    return ([rest] if rest else []), False


def _maybe_json(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    if not rest:
        return [], False
    parsed = _parse_json(rest)
    if parsed is not None:
        return list(parsed), True
    return [rest], False


def _maybe_json_list(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    parsed = _parse_json(rest)
    if parsed is not None:
        return list(parsed), True
    return list(_split_whitespace(rest)), False


def _healthcheck(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    raw = rest.encode("utf-8", "surrogateescape")  # BuildKit looks at bytes here
    sep = 0
    while sep < len(raw) and not go_is_space(chr(raw[sep])):
        sep += 1
    nxt = sep
    while nxt < len(raw) and go_is_space(chr(raw[nxt])):
        nxt += 1
    if sep == 0:
        return [], False
    kind = raw[:sep].decode("utf-8", "surrogateescape")
    command, is_json = _maybe_json(raw[nxt:].decode("utf-8", "surrogateescape"), d)
    return [kind, *command], is_json


def _sub_instruction(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    if not rest:
        return [], False
    return [_instruction(rest, d, ())], False


def _ignore(rest: str, d: _Directives) -> tuple[list[Arg], bool]:
    return [""], False


_RULES: dict[str, Callable[[str, _Directives], tuple[list[Arg], bool]]] = {
    "add": _maybe_json_list,
    "arg": _name_or_name_value,
    "cmd": _maybe_json,
    "copy": _maybe_json_list,
    "entrypoint": _maybe_json,
    "env": _name_values("ENV"),
    "expose": _whitespace_list,
    "from": _whitespace_list,
    "healthcheck": _healthcheck,
    "label": _name_values("LABEL"),
    "maintainer": _string,
    "onbuild": _sub_instruction,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _string,
    "user": _string,
    "volume": _maybe_json_list,
    "workdir": _string,
}


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading ``--name[=value]`` words (quotes and ``\\`` processed) and the rest of the line.

    BuildKit scans bytes here, one byte taken as one character, and we do the same.
    """
    raw = line.encode("utf-8", "surrogateescape")
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    pos, n = 0, len(raw)

    def rest(at: int) -> str:
        return raw[at:].decode("utf-8", "surrogateescape")

    while pos <= n:
        ch = chr(raw[pos]) if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if go_is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or raw[pos + 1] != ord("-"):
                return rest(pos), words
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or word):
                words.append(text)
            break
        if phase == in_word:
            if go_is_space(ch):
                phase = in_spaces
                text = "".join(word)
                if text == "--":
                    return rest(pos), words
                if blank_ok or word:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = chr(raw[pos])
            word.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = chr(raw[pos])
        word.append(ch)
        pos += 1
    return "", words


def _instruction(line: str, d: _Directives, comments: tuple[str, ...]) -> Instruction:
    parts = _SPLIT_WHITESPACE.split(_go_strip(line), maxsplit=1)
    keyword, args = parts[0], ""
    flags: list[str] = []
    if len(parts) == 2:
        args, flags = _extract_flags(parts[1])
    rule = _RULES.get(keyword.lower(), _ignore)
    values, is_json = rule(_go_strip(args), d)
    return Instruction(keyword=keyword, args=tuple(values), flags=tuple(flags), json=is_json, original=line,
                       comments=comments)


def _can_hold_heredoc(node: Instruction) -> bool:
    if node.name == "onbuild" and node.args and isinstance(node.args[0], Instruction):
        node = node.args[0]
    return node.name in _HEREDOC_INSTRUCTIONS and not node.json


# -- heredocs -------------------------------------------------------------------------------------------


def parse_heredoc(word: str) -> Optional[Heredoc]:
    """``<<EOF``, ``<<-'EOF'``, ``3<<EOF``, ``<< EOF`` -> a Heredoc (no body yet); other words -> None.

    A quoted name (``<<'EOF'``, ``<<E"O"F``) means the body is not expanded.
    Raises ShellLexError for an unterminated quote (``<<'EOF``).
    """
    match = _HEREDOC.match(word)
    if match is None or not match.group(3):
        return None
    fd_text, chomp, rest = match.groups()
    fd = min(int(fd_text), 2**64 - 1) if fd_text else 0
    words = ShellLex("\\", skip_unset_env=True).process_words(rest)
    if len(words) != 1:
        return None
    raw = ShellLex("\\", skip_unset_env=True, raw_quotes=True).process_words(rest)
    if len(raw) != 1:
        raise ShellLexError(f"internal lexing of heredoc produced inconsistent results: {rest}")

    def quotes(text: str) -> int:
        return text.count("'") + text.count('"')

    return Heredoc(name=words[0], file_descriptor=fd, expand=quotes(words[0]) == quotes(raw[0]), chomp=chomp == "-")


def heredocs_from_line(line: str) -> list[Heredoc]:
    """The heredocs an instruction line opens, in order."""
    lex = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line)
    except ShellLexError:
        words = []
    return [doc for doc in (parse_heredoc(w) for w in words) if doc is not None]


# -- directives on their own (what a front end reads before parsing) -----------------------------------


@attrs.frozen
class Directive:
    name: str  # lower case: syntax, escape or check
    value: str
    line: int  # 1-based


def _scan_directives(text: str, comment: str, first_line: int) -> tuple[list[Directive], Optional[DockerfileParseError]]:
    found: list[Directive] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), first_line + 1):
        if not line.startswith(comment):
            break
        match = _DIRECTIVE.match(_go_lstrip(line[len(comment):]))
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        name = match.group(1).lower()
        if name in seen:
            return found, DockerfileParseError(f"only one {name} parser directive can be used", number)
        seen.add(name)
        found.append(Directive(name, match.group(2), number))
    return found, None


def _text(source: Union[str, bytes]) -> str:
    return source.decode("utf-8", "surrogateescape") if isinstance(source, (bytes, bytearray)) else source


def parse_directives(source: Union[str, bytes], comment: str = "#") -> list[Directive]:
    """The leading ``# name=value`` directives (known names only; the first other line ends them).

    Raises DockerfileParseError when one is repeated.
    """
    found, error = _scan_directives(_text(source), comment, 0)
    if error is not None:
        raise error
    return found


def detect_syntax(source: Union[str, bytes]) -> Optional[tuple[str, str, int]]:
    """The ``syntax`` directive as ``(reference, whole value, line)``, or None.

    As BuildKit: a leading BOM and ``#!`` line are skipped; ``# syntax=``, then
    ``// syntax=``, then a whole-file JSON object ``{"syntax": "..."}`` are tried.
    """
    text = _text(source)
    if text.startswith("\ufeff"):
        text = text[1:]
    first_line = 0
    head, _newline, rest = text.partition("\n")
    if head.startswith("#!"):
        text, first_line = rest, 1
    for comment in ("#", "//"):
        for directive in _scan_directives(text, comment, first_line)[0]:
            if directive.name == "syntax":
                return directive.value.split(" ", 1)[0], directive.value, directive.line
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("syntax"), str):
        return doc["syntax"], doc["syntax"], first_line
    return None


# -- the parser -------------------------------------------------------------------------------------------


def parse_dockerfile(source: Union[str, bytes]) -> Dockerfile:
    """Parse a Dockerfile (text or bytes; a UTF-8 BOM is dropped).

    Raises :class:`DockerfileParseError` (a ``BadInput``) with the line numbers.
    """
    lines = _lines(_text(source))
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    for number, line in enumerate(lines, 1):
        if len(line.rstrip("\n").encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES:
            raise DockerfileParseError(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}", number)
    return _Parser(lines).parse()


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.index = 0
        self.directives = _Directives()
        self.current = 0  # lines consumed so far (1-based number of the last one)

    def _next(self) -> Optional[str]:
        if self.index >= len(self.lines):
            return None
        line = self.lines[self.index]
        self.index += 1
        return line

    def _process(self, line: str, strip_left: bool) -> str:
        line = _trim_newline(line)
        if strip_left:
            line = _go_lstrip(line)
        try:
            self.directives.feed(line)
        except ValueError as exc:
            raise DockerfileParseError(str(exc), self.current + 1) from None
        return "" if line.startswith("#") else line

    def parse(self) -> Dockerfile:
        d = self.directives
        instructions: list[Instruction] = []
        warnings: list[str] = []
        comments: list[str] = []
        while (raw := self._next()) is not None:
            if _is_comment(raw):
                comments.append(_go_strip(_go_lstrip(_trim_newline(raw))[1:]))
            processed = self._process(raw, strip_left=True)
            self.current += 1
            start = self.current
            line, ended = d.trim_continuation(processed)
            if ended and not line:
                continue
            empty_continuation = False
            while not ended:
                more = self._next()
                if more is None:
                    break
                processed = self._process(more, strip_left=False)
                self.current += 1
                if _is_comment(more):
                    continue
                if not _go_lstrip(_trim_newline(processed)):
                    empty_continuation = True
                    continue
                piece, ended = d.trim_continuation(processed)
                line += piece
            if empty_continuation:
                warnings.append(f"Empty continuation line found in: {line}")
            try:
                node = _instruction(line, d, tuple(comments))
            except ValueError as exc:
                raise DockerfileParseError(str(exc), start, self.current) from None
            if _can_hold_heredoc(node) and "<<" in line:
                node = self._read_heredocs(node, line, start)
            instructions.append(attrs.evolve(node, start_line=start, end_line=self.current))
            comments = []
        if not instructions:
            raise DockerfileParseError("file with no instructions", self.current or None)
        return Dockerfile(instructions=tuple(instructions), escape=d.escape, directives=tuple(d.found),
                          warnings=tuple(warnings))

    def _read_heredocs(self, node: Instruction, line: str, start: int) -> Instruction:
        try:
            docs = heredocs_from_line(line)
        except ShellLexError as exc:
            raise DockerfileParseError(str(exc), start, self.current) from None
        read: list[Heredoc] = []
        for doc in docs:
            body: list[str] = []
            while True:
                raw = self._next()
                if raw is None:
                    raise DockerfileParseError(f"unterminated heredoc {doc.name}", start, self.current)
                self.current += 1
                candidate = _trim_newline(raw)
                if doc.chomp:
                    candidate = candidate.lstrip("\t")
                if candidate == doc.name:
                    break
                body.append(raw)
            read.append(attrs.evolve(doc, content="".join(body)))
        return attrs.evolve(node, heredocs=tuple(read))
