"""How long a container process takes to start and end: ``cmd /c echo hi``, against a host shell.

A simulated container's processes run the simulator's own cmd (a fork of the container's
zygote) rather than ``/bin/sh``. This measures, in one run and interleaved so machine noise
hits both alike, the median time of

* container: ``container.run('cmd /c echo hi')`` (HCS create process, stdio, exit, close), and
* host:      ``subprocess.run(['/bin/sh', '-c', 'echo hi'])``, a host process start,

for each profile, and reports their ratio. ``PRE_SHELL_RATIO`` is the same ratio measured by this
script on the tree before the simulated shell (commit e03fa39, whose containers ran
``/bin/sh -c``), on the same machine, so ``ratio / PRE_SHELL_RATIO`` is the cost of the shell
relative to the old start; the issue's bound is 2.

    python bench/bench_process_start.py [--runs 200] [--profiles tp3,2016,ws2019]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wincontainers import Host  # noqa: E402

#: container / host for `cmd /c echo hi` on the tree before the simulated shell (median of 3 runs).
PRE_SHELL_RATIO = {"tp3": 2.24, "2016": 2.23, "ws2019": 2.41}
LIMIT = 2.0


def measure(profile: str, runs: int) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-start-{profile}-"))
    host = Host.open(sim=profile, root=root)
    try:
        with host.containers.create("windowsservercore") as c:
            c.start()
            for _ in range(10):
                c.run("cmd /c echo hi")
            inside, outside = [], []
            for _ in range(runs):
                t = time.perf_counter()
                c.run("cmd /c echo hi")
                inside.append(time.perf_counter() - t)
                t = time.perf_counter()
                subprocess.run(["/bin/sh", "-c", "echo hi"], capture_output=True, check=True)
                outside.append(time.perf_counter() - t)
            c.stop()
    finally:
        if host.simulator is not None:
            host.simulator.stop()
    return statistics.median(inside), statistics.median(outside)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--profiles", default="tp3,2016,ws2019")
    args = parser.parse_args()
    worst = 0.0
    for profile in args.profiles.split(","):
        inside, outside = measure(profile, args.runs)
        ratio = inside / outside
        relative = ratio / PRE_SHELL_RATIO.get(profile, ratio)
        worst = max(worst, relative)
        print(f"{profile:>7}: cmd /c echo hi {inside * 1000:6.2f} ms, host /bin/sh {outside * 1000:5.2f} ms, "
              f"ratio {ratio:5.2f} ({relative:4.2f}x the pre-shell ratio {PRE_SHELL_RATIO.get(profile, 0):.2f})")
    print(f"worst: {worst:.2f}x the start before the simulated shell (bound {LIMIT}x)")
    return 0 if worst < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
