"""Detached containers: one runs on after this script's part is done, held by its monitor; its
output is read back from the log, a failing one is restarted by its policy, and both are removed.

Runs on the simulated host (profile from WINCONTAINERS_SIM, default ws2019); on a Windows
container host pass --real to use the Host Compute Service itself.
"""

from __future__ import annotations

import os
import sys
import time

from wincontainers import Host


def main() -> int:
    host = Host.open() if "--real" in sys.argv else Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    tag = os.getpid()
    web = host.containers.run("windowsservercore", 'cmd /S /C "echo serving & ping -t 127.0.0.1"', detach=True,
                              name=f"web-{tag}")
    flaky = host.containers.run("windowsservercore", 'cmd /S /C "echo trying & exit 1"', detach=True,
                                name=f"flaky-{tag}", restart_policy="on-failure:2")
    try:
        print(f"{web.name} runs detached: {web.status}, its monitor {web.monitor_status()}")
        deadline = time.monotonic() + 30
        while b"Reply from" not in web.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        print("its log so far:", web.logs(tail=2).decode().strip().splitlines()[-1])
        for line in web.logs(follow=True, tail=0):  # from now on, until the container stops
            print("followed:", line.decode().strip())
            break
        print(f"{web.name} stopped: {web.stop(timeout=5).outcome}")
        code = flaky.wait(30).exit_code
        while flaky.monitor_status() == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        flaky.reload()
        print(f"{flaky.name} exited {code} after {flaky.record.restart_count} restarts; "
              f"its log: {flaky.logs().decode().split()}")
    finally:
        for container in (web, flaky):
            container.remove(force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
