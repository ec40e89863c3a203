"""Networking of the simulated host: what HNS (gen2 ``HNSCall``) and HCN (gen3
``computenetwork.dll``) keep, and TP3's per-container NAT devices.

Networks own a subnet and hand out addresses from it; endpoints hold an address, a MAC, and
port mappings whose host ports are unique across the host (as WinNAT requires); namespaces
group a container's endpoints (HCN). Conflicts are refused as the real services refuse them:
overlapping subnets, an address outside the subnet or already taken, a host port already
mapped, a network that still has endpoints. The same state answers both APIs, in their two
document dialects; every method runs under the service lock.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import ipaddress
import secrets
import uuid
from typing import Any, Optional

import attrs

from wincontainers.sim.faults import Fail

__all__ = ["Networks", "SimNetwork", "SimEndpoint", "SimNamespace", "NetFail", "HCN_NETWORK_NOT_FOUND",
           "HCN_ENDPOINT_NOT_FOUND", "HCN_PORT_ALREADY_EXISTS", "HCN_INVALID_JSON", "ERROR_DUP_NAME"]

HCN_NETWORK_NOT_FOUND = 0x803B0001
HCN_ENDPOINT_NOT_FOUND = 0x803B0002
HCN_PORT_ALREADY_EXISTS = 0x803B0013
HCN_ENDPOINT_ALREADY_ATTACHED = 0x803B0014
HCN_INVALID_JSON = 0x803B001B
ERROR_DUP_NAME = 0x80070034
E_INVALIDARG = 0x80070057
ERROR_INVALID_STATE = 0x8007139F
HCN_NAMESPACE_NOT_FOUND = 0x80070490  # HCN reports a missing namespace as ERROR_NOT_FOUND

_TYPES = {"nat": "NAT", "transparent": "Transparent", "l2bridge": "L2Bridge", "l2tunnel": "L2Tunnel",
          "ics": "ICS", "private": "Private", "internal": "Internal", "overlay": "Overlay"}
DEFAULT_NAT_SUBNET = "172.26.112.0/20"
TP3_NAT_SUBNET = "172.16.0.0/12"


class NetFail(Fail):
    """A refused request: the HCN HRESULT, and the message HNS puts in its envelope."""


@attrs.define
class SimNetwork:
    id: str
    name: str
    type: str  # lower case: nat, transparent...
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    dns: list[str] = attrs.field(factory=list)
    used: set[ipaddress.IPv4Address] = attrs.field(factory=set)
    builtin: bool = False

    def hns(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"ID": self.id, "Name": self.name, "Type": self.type,
                               "Subnets": [{"AddressPrefix": str(self.subnet), "GatewayAddress": str(self.gateway)}]}
        if self.dns:
            doc["DNSServerList"] = ",".join(self.dns)
        return doc

    def hcn(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ID": self.id, "Name": self.name, "Type": _TYPES.get(self.type, self.type),
            "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": str(self.subnet), "Routes": [
                {"NextHop": str(self.gateway), "DestinationPrefix": "0.0.0.0/0"}]}]}],
            "SchemaVersion": {"Major": 2, "Minor": 0},
        }
        if self.dns:
            doc["Dns"] = {"ServerList": list(self.dns)}
        return doc


@attrs.define
class SimEndpoint:
    id: str
    name: str
    network: SimNetwork
    ip: ipaddress.IPv4Address
    mac: str
    ports: list[tuple[str, int, int]] = attrs.field(factory=list)  # (protocol, internal, external)
    dns: list[str] = attrs.field(factory=list)
    system: Optional[str] = None  # the compute system it is attached to
    namespace: Optional[str] = None
    implicit: bool = False  # a TP3 NAT device's endpoint: it goes with its container

    @property
    def state(self) -> int:
        return 2 if self.system else 1

    def hns(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ID": self.id, "Name": self.name, "VirtualNetwork": self.network.id,
            "VirtualNetworkName": self.network.name, "MacAddress": self.mac, "IPAddress": str(self.ip),
            "PrefixLength": self.network.subnet.prefixlen, "GatewayAddress": str(self.network.gateway),
            "State": self.state,
        }
        if self.dns:
            doc["DNSServerList"] = ",".join(self.dns)
        if self.ports:
            doc["Policies"] = [{"Type": "NAT", "Protocol": p.upper(), "InternalPort": i, "ExternalPort": e}
                               for p, i, e in self.ports]
        if self.system:
            doc["SharedContainers"] = [self.system]
        return doc

    def hcn(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ID": self.id, "Name": self.name, "HostComputeNetwork": self.network.id,
            "IpConfigurations": [{"IpAddress": str(self.ip), "PrefixLength": self.network.subnet.prefixlen}],
            "Routes": [{"NextHop": str(self.network.gateway), "DestinationPrefix": "0.0.0.0/0"}],
            "MacAddress": self.mac, "SchemaVersion": {"Major": 2, "Minor": 0},
        }
        if self.namespace:
            doc["HostComputeNamespace"] = self.namespace
        if self.dns:
            doc["Dns"] = {"ServerList": list(self.dns)}
        if self.ports:
            doc["Policies"] = [{"Type": "PortMapping", "Settings": {
                "Protocol": 6 if p == "tcp" else 17, "InternalPort": i, "ExternalPort": e}} for p, i, e in self.ports]
        return doc

    def view(self) -> dict[str, Any]:
        """What the container sees (ipconfig, properties)."""
        return {"EndpointId": self.id, "Name": self.name, "IPAddress": str(self.ip),
                "PrefixLength": self.network.subnet.prefixlen, "GatewayAddress": str(self.network.gateway),
                "MacAddress": self.mac, "Network": self.network.name,
                "Ports": [{"Protocol": p.upper(), "InternalPort": i, "ExternalPort": e} for p, i, e in self.ports]}


@attrs.define
class SimNamespace:
    id: str
    type: str
    endpoints: list[str] = attrs.field(factory=list)
    system: Optional[str] = None

    def hcn(self) -> dict[str, Any]:
        return {"ID": self.id, "Type": self.type, "SchemaVersion": {"Major": 2, "Minor": 0},
                "Resources": [{"Type": "Endpoint", "Data": {"Id": e}} for e in self.endpoints]}


def _random_mac() -> str:
    return "00-15-5D-" + "-".join(f"{b:02X}" for b in secrets.token_bytes(3))


def _check_mac(mac: str) -> str:
    parts = mac.replace(":", "-").split("-")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise NetFail(E_INVALIDARG, f"MacAddress {mac!r} is invalid")
    return "-".join(p.upper() for p in parts)


class Networks:
    def __init__(self, profile: str) -> None:
        self.networks: dict[str, SimNetwork] = {}
        self.endpoints: dict[str, SimEndpoint] = {}
        self.namespaces: dict[str, SimNamespace] = {}
        if profile == "tp3":
            self.create_network("ContainerNAT", "nat", TP3_NAT_SUBNET, None, [], builtin=True)
        else:  # hosts with HNS come with a NAT network (Docker's "nat")
            self.create_network("nat", "nat", DEFAULT_NAT_SUBNET, None, [], builtin=True)

    # -- networks ------------------------------------------------------------------------------

    def _free_subnet(self) -> ipaddress.IPv4Network:
        for candidate in ipaddress.IPv4Network("172.16.0.0/12").subnets(new_prefix=20):
            if not any(candidate.overlaps(n.subnet) for n in self.networks.values()):
                return candidate
        raise NetFail(E_INVALIDARG, "no free subnet is left for a new network")

    def create_network(self, name: str, type_: str, subnet: Optional[str], gateway: Optional[str],
                       dns: list[str], *, builtin: bool = False, network_id: Optional[str] = None) -> SimNetwork:
        if not name:
            raise NetFail(E_INVALIDARG, "a network needs a Name")
        kind = (type_ or "").lower()
        if kind not in _TYPES:
            raise NetFail(E_INVALIDARG, f"network type {type_!r} is invalid")
        if any(n.name.lower() == name.lower() for n in self.networks.values()):
            raise NetFail(ERROR_DUP_NAME, f"a network named {name!r} already exists")
        if subnet:
            try:
                net = ipaddress.IPv4Network(subnet, strict=True)
            except ValueError as exc:
                raise NetFail(E_INVALIDARG, f"AddressPrefix {subnet!r} is invalid: {exc}") from None
            if not gateway and not builtin:
                raise NetFail(E_INVALIDARG, f"subnet {subnet} requires a GatewayAddress")
        else:
            net = self._free_subnet()
        for other in self.networks.values():
            if net.overlaps(other.subnet):
                raise NetFail(ERROR_DUP_NAME, f"subnet {net} overlaps the subnet {other.subnet} of network "
                                              f"{other.name!r}")
        try:
            gw = ipaddress.IPv4Address(gateway) if gateway else net.network_address + 1
        except ValueError as exc:
            raise NetFail(E_INVALIDARG, f"GatewayAddress {gateway!r} is invalid: {exc}") from None
        if gw not in net:
            raise NetFail(E_INVALIDARG, f"GatewayAddress {gw} is outside the subnet {net}")
        network = SimNetwork(id=network_id or str(uuid.uuid4()), name=name, type=kind, subnet=net, gateway=gw,
                             dns=list(dns), builtin=builtin)
        self.networks[network.id.lower()] = network
        return network

    def network(self, network_id: str) -> SimNetwork:
        found = self.networks.get(str(network_id).lower().strip("{}"))
        if found is None:
            raise NetFail(HCN_NETWORK_NOT_FOUND, f"network {network_id} not found")
        return found

    def delete_network(self, network_id: str) -> None:
        network = self.network(network_id)
        users = [e.name for e in self.endpoints.values() if e.network is network and not e.implicit]
        if users:
            raise NetFail(ERROR_INVALID_STATE, f"network {network.name!r} has endpoints: {', '.join(sorted(users))}")
        del self.networks[network.id.lower()]

    # -- endpoints -----------------------------------------------------------------------------

    def _host_ports(self) -> set[tuple[str, int]]:
        return {(p, e) for ep in self.endpoints.values() for p, _i, e in ep.ports}

    def create_endpoint(self, network_id: str, name: str, *, ip: Optional[str] = None, mac: Optional[str] = None,
                        ports: Optional[list[tuple[str, int, int]]] = None, dns: Optional[list[str]] = None,
                        implicit: bool = False, endpoint_id: Optional[str] = None) -> SimEndpoint:
        network = self.network(network_id)
        taken = self._host_ports()
        for protocol, internal, external in ports or []:
            if protocol not in ("tcp", "udp") or not 0 < internal < 65536 or not 0 < external < 65536:
                raise NetFail(E_INVALIDARG, f"port mapping {protocol}/{internal}:{external} is invalid")
            if (protocol, external) in taken:
                raise NetFail(HCN_PORT_ALREADY_EXISTS, f"host port {external}/{protocol} is already mapped "
                                                       "by another endpoint")
            taken.add((protocol, external))
        if ip:
            try:
                address = ipaddress.IPv4Address(ip)
            except ValueError as exc:
                raise NetFail(E_INVALIDARG, f"IPAddress {ip!r} is invalid: {exc}") from None
            if address not in network.subnet or address in (network.subnet.network_address,
                                                           network.subnet.broadcast_address):
                raise NetFail(E_INVALIDARG, f"IPAddress {address} is outside the subnet {network.subnet} of "
                                            f"network {network.name!r}")
            if address == network.gateway or address in network.used:
                raise NetFail(ERROR_DUP_NAME, f"IPAddress {address} is already in use on network {network.name!r}")
        else:
            address = next((a for a in network.subnet.hosts() if a != network.gateway and a not in network.used),
                           None)  # type: ignore[assignment]
            if address is None:
                raise NetFail(E_INVALIDARG, f"network {network.name!r} has no free address left")
        endpoint = SimEndpoint(id=endpoint_id or str(uuid.uuid4()), name=name or "", network=network, ip=address,
                               mac=_check_mac(mac) if mac else _random_mac(), ports=list(ports or []),
                               dns=list(dns or []), implicit=implicit)
        network.used.add(address)
        self.endpoints[endpoint.id.lower()] = endpoint
        return endpoint

    def endpoint(self, endpoint_id: str) -> SimEndpoint:
        found = self.endpoints.get(str(endpoint_id).lower().strip("{}"))
        if found is None:
            raise NetFail(HCN_ENDPOINT_NOT_FOUND, f"endpoint {endpoint_id} not found")
        return found

    def delete_endpoint(self, endpoint_id: str, running: set[str]) -> None:
        endpoint = self.endpoint(endpoint_id)
        if endpoint.system and endpoint.system.lower() in running:
            raise NetFail(ERROR_INVALID_STATE, f"endpoint {endpoint.name or endpoint.id} is attached to running "
                                               f"container {endpoint.system}")
        self._drop(endpoint)

    def _drop(self, endpoint: SimEndpoint) -> None:
        endpoint.network.used.discard(endpoint.ip)
        self.endpoints.pop(endpoint.id.lower(), None)
        for namespace in self.namespaces.values():
            if endpoint.id in namespace.endpoints:
                namespace.endpoints.remove(endpoint.id)

    # -- containers ------------------------------------------------------------------------------

    def attach(self, endpoint_id: str, system_id: str) -> SimEndpoint:
        endpoint = self.endpoint(endpoint_id)
        if endpoint.system and endpoint.system.lower() != system_id.lower():
            raise NetFail(HCN_ENDPOINT_ALREADY_ATTACHED, f"endpoint {endpoint.name or endpoint.id} is already "
                                                         f"attached to {endpoint.system}")
        endpoint.system = system_id
        return endpoint

    def detach(self, endpoint_id: str, system_id: str) -> None:
        endpoint = self.endpoint(endpoint_id)
        if endpoint.system and endpoint.system.lower() == system_id.lower():
            endpoint.system = None

    def system_stopped(self, system_id: str) -> None:
        """Endpoints stay (HNS keeps them, detached); a TP3 device's endpoint goes."""
        for endpoint in list(self.endpoints.values()):
            if endpoint.system and endpoint.system.lower() == system_id.lower():
                endpoint.system = None
                if endpoint.implicit:
                    self._drop(endpoint)
        for namespace in self.namespaces.values():
            if namespace.system and namespace.system.lower() == system_id.lower():
                namespace.system = None

    def of_system(self, system_id: str) -> list[SimEndpoint]:
        return [e for e in self.endpoints.values() if e.system and e.system.lower() == system_id.lower()]

    def tp3_device(self, system_id: str, device: dict[str, Any]) -> SimEndpoint:
        """A TP3 NAT device entry: an endpoint on the host NAT with its port bindings."""
        connection = device.get("Connection") or {}
        nat = connection.get("Nat") or {}
        if nat.get("Name") not in (None, "ContainerNAT"):
            raise NetFail(ERROR_DUP_NAME, f"there is no NAT named {nat.get('Name')!r} on this host")
        ports = []
        for binding in nat.get("PortBindings") or []:
            ports.append((str(binding.get("Protocol", "TCP")).lower(), int(binding.get("InternalPort") or 0),
                          int(binding.get("ExternalPort") or 0)))
        mac = (device.get("Settings") or {}).get("MacAddress")
        nat_network = next(n for n in self.networks.values() if n.builtin)
        try:
            endpoint = self.create_endpoint(nat_network.id, f"{system_id}-nat", mac=mac, ports=ports, implicit=True)
        except NetFail as exc:
            # TP3/TP4 answer a taken host port with "a duplicate name exists on the network"
            raise NetFail(ERROR_DUP_NAME, str(exc)) from None
        return self.attach(endpoint.id, system_id)

    # -- namespaces (HCN) -------------------------------------------------------------------------

    def create_namespace(self, namespace_id: str, type_: str) -> SimNamespace:
        if namespace_id.lower() in self.namespaces:
            raise NetFail(ERROR_DUP_NAME, f"namespace {namespace_id} already exists")
        namespace = SimNamespace(id=namespace_id, type=type_ or "Host")
        self.namespaces[namespace_id.lower()] = namespace
        return namespace

    def namespace(self, namespace_id: str) -> SimNamespace:
        found = self.namespaces.get(str(namespace_id).lower().strip("{}"))
        if found is None:
            raise NetFail(HCN_NAMESPACE_NOT_FOUND, f"namespace {namespace_id} not found")
        return found

    def modify_namespace(self, namespace: SimNamespace, request: dict[str, Any]) -> None:
        if str(request.get("ResourceType", "")).lower() != "endpoint":
            raise NetFail(HCN_INVALID_JSON, "only Endpoint resources can be added to a namespace")
        settings = request.get("Settings") or {}
        endpoint = self.endpoint(str(settings.get("ID") or settings.get("Id") or ""))
        kind = str(request.get("RequestType", "")).lower()
        if kind == "add":
            if endpoint.namespace and endpoint.namespace.lower() != namespace.id.lower():
                raise NetFail(HCN_ENDPOINT_ALREADY_ATTACHED, f"endpoint {endpoint.name} is in another namespace")
            if endpoint.id not in namespace.endpoints:
                namespace.endpoints.append(endpoint.id)
            endpoint.namespace = namespace.id
            if namespace.system:
                self.attach(endpoint.id, namespace.system)
        elif kind == "remove":
            if endpoint.id in namespace.endpoints:
                namespace.endpoints.remove(endpoint.id)
            endpoint.namespace = None
            if namespace.system:
                self.detach(endpoint.id, namespace.system)
        else:
            raise NetFail(HCN_INVALID_JSON, f"RequestType {request.get('RequestType')!r} is invalid")

    def delete_namespace(self, namespace_id: str) -> None:
        namespace = self.namespace(namespace_id)
        for endpoint_id in namespace.endpoints:
            endpoint = self.endpoints.get(endpoint_id.lower())
            if endpoint is not None:
                endpoint.namespace = None
        del self.namespaces[namespace.id.lower()]

    def attach_namespace(self, namespace_id: str, system_id: str) -> None:
        namespace = self.namespace(namespace_id)
        namespace.system = system_id
        for endpoint_id in namespace.endpoints:
            self.attach(endpoint_id, system_id)

    # -- control -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "networks": [{"id": n.id, "name": n.name, "type": n.type, "subnet": str(n.subnet), "builtin": n.builtin}
                         for n in self.networks.values()],
            "endpoints": [{"id": e.id, "name": e.name, "network": e.network.name, "ip": str(e.ip),
                           "system": e.system, "implicit": e.implicit, "ports": e.ports}
                          for e in self.endpoints.values()],
            "namespaces": [{"id": n.id, "endpoints": list(n.endpoints), "system": n.system}
                           for n in self.namespaces.values()],
        }
