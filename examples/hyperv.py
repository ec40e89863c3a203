"""Hyper-V isolation: the same container in a utility VM, through each way the host offers.

On Server 2016 that is vmcompute's (HCS makes the VM with the container); on 1809 and later
also computecore's (a VM of the library's own, as containerd makes it). The processes have the
VM's PIDs, not the host's. TP3 had no Hyper-V containers: the example says so.

Runs on the simulated host (profile from WINCONTAINERS_SIM, default ws2019); on a Windows
container host with the Hyper-V role pass --real to use the Host Compute Service itself.
"""

from __future__ import annotations

import os
import sys

from wincontainers import Host, errors


def main() -> int:
    host = Host.open() if "--real" in sys.argv else Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    routes = host.driver.capabilities.hyperv_routes
    print(f"host: build {host.build}, HCS API generation {host.generation}; Hyper-V routes: "
          f"{', '.join(routes) or 'none'}")
    if not routes:
        print("no Hyper-V containers here: TP3 had none (they came with Technical Preview 4)")
    for route in routes:
        try:
            container = host.containers.create("windowsservercore", isolation="hyperv", hyperv_route=route,
                                               memory_mb=2048, cpu_count=2)
        except errors.HcsError as exc:  # e.g. the Hyper-V role is not installed: the error says so
            print(f"[{route}] {exc}")
            continue
        with container:
            container.start()
            result = container.run('cmd /S /C "echo hello"')
            print(f"[{route}] output: {result.stdout.decode().strip()!r} (exit code {result.returncode})")
            background = container.exec("ping -n 30 localhost")
            pids = ", ".join(f"{p.pid} {p.image}" for p in container.top())
            print(f"[{route}] processes, with the utility VM's PIDs: {pids}")
            stopped = container.stop(timeout=10)
            background.wait(10)
            print(f"[{route}] stopped: {stopped.outcome} in {stopped.elapsed:.2f} s; VM gone with it")
            container.remove()
    print(f"containers left: {len(host.containers.list(all=True))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
