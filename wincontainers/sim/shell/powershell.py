"""``powershell``/``pwsh``: a deliberately small subset, and a clear refusal for the rest.

``-Command``/``-c`` with statements separated by ``;`` or new lines: ``$env:X = value``,
``Write-Output``/``Write-Host``/``echo``, ``Get-ChildItem``, ``Get-Content``, ``Set-Content``,
``New-Item``, ``Remove-Item``, ``Test-Path``, ``Start-Sleep``, ``exit N``, a quoted string, and
``| Out-Null`` after any of them. Anything else writes ``not simulated: <name>`` to stderr and
exits 1: a script that needs more fails here, as it should, rather than passing wrongly.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import time
from typing import Optional

from wincontainers.sim.shell.interpreter import Shell
from wincontainers.sim.shell.textio import CommandError, Io

__all__ = ["run", "NotSimulated"]

_ALIASES = {
    "echo": "write-output", "write": "write-output", "dir": "get-childitem", "ls": "get-childitem",
    "gci": "get-childitem", "cat": "get-content", "gc": "get-content", "type": "get-content",
    "ni": "new-item", "rm": "remove-item", "del": "remove-item", "ri": "remove-item", "rmdir": "remove-item",
    "sleep": "start-sleep", "sc": "set-content", "md": "mkdir",
}


class NotSimulated(Exception):
    """A cmdlet, operator or syntax outside the simulated subset."""


class _Failed(Exception):
    """A cmdlet wrote an error record (the statement failed, the script goes on)."""


def run(shell: Shell, argv: list[str], io: Io) -> int:
    """The ``powershell`` program: its switches, then the command's statements."""
    script: Optional[str] = None
    i = 0
    while i < len(argv):
        low = argv[i].lower()
        if low in ("-command", "-c", "/c", "/command"):
            script = " ".join(argv[i + 1:])
            break
        if low in ("-executionpolicy", "-ep", "-windowstyle", "-inputformat", "-outputformat"):
            i += 2
            continue
        if low in ("-noprofile", "-nop", "-noninteractive", "-nologo", "-mta", "-sta"):
            i += 1
            continue
        if low.startswith("-"):
            io.error_line(f"not simulated: powershell {argv[i]}")
            return 1
        script = " ".join(argv[i:])
        break
    if script is None:
        io.error_line("not simulated: an interactive powershell (give -Command)")
        return 1
    if script.strip() == "-":
        script = io.stdin.read().decode("utf-8", "replace")
    code = 0
    try:
        for statement in _statements(script):
            code = _statement(shell, statement, io)
    except _Exit as exc:
        return exc.code
    except NotSimulated as exc:
        io.error_line(f"not simulated: {exc}")
        return 1
    return code


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _statements(script: str) -> list[str]:
    out, buf, quote = [], [], ""
    for c in script:
        if quote:
            buf.append(c)
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            buf.append(c)
        elif c in ";\n":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
    out.append("".join(buf))
    return [s.strip() for s in out if s.strip()]


def _words(text: str) -> list[str]:
    return re.findall(r"'(?:[^']|'')*'|\"(?:[^\"`]|`.)*\"|[^\s]+", text)


