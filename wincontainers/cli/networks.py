"""Network commands of the ``wincontainers`` CLI: ``network create|ls|inspect|rm|prune|connect|
disconnect`` (Docker CLI conventions; ``rm`` and ``connect`` take names or ID prefixes)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from wincontainers.cli._common import for_each, open_host, print_table
from wincontainers.networks import DRIVERS

__all__ = ["add_parsers", "add_publish_argument", "COMMANDS", "network_document"]


def add_parsers(sub: Any) -> None:
    network = sub.add_parser("network", help="create, list, inspect and remove networks")
    nsub = network.add_subparsers(dest="network_command", metavar="COMMAND")
    nsub.required = True
    create = nsub.add_parser("create", help="create a network (HNS on Server 2016, HCN on 1809+)")
    create.add_argument("-d", "--driver", choices=DRIVERS, default="nat", help="network type (default nat)")
    create.add_argument("--subnet", help="address range, e.g. 172.30.0.0/24")
    create.add_argument("--gateway", help="gateway address (default: the subnet's first)")
    create.add_argument("--dns", action="append", default=[], metavar="IP", help="DNS server (repeatable)")
    create.add_argument("name")
    ls = nsub.add_parser("ls", help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="print IDs only")
    inspect = nsub.add_parser("inspect", help="show networks and their endpoints as JSON")
    inspect.add_argument("networks", nargs="+")
    rm = nsub.add_parser("rm", help="remove networks (refused while they have endpoints)")
    rm.add_argument("-f", "--force", action="store_true", help="remove their endpoints too")
    rm.add_argument("networks", nargs="+")
    prune = nsub.add_parser("prune", help="remove endpoints left by containers that no longer exist")
    prune.add_argument("--grace", type=float, default=60.0, metavar="S",
                       help="keep endpoints younger than this (a create in progress elsewhere); default 60")
    connect = nsub.add_parser("connect", help="attach a running container to a network (Server 2016 and later)")
    add_publish_argument(connect)
    connect.add_argument("network")
    connect.add_argument("container")
    disconnect = nsub.add_parser("disconnect", help="detach a running container from a network")
    disconnect.add_argument("network")
    disconnect.add_argument("container")


def add_publish_argument(parser: argparse.ArgumentParser) -> None:
    """``-p HOST:CONTAINER[/PROTO]``, as ``docker run -p`` (for ``run`` and ``network connect``)."""
    parser.add_argument("-p", "--publish", action="append", default=[], metavar="HOST:CONTAINER[/PROTO]",
                        help="map a host port to a container port (repeatable; tcp unless /udp)")


def network_document(network: Any) -> dict[str, Any]:
    """A network as ``network inspect`` shows it, with its endpoints and their containers."""
    endpoints = {}
    for endpoint in network.endpoints():
        endpoints[endpoint.id] = {
            "Name": endpoint.name, "Container": endpoint.container, "IPAddress": endpoint.ip,
            "MacAddress": endpoint.mac,
            "Ports": {f"{m.container_port}/{m.protocol}": m.host_port for m in endpoint.port_mappings},
        }
    return {
        "Name": network.name, "Id": network.id, "Driver": network.driver,
        "IPAM": {"Config": [{"Subnet": network.subnet, "Gateway": network.gateway}] if network.subnet else []},
        "DNS": list(network.info.dns), "Endpoints": endpoints,
    }


def cmd_network(args: argparse.Namespace) -> int:
    host = open_host(args)
    networks = host.networks
    command = args.network_command
    if command == "create":
        network = networks.create(args.name, args.driver, subnet=args.subnet, gateway=args.gateway, dns=args.dns)
        print(network.id)
        return 0
    if command == "ls":
        found = networks.list()
        if args.quiet:
            for network in found:
                print(network.id)
            return 0
        rows = [("NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY")]
        for network in found:
            rows.append((network.id.replace("-", "")[:12], network.name, network.driver, network.subnet or "-",
                         network.gateway or "-"))
        print_table(rows)
        return 0
    if command == "inspect":
        print(json.dumps([network_document(networks.get(ref)) for ref in args.networks], indent=4))
        return 0
    if command == "rm":
        def remove(ref: str) -> str:
            networks.remove(ref, force=args.force)
            return ref

        return for_each(args.networks, remove)
    if command == "prune":
        removed = networks.prune(grace=args.grace)
        for endpoint_id in removed:
            print(f"deleted endpoint {endpoint_id}")
        print(f"{len(removed)} endpoint(s) removed")
        return 0
    container = host.containers.get(args.container)
    try:
        if command == "connect":
            print(container.connect(args.network, ports=args.publish or None))
        else:
            container.disconnect(args.network)
    finally:
        container.close()
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"network": cmd_network}
