"""``python -m wincontainers.sim start|stop|status [--profile P] [--root DIR]``."""

import argparse
import sys

from wincontainers.cli import main

ap = argparse.ArgumentParser(prog="python -m wincontainers.sim")
ap.add_argument("action", choices=("start", "stop", "status"))
ap.add_argument("--profile", default=None)
ap.add_argument("--root", default=None)
ns = ap.parse_args()
argv = []
if ns.profile:
    argv += ["--sim", ns.profile]
if ns.root:
    argv += ["--root", ns.root]
sys.exit(main([*argv, "sim", ns.action]))
