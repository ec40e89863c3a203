"""The ``wincontainers`` command line (also ``python -m wincontainers``).

Follows the Docker CLI where it can: ``run`` streams the main process's output and exits with
its exit code (125 when wincontainers itself failed, 126 when the command could not be started,
127 when it was not found); ``ps``, ``top``, ``stop``, ``kill``, ``rm`` take names or id prefixes.
``--sim PROFILE`` (or ``WINCONTAINERS_SIM``) selects the simulated host.

One module per command family (``running``, ``containers``, ``images``, ``layers``, ``networks``, ``host``,
``sim``), each with ``add_parsers(sub)`` and a ``COMMANDS`` table; ``_common`` holds what they
share. This module builds the parser, sets up ``--debug`` logging and turns errors into exit codes:
the CLI is the one part of the package that prints.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from typing import Any, Callable, Optional, Sequence

from wincontainers import errors
from wincontainers.cli import containers, host, images, layers, networks, running, sim
from wincontainers.cli._common import EXIT_ERROR, complain, one_line

__all__ = ["main", "build_parser"]

_FAMILIES = (host, running, containers, layers, images, networks, sim)
_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    name: handler for family in _FAMILIES for name, handler in family.COMMANDS.items()
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then one subcommand per family's entries."""
    from wincontainers import __version__

    parser = argparse.ArgumentParser(
        prog="wincontainers",
        description="Windows Server containers at the level of the Host Compute Service.",
    )
    parser.add_argument("--version", action="version", version=f"wincontainers {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="log what the library does (every HCS call with its result) on standard error")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for family in _FAMILIES:
        family.add_parsers(sub)
    _options_after_commands(parser)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` ran: ``wincontainers layer import`` -> its own."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--sim, --root, --generation: on the top parser with their defaults, and on every command
    (``wincontainers run --sim ws2019 ...``) where, when not given, they leave the top's value."""

    def default(value: Optional[str]) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--sim", metavar="PROFILE", default=default(os.environ.get("WINCONTAINERS_SIM")),
                        help="use the simulated host with this profile: tp3, 2016 or ws2019 (env WINCONTAINERS_SIM)")
    parser.add_argument("--root", metavar="DIR", default=default(os.environ.get("WINCONTAINERS_ROOT")),
                        help="state folder (simulator root) (env WINCONTAINERS_ROOT)")
    parser.add_argument("--generation", type=int, choices=(1, 2, 3), default=default(None),
                        help="force an HCS API generation the host offers")


def _options_after_commands(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                _global_options(command, top=False)
                _options_after_commands(command)


def _log_to_stderr() -> None:
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    library = logging.getLogger("wincontainers")
    library.addHandler(to_stderr)
    library.setLevel(logging.DEBUG)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; the exit status (Docker's: 125 when ``run`` failed in wincontainers)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, with its usage
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.debug:
        _log_to_stderr()
    failed = EXIT_ERROR if args.command in ("run", "create", "exec") else 1
    try:
        return _COMMANDS[args.command](args)
    except errors.WincontainersError as exc:
        complain(exc)
        return failed
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # the machine's, not ours: a full disk, a file we may not read
        if exc.errno == errno.ENOSPC:
            print(f"wincontainers: no space left on the disk ({exc.filename or 'the state folder'})", file=sys.stderr)
        else:
            print(f"wincontainers: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}",
                  file=sys.stderr)
        return failed
    except Exception as exc:  # a bug of ours: one line, and the traceback when asked for
        if os.environ.get("WINCONTAINERS_DEBUG"):
            raise
        print(f"wincontainers: internal error: {type(exc).__name__}: {one_line(exc)} (set WINCONTAINERS_DEBUG=1 "
              "for the traceback, and please report it)", file=sys.stderr)
        return failed


if __name__ == "__main__":
    sys.exit(main())
