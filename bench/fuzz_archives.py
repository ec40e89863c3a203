"""A longer run of the archive and layer tar fuzz than the tests do (see tests/fuzzing.py).

    python bench/fuzz_archives.py [--cases 100000] [--seed 0]

Prints, for each kind, the cases run, the failures (any exception but a typed one) and the peak
memory of the process that ran them; exits 1 when any case failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    status = 0
    for kind in ("layer", "archive"):
        run = subprocess.run([sys.executable, "-m", "tests.fuzzing", kind, "--cases", str(args.cases),
                              "--seed", str(args.seed)], capture_output=True, text=True, cwd=ROOT)
        result = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{kind}: {result['cases']} cases, {result['failed']} failed, peak {result['peak_kib'] // 1024} MiB")
        for failure in result["failures"][:5]:
            print("  " + failure.replace("\n", "\n  "))
        status |= run.returncode
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
