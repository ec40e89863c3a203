"""Networks: a NAT network, a container with a port mapping, its address as `inspect` shows
it, a refused port conflict, and everything removed again.

Runs on the simulated host (profile from WINCONTAINERS_SIM, default ws2019); on a Windows
container host pass --real to use the Host Compute Service itself. On TP3 (profile tp3) there is
no network service: the example uses the host's NAT and says so.
"""

from __future__ import annotations

import os
import sys

from wincontainers import Host, errors


def main() -> int:
    host = Host.open() if "--real" in sys.argv else Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    name = f"example-{os.getpid()}"
    try:
        network = host.networks.create(name, "nat", subnet="172.31.250.0/24")
        made = True
        print(f"created network {network.name}: {network.subnet}, gateway {network.gateway}")
    except errors.NotSupported as exc:
        print(f"this host cannot create networks ({exc.system_message}); using its NAT")
        network, made = host.networks.default(), False
    try:
        with host.containers.create("windowsservercore", name=f"web-{os.getpid()}", network=network,
                                    ports={"80/tcp": 18080}) as web:
            web.start()
            settings = web.inspect()["NetworkSettings"]
            print(f"{web.name}: IP {settings['IPAddress']} on {network.name}, ports {settings['Ports']}")
            try:
                host.containers.create("windowsservercore", network=network, ports={"80/tcp": 18080})
            except errors.AlreadyExists as exc:
                print(f"a second container on host port 18080 is refused:\n  {exc}")
            web.stop()
        print(f"endpoints left on {network.name}: {len(network.endpoints())}")
    finally:
        if made:
            network.remove()
            print(f"removed network {network.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