def _value(shell: Shell, word: str) -> str:
    if word.startswith("'") and word.endswith("'") and len(word) >= 2:
        return word[1:-1].replace("''", "'")
    if word.startswith('"') and word.endswith('"') and len(word) >= 2:
        word = word[1:-1]
    elif word.startswith("$") and not word.lower().startswith("$env:") and word.lower() not in (
            "$true", "$false", "$null"):
        raise NotSimulated(f"variable {word}")
    text = re.sub(r"\$env:([A-Za-z_][\w]*)", lambda m: shell.env.get(m.group(1)) or "", word, flags=re.I)
    text = re.sub(r"`(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), text)
    return {"$true": "True", "$false": "False", "$null": ""}.get(text.lower(), text)


def _statement(shell: Shell, statement: str, io: Io) -> int:
    quiet = False
    m = re.search(r"\|\s*out-null\s*$", statement, re.I)
    if m:
        statement, quiet = statement[:m.start()].strip(), True
    if re.match(r"\$null\s*=", statement, re.I):
        statement, quiet = statement.split("=", 1)[1].strip(), True
    if "|" in _outside_quotes(statement):
        raise NotSimulated("pipelines (" + statement + ")")
    env = re.fullmatch(r"\$env:([A-Za-z_]\w*)\s*=\s*(.*)", statement, re.I | re.S)
    if env:
        shell.env.set(env.group(1), _value(shell, env.group(2).strip()))
        return 0
    words = _words(statement)
    if not words:
        return 0
    name = words[0].lower()
    if words[0][0] in "'\"$":
        if len(words) > 1:
            raise NotSimulated(f"the expression {statement}")
        _emit(io, [_value(shell, words[0])], quiet)
        return 0
    if name == "exit":
        raise _Exit(int(words[1]) if len(words) > 1 and re.fullmatch(r"-?\d+", words[1]) else 0)
    name = _ALIASES.get(name, name)
    handler = _CMDLETS.get(name)
    if handler is None:
        raise NotSimulated(words[0])
    positional, named = _parameters(shell, words[1:])
    try:
        lines = handler(shell, positional, named)
    except _Failed as exc:
        io.error_line(f"{words[0]} : {exc}")
        return 1
    except CommandError as exc:
        io.error_line(f"{words[0]} : {exc.message}")
        return 1
    _emit(io, lines, quiet)
    return 0


def _outside_quotes(text: str) -> str:
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"`]|`.)*\"", "", text)


def _emit(io: Io, lines: list[str], quiet: bool) -> None:
    if not quiet:
        for line in lines:
            io.line(line)


def _parameters(shell: Shell, words: list[str]) -> tuple[list[str], dict[str, Optional[str]]]:
    positional: list[str] = []
    named: dict[str, Optional[str]] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("-") and len(w) > 1 and not re.fullmatch(r"-\d+", w):
            key = w[1:].lower().rstrip(":")
            if key in _SWITCHES:
                named[key] = None
                i += 1
                continue
            named[key] = _value(shell, words[i + 1]) if i + 1 < len(words) else None
            i += 2
            continue
        positional.append(_value(shell, w))
        i += 1
    return positional, named


_SWITCHES = {"force", "recurse", "name", "file", "directory", "nonewline", "raw"}


def _path(positional: list[str], named: dict[str, Optional[str]], default: Optional[str] = None) -> str:
    value = named.get("path") or named.get("literalpath") or (positional[0] if positional else default)
    if value is None:
        raise _Failed("Cannot bind argument to parameter 'Path' because it is null.")
    return value


def _mode(is_dir: bool) -> str:
    return "d-----" if is_dir else "-a----"


def _item_lines(shell: Shell, folder: str, entries: list[tuple[str, os.stat_result, bool]]) -> list[str]:
    out = ["", f"    Directory: {folder}", "", "",
           f"{'Mode':<21}{'LastWriteTime':>13}{'Length':>15} Name",
           f"{'----':<21}{'-------------':>13}{'------':>15} ----"]
    for name, st, is_dir in entries:
        t = datetime.datetime.fromtimestamp(st.st_mtime)
        stamp = f"{t.month}/{t.day}/{t.year} {t.strftime('%I:%M %p').lstrip('0'):>8}"
        length = "" if is_dir else str(st.st_size)
        out.append(f"{_mode(is_dir):<6}{stamp:>28}{length:>15} {name}")
    out.append("")
    return out


