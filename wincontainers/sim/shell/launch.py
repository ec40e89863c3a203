"""A container process's command line: which program it names and how cmd reads its switches.

``cmd /S /C "line"`` follows ``cmd /?``: with ``/S``, or unless the line is exactly one quoted
program name, the first and the last quote go. ``cmd`` without ``/C`` or ``/K`` reads commands
from its input, as the interactive shell of ``docker run -it``.
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs

from wincontainers.sim.shell.argv import program_of

__all__ = ["CmdSwitches", "cmd_switches"]

_SPECIAL = set('&<>()@^|')


@attrs.define
class CmdSwitches:
    line: Optional[str] = None  # the text after /C or /K
    keep: bool = False  # /K: stay after running it
    echo: bool = True  # /Q turns it off
    delayed: bool = False  # /V:ON


def cmd_switches(command_line: str, is_program: Optional[Callable[[str], bool]] = None) -> CmdSwitches:
    """The switches of a ``cmd`` command line and the command it runs."""
    _, i = program_of(command_line)
    out = CmdSwitches()
    strip_s = False
    n = len(command_line)
    while i < n:
        while i < n and command_line[i] in " \t":
            i += 1
        if i >= n or command_line[i] != "/":
            break
        j = i + 1
        while j < n and command_line[j] not in " \t/\"":
            j += 1
        switch = command_line[i + 1:j].lower()
        if switch[:1] in ("c", "k") and len(switch) >= 1:
            out.keep = switch[0] == "k"
            rest = command_line[i + 2:]
            out.line = _strip_quotes(rest.lstrip(" \t"), strip_s, is_program)
            return out
        if switch == "q":
            out.echo = False
        elif switch == "s":
            strip_s = True
        elif switch.startswith("v"):
            out.delayed = switch in ("v:on", "v")
        i = j
    return out


def _strip_quotes(rest: str, forced: bool, is_program: Optional[Callable[[str], bool]]) -> str:
    if not rest.startswith('"'):
        return rest
    if not forced and rest.count('"') == 2:
        inner = rest[1:rest.index('"', 1)]
        if (not (_SPECIAL & set(inner)) and any(c in inner for c in " \t")
                and is_program is not None and is_program(inner)):
            return rest
    last = rest.rfind('"')
    return rest[1:last] + rest[last + 1:] if last > 0 else rest[1:]
