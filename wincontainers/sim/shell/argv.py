"""Command lines as Windows programs split them (``CommandLineToArgvW``, the MSVC runtime's rules)."""

from __future__ import annotations

from typing import Optional

__all__ = ["command_line_to_argv", "program_of"]


def program_of(line: str) -> tuple[Optional[str], int]:
    """argv[0] (quotes toggle, no backslash escapes) and where the rest of the line starts."""
    i, n = 0, len(line)
    while i < n and line[i] in " \t":
        i += 1
    if i >= n:
        return None, n
    cur = []
    in_quotes = False
    while i < n:
        c = line[i]
        if c == '"':
            in_quotes = not in_quotes
        elif c in " \t" and not in_quotes:
            break
        else:
            cur.append(c)
        i += 1
    return "".join(cur), i


def command_line_to_argv(line: str) -> list[str]:
    """Split a command line as ``CommandLineToArgvW`` does."""
    program, i = program_of(line)
    if program is None:
        return []
    args = [program]
    n = len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return args
        cur = []
        in_quotes = False
        while i < n:
            c = line[i]
            if c == "\\":
                j = i
                while j < n and line[j] == "\\":
                    j += 1
                count = j - i
                if j < n and line[j] == '"':
                    cur.append("\\" * (count // 2))
                    if count % 2:
                        cur.append('"')
                        i = j + 1
                    else:
                        i = j
                    continue
                cur.append("\\" * count)
                i = j
                continue
            if c == '"':
                if in_quotes and i + 1 < n and line[i + 1] == '"':
                    cur.append('"')
                    i += 2
                    continue
                in_quotes = not in_quotes
                i += 1
                continue
            if c in " \t" and not in_quotes:
                break
            cur.append(c)
            i += 1
        args.append("".join(cur))
