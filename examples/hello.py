"""The main job: a container from windowsservercore runs `echo hello`, lists its processes,
stops and is removed.

Runs on the simulated host (profile from WINCONTAINERS_SIM, default ws2019); on a Windows
container host pass --real to use the Host Compute Service itself.
"""

from __future__ import annotations

import os
import sys

from wincontainers import Host


def main() -> int:
    if "--real" in sys.argv:
        host = Host.open()
    else:
        host = Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    print(f"host: build {host.build}, HCS API generation {host.generation}"
          f"{' (simulated, profile ' + host.simulator.profile.name + ')' if host.simulator else ''}")
    with host.containers.create("windowsservercore", name=f"hello-{os.getpid()}") as container:
        container.start()
        print(f"container {container.name} ({container.short_id}) is {container.status}")

        result = container.run('cmd /S /C "echo hello"')
        print(f"output: {result.stdout.decode().strip()!r} (exit code {result.returncode})")

        background = container.exec("ping -n 30 localhost")
        print(f"{'PID':>8}  {'IMAGE':<14} PRIVATE WORKING SET")
        for process in container.top():
            print(f"{process.pid:>8}  {process.image:<14} {process.memory_private_bytes // 1024} kB")

        stopped = container.stop(timeout=10)
        print(f"stopped: {stopped.outcome} in {stopped.elapsed:.2f} s; "
              f"background process exit code {background.wait(10):#x}")
    print(f"removed; containers left: {len(host.containers.list(all=True))}")
    if host.simulator:
        print(f"(the simulated host keeps running; `wincontainers --sim {host.simulator.profile.name} sim stop` "
              "stops it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
