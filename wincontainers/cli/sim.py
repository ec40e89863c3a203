"""``wincontainers sim start|stop|status``: the simulated host's daemon, for a shell session or a
notebook that wants it running before (or after) a script."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from wincontainers import errors

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    sim = sub.add_parser("sim", help="start, stop or query the simulated host's daemon")
    sim.add_argument("action", choices=("start", "stop", "status"))


def cmd_sim(args: argparse.Namespace) -> int:
    if sys.platform == "win32":
        raise errors.HcsUnavailable("the simulated host runs on POSIX systems")
    from wincontainers.sim import SimulatedHost

    sim = SimulatedHost(args.sim or "ws2019", args.root)
    if args.action == "start":
        sim.start()
        info = sim.status() or {}
        print(f"simulated host running (pid {info.get('pid')}, root {sim.root}, profile {sim.profile.name})")
        return 0
    if args.action == "stop":
        print("simulated host stopped" if sim.stop() else "simulated host was not running")
        return 0
    status = sim.status()
    if status is None:
        print(f"simulated host not running (root {sim.root})")
        return 3
    objects = sim.objects()
    print(json.dumps({**status, "compute_systems": len(objects["systems"]), "volumes": len(objects["volumes"]),
                      "networks": len(objects["networks"]), "endpoints": len(objects["endpoints"])}))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"sim": cmd_sim}