def get_child_item(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    target = _path(positional, named, ".")
    host = shell.fs.host(target)
    if not os.path.lexists(host):
        raise _Failed(f"Cannot find path '{shell.fs.full(target)}' because it does not exist.")
    if host.is_dir():
        entries = []
        for e in sorted(os.scandir(host), key=lambda e: (not e.is_dir(follow_symlinks=False), e.name.lower())):
            if e.name.startswith(".wcsim-"):
                continue
            is_dir = e.is_dir(follow_symlinks=False)
            if ("file" in named and is_dir) or ("directory" in named and not is_dir):
                continue
            entries.append((e.name, e.stat(follow_symlinks=False), is_dir))
        folder = shell.fs.to_windows(host)
    else:
        entries = [(host.name, os.stat(host), False)]
        folder = shell.fs.to_windows(host.parent)
    if "name" in named:
        return [e[0] for e in entries]
    return _item_lines(shell, folder, entries) if entries else []


def get_content(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    target = _path(positional, named)
    host = shell.fs.host(target)
    if not host.is_file():
        raise _Failed(f"Cannot find path '{shell.fs.full(target)}' because it does not exist.")
    text = host.read_bytes().decode("utf-8-sig", "replace").replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return ["\n".join(lines)] if "raw" in named else lines


def set_content(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    target = _path(positional, named)
    value = named.get("value") if "value" in named else (positional[1] if len(positional) > 1 else "")
    host = shell.fs.host(target)
    if not host.parent.is_dir():
        raise _Failed(f"Could not find a part of the path '{shell.fs.full(target)}'.")
    host.write_bytes(((value or "") + ("" if "nonewline" in named else "\r\n")).encode("utf-8"))
    return []


def new_item(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    target = _path(positional, named)
    if named.get("name"):
        target = target.rstrip("\\") + "\\" + str(named["name"])
    kind = (named.get("itemtype") or named.get("type") or "file").lower()
    host = shell.fs.host(target)
    if os.path.lexists(host) and "force" not in named:
        raise _Failed(f"An item with the specified name {shell.fs.full(target)} already exists.")
    if kind == "directory":
        host.mkdir(parents=True, exist_ok=True)
    elif kind == "file":
        if not host.parent.is_dir():
            if "force" not in named:
                raise _Failed(f"Could not find a part of the path '{shell.fs.full(target)}'.")
            host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes((named.get("value") or "").encode("utf-8"))
    else:
        raise NotSimulated(f"New-Item -ItemType {kind}")
    return _item_lines(shell, shell.fs.to_windows(host.parent), [(host.name, os.stat(host), host.is_dir())])


def mkdir(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    named = dict(named, itemtype="directory")
    return new_item(shell, positional, named)


def remove_item(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    target = _path(positional, named)
    host = shell.fs.host(target, follow_last=False)
    if not os.path.lexists(host):
        raise _Failed(f"Cannot find path '{shell.fs.full(target)}' because it does not exist.")
    if host.is_dir() and not host.is_symlink():
        if any(True for _ in host.iterdir()) and "recurse" not in named:
            raise NotSimulated("Remove-Item of a folder that is not empty without -Recurse (it asks)")
        shutil.rmtree(host)
    else:
        host.unlink()
    return []


def test_path(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    target = _path(positional, named)
    return ["True" if shell.fs.exists(target) else "False"]


def start_sleep(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    if "milliseconds" in named or "m" in named:
        seconds = float(named.get("milliseconds") or named.get("m") or 0) / 1000
    else:
        seconds = float(named.get("seconds") or named.get("s") or (positional[0] if positional else 0))
    time.sleep(max(0.0, seconds))
    return []


def write_output(shell: Shell, positional: list[str], named: dict[str, Optional[str]]) -> list[str]:
    return [" ".join(positional)] if "object" not in named else [str(named["object"])]


_CMDLETS = {
    "write-output": write_output, "write-host": write_output, "get-childitem": get_child_item,
    "get-content": get_content, "set-content": set_content, "new-item": new_item, "mkdir": mkdir,
    "remove-item": remove_item, "test-path": test_path, "start-sleep": start_sleep,
}
