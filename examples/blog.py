"""The blog's scenario, each failure it hit turned into what wincontainers does instead.

1. An installer step leaves Cygwin's WSL symlinks in the image: ImportLayer would die with
   "Catastrophic failure" (0x8000FFFF) and no file name. The build stops at that step with a
   layer report naming the files and saying what to do.
2. The fixed Dockerfile builds; its container runs; `top` lists its processes.
3. Commit is refused while it runs (its files are changing), with advice; stopped, it commits.

Runs on the simulated host (profile from WINCONTAINERS_SIM, default ws2019); on a Windows
container host pass --real to use the Host Compute Service itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from wincontainers import Host, errors
from wincontainers.build import build, commit
from wincontainers.build.builder import BuildStepFailed

HERE = Path(__file__).resolve().parent / "blog"


def main() -> int:
    host = Host.open() if "--real" in sys.argv else Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    print("1. building the Dockerfile whose installer step leaves Cygwin's links")
    try:
        build(host, HERE / "broken", tags=["blog:broken"])
        print("   it built?!")
        return 1
    except BuildStepFailed as failed:
        print(f"   step {failed.step} failed: {failed.instruction}")
        assert failed.report is not None
        for finding in failed.report.errors:
            print(f"   {finding.severity} {finding.rule} {finding.path}: {finding.advice}")

    print("2. building the fixed Dockerfile and running it")
    result = build(host, HERE / "fixed", tags=["blog:fixed"])
    print(f"   built {result.image.short_id} in {len(result.steps)} steps")
    with host.containers.create("blog:fixed", "cmd /c ping -n 600 127.0.0.1", name=f"blog-{os.getpid()}") as container:
        container.start()
        print(f"   {container.name} is {container.status}; its processes:")
        for process in container.top():
            print(f"     {process.pid:>7}  {process.image}")
        try:
            commit(container, "blog:committed")
        except errors.InvalidState as refused:
            print(f"3. commit while running is refused: {refused.hint}")
        stopped = container.stop(timeout=10)
        print(f"   stopped ({stopped.outcome}); committing")
        image = commit(container, "blog:committed", changes=['CMD ["cmd", "/c", "dir", "C:\\\\cygwin64\\\\bin"]'])
        print(f"   committed {image.short_id} as {', '.join(image.repo_tags)}")
    for tag in ("blog:committed", "blog:fixed"):
        host.images.remove(tag)
    host.images.gc()
    print(f"containers left: {len(host.containers.list(all=True))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
