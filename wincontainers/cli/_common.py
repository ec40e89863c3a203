"""What every command family of the CLI shares: opening the host the global options name,
printing tables, sizes and ages, and one-line error messages. Nothing here knows a command."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence, Union

from wincontainers import errors
from wincontainers.host import Host

if TYPE_CHECKING:
    from wincontainers.container import Container

__all__ = ["exit_status", "each_container", "opened_container", "EXIT_ERROR", "EXIT_CANNOT_INVOKE", "EXIT_NOT_FOUND", "open_host", "one_line", "complain",
           "print_table", "size", "duration", "ago", "for_each"]

EXIT_ERROR = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127

_UNITS = (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400), ("hour", 3600),
          ("minute", 60))


#: STATUS_CONTROL_C_EXIT: what a Windows process that ended on Ctrl+C (or a stop's console
#: event) exits with.
STATUS_CONTROL_C_EXIT = 0xC000013A


def exit_status(code: int) -> int:
    """A container process's exit code as this process's exit status. Windows keeps all 32 bits;
    a POSIX status has 8, so there (as Docker's CLI on Linux reports a signal) STATUS_CONTROL_C_EXIT
    is 130 (128 + SIGINT) and any other code above 255 (a Windows NTSTATUS) is 255, rather than
    its low byte, which could read as success or as an unrelated code."""
    code &= 0xFFFFFFFF
    if sys.platform == "win32" or code <= 255:
        return code
    return 130 if code == STATUS_CONTROL_C_EXIT else 255


def open_host(args: argparse.Namespace) -> Host:
    """The host ``--sim``/``--root``/``--generation`` name; off Windows only a simulated one."""
    if not args.sim and sys.platform != "win32":
        raise errors.HcsUnavailable(
            "no Host Compute Service on this machine; use --sim PROFILE (tp3, 2016 or ws2019) for the simulated host"
        )
    return Host.open(sim=args.sim, root=args.root, generation=args.generation)


def one_line(exc: BaseException) -> str:
    """An error's message on one line (HCS messages carry line breaks)."""
    return " ".join(str(exc).split())


def complain(exc: BaseException) -> None:
    """``wincontainers: <message>`` on standard error, for a failure that does not end the command."""
    print(f"wincontainers: {one_line(exc)}", file=sys.stderr)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, three spaces apart (the Docker CLI's layout)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def size(n: int) -> str:
    """Bytes as Docker shows them: ``1.5kB``, ``12.3MB``."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.4g}{unit}"
        value /= 1024
    return f"{n}B"


def duration(seconds: float) -> str:
    """``3 days``, ``1 minute``, ``12 seconds``: the largest whole unit."""
    whole = max(0, int(seconds))
    for unit, length in _UNITS:
        if whole >= length:
            n = whole // length
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{whole} second{'s' if whole != 1 else ''}"


def ago(t: Optional[float]) -> str:
    """How long ago a timestamp was (empty for none)."""
    return duration(time.time() - t) if t else ""


def for_each(refs: Iterable[str], action: Callable[[str], Union[str, Sequence[str]]]) -> int:
    """``docker rm a b c``: ``action`` on each name, printing what it returns (a line or lines);
    a failure is said and the others still run. The exit status: 1 when one failed."""
    status = 0
    for ref in refs:
        try:
            done = action(ref)
        except errors.WincontainersError as exc:
            complain(exc)
            status = 1
            continue
        for line in [done] if isinstance(done, str) else done:
            print(line)
    return status


def each_container(args: argparse.Namespace, action: Callable[["Container"], str],
                   damaged: Optional[Callable[[Host, str], str]] = None) -> int:
    """``action`` on each container named; ``damaged`` (if given) on one whose record is damaged."""
    host = open_host(args)

    def one(ref: str) -> str:
        try:
            container = host.containers.get(ref)
        except errors.DamagedRecord:
            if damaged is None:
                raise
            return damaged(host, ref)
        try:
            return action(container)
        finally:
            container.close()

    return for_each(args.containers, one)


@contextlib.contextmanager
def opened_container(args: argparse.Namespace, ref: Optional[str] = None) -> Iterator["Container"]:
    """The container ``ref`` (else ``args.container``) on the host the options name, closed after."""
    container = open_host(args).containers.get(ref if ref is not None else args.container)
    try:
        yield container
    finally:
        container.close()
