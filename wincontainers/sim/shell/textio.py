"""A process's standard handles as cmd's commands see them: bytes, CRLF line ends, UTF-8."""

from __future__ import annotations

from typing import BinaryIO, Optional

import attrs

__all__ = ["Io", "ShellExit", "BatchExit", "GotoLabel", "ShellSyntaxError", "CommandError"]


@attrs.define
class Io:
    """The three standard handles of one command; ``tty`` when stdout is a console."""

    stdin: BinaryIO
    stdout: BinaryIO
    stderr: BinaryIO
    tty: bool = False

    def out(self, text: str) -> None:
        """Write ``text`` to stdout, ``\\n`` becoming CRLF as every Windows tool writes it."""
        _write(self.stdout, text)

    def err(self, text: str) -> None:
        _write(self.stderr, text)

    def line(self, text: str = "") -> None:
        self.out(text + "\n")

    def error_line(self, text: str) -> None:
        self.err(text + "\n")

    def with_handles(self, stdin: Optional[BinaryIO] = None, stdout: Optional[BinaryIO] = None,
                     stderr: Optional[BinaryIO] = None) -> "Io":
        return Io(stdin or self.stdin, stdout or self.stdout, stderr or self.stderr,
                  self.tty and stdout is None)


def _write(stream: BinaryIO, text: str) -> None:
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "replace")
    try:
        stream.write(data)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass  # the reader went away: cmd carries on (and so do we)


class ShellExit(Exception):
    """``exit N``: the cmd process ends with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class BatchExit(Exception):
    """``exit /b N`` or ``goto :eof``: the current batch file (or call) ends."""

    def __init__(self, code: Optional[int]) -> None:
        super().__init__(code)
        self.code = code


class GotoLabel(Exception):
    """``goto label``: the batch file continues after ``:label``."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


class ShellSyntaxError(Exception):
    """cmd's own parse errors ("The syntax of the command is incorrect.", "x was unexpected...")."""


class CommandError(Exception):
    """An internal command fails with cmd's message and an error level."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
