"""Host commands of the ``wincontainers`` CLI: ``info`` (generation, build, base images) and
``selftest`` (the ladder of checks that shows what works on this host)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Callable

from wincontainers.cli._common import open_host

if TYPE_CHECKING:
    from wincontainers import selftest

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    sub.add_parser("info", help="show the host, its API generation and base images")
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


def cmd_selftest(args: argparse.Namespace) -> int:
    from wincontainers import selftest

    def progress(step: "selftest.StepResult") -> None:
        if not args.json and sys.stderr.isatty():
            print(f"{step.name}: {step.status}", file=sys.stderr)

    report = selftest.run(sim=args.sim, root=args.root, generation=args.generation, keep=args.keep,
                          only=args.step, on_step=progress)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.table())
    return 0 if report.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"info": cmd_info, "selftest": cmd_selftest}
