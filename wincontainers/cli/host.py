"""Host commands of the ``wincontainers`` CLI: ``info`` (generation, build, base images),
``version`` (this package's and the host's) and
``selftest`` (the ladder of checks that shows what works on this host)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Callable

from wincontainers import errors
from wincontainers.cli._common import one_line, open_host

if TYPE_CHECKING:
    from wincontainers import selftest

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    sub.add_parser("info", help="show the host, its API generation and base images")
    version = sub.add_parser("version", help="versions of wincontainers and of the host")
    version.add_argument("-f", "--format", metavar="TEMPLATE", help="Go-template subset, e.g. {{.Server.Version}}")
    st = sub.add_parser("selftest", help="check step by step what works on this host (exit 1 when a step fails)")
    st.add_argument("--json", action="store_true", help="the report as JSON, for a bug report")
    st.add_argument("--keep", action="store_true", help="leave the selftest- objects for inspection")
    st.add_argument("--step", action="append", default=[], metavar="NAME",
                    help="run only this step (and the first); repeatable")


def cmd_info(args: argparse.Namespace) -> int:
    host = open_host(args)
    for key, value in host.info().items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        print(f"{key}: {value}")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    """Like ``docker version``: the client (this package), then the server (the host) when it opens."""
    import platform

    from wincontainers import __version__
    from wincontainers.cli.templates import render

    doc: dict[str, Any] = {"Client": {"Version": __version__, "Python": platform.python_version(),
                                      "Os": sys.platform, "Arch": platform.machine()}, "Server": None}
    status = 0
    try:
        host = open_host(args)
    except errors.WincontainersError as exc:
        print(f"wincontainers: cannot reach the host: {one_line(exc)}", file=sys.stderr)
        status = 1
    else:
        doc["Server"] = {"Version": host.version, "Build": host.build, "ApiGeneration": host.generation,
                         "Simulated": host.is_simulated,
                         "Profile": host.simulator.profile.name if host.simulator else None}
        host.close()
    if args.format:
        print(render(args.format, doc))
        return status
    print("Client:")
    for key, value in doc["Client"].items():
        print(f" {key}: {value}")
    if doc["Server"] is not None:
        print("Server:")
        for key, value in doc["Server"].items():
            print(f" {key}: {value}")
    return status


def cmd_selftest(args: argparse.Namespace) -> int:
    from wincontainers import selftest

    def progress(step: "selftest.StepResult") -> None:
        if not args.json and sys.stderr.isatty():
            print(f"{step.name}: {step.status}", file=sys.stderr)

    report = selftest.run(sim=args.sim, root=args.root, generation=args.generation, keep=args.keep,
                          only=args.step, on_step=progress)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.table())
    return 0 if report.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"info": cmd_info, "version": cmd_version,
                                                             "selftest": cmd_selftest}
