"""Container networking, one shape for the three generations (hcs-api.md 7).

- gen1 (TP3): no network service. The host has one NAT (``ContainerNAT`` on the ``Virtual
  Switch``); a container gets a NAT *device* in its document with its port bindings.
  Endpoints are the library's own records; creating networks is not possible.
- gen2 (Server 2016): HNS through ``HNSCall`` (:mod:`.hns`); endpoint IDs go in ``EndpointList``.
- gen3 (1809+): HCN through ``computenetwork.dll`` (:mod:`.hcn`); a container's endpoints go in
  a namespace, whose ID goes in ``Container.Networking.Namespace``.

:class:`NetworkBackend` is what the object layer uses; the value types are generation-neutral.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

import attrs

from wincontainers import errors
from wincontainers.statefiles import StateFiles, read_optional_json
from wincontainers.driver.base import SystemRef, SystemSpec
from wincontainers.schema import v1

__all__ = ["PortMapping", "NetworkSpec", "NetworkInfo", "EndpointSpec", "EndpointInfo", "ContainerNetwork",
           "NetworkBackend", "Gen1Networking", "random_mac", "DRIVERS", "TP3_NAT_NAME", "TP3_SWITCH",
           "TP3_NAT_SUBNET", "check_subnet"]

DRIVERS = ("nat", "transparent", "l2bridge", "l2tunnel", "ics", "private", "overlay", "internal")
TP3_NAT_NAME = "ContainerNAT"  # Docker's default on TP3/TP4 (DOCKER_CONTAINER_NAT overrides it)
TP3_SWITCH = "Virtual Switch"
TP3_NAT_SUBNET = "172.16.0.0/12"  # TP3's NAT default InternalIPInterfaceAddressPrefix


@attrs.frozen
class PortMapping:
    """A host port forwarded to a container port: ``PortMapping("tcp", 80, 8080)``."""

    protocol: str
    container_port: int
    host_port: int

    def __attrs_post_init__(self) -> None:
        if self.protocol not in ("tcp", "udp"):
            raise errors.BadInput(f"port mapping protocol {self.protocol!r}: tcp or udp")
        for port in (self.container_port, self.host_port):
            if not isinstance(port, int) or not 0 < port < 65536:
                raise errors.BadInput(f"port {port!r} is not between 1 and 65535")

    @classmethod
    def parse(cls, text: str) -> "PortMapping":
        """``HOST:CONTAINER[/PROTO]`` as ``docker run -p`` takes it."""
        spec, _, proto = text.partition("/")
        host, sep, container = spec.rpartition(":")
        if not sep or not host.isdigit() or not container.isdigit():
            raise errors.BadInput(f"-p {text!r}: expected HOST:CONTAINER[/tcp|udp]")
        return cls((proto or "tcp").lower(), int(container), int(host))


@attrs.frozen
class NetworkSpec:
    name: str
    driver: str = "nat"
    subnet: Optional[str] = None
    gateway: Optional[str] = None
    dns: tuple[str, ...] = ()


@attrs.frozen
class NetworkInfo:
    id: str
    name: str
    driver: str
    subnet: Optional[str] = None
    gateway: Optional[str] = None
    dns: tuple[str, ...] = ()
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen
class EndpointSpec:
    name: str
    network: NetworkInfo
    ip: Optional[str] = None
    mac: Optional[str] = None
    port_mappings: tuple[PortMapping, ...] = ()
    dns: tuple[str, ...] = ()


@attrs.frozen
class EndpointInfo:
    id: str
    name: str
    network_id: str
    ip: Optional[str] = None
    prefix_length: Optional[int] = None
    gateway: Optional[str] = None
    mac: Optional[str] = None
    port_mappings: tuple[PortMapping, ...] = ()
    raw: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen
class ContainerNetwork:
    """What a container's document carries for its endpoints, and what to undo at removal."""

    endpoint_ids: tuple[str, ...] = ()
    namespace: Optional[str] = None  # gen3
    devices: tuple[v1.NetworkDevice, ...] = ()  # gen1: NAT device entries

    def apply(self, spec: SystemSpec) -> SystemSpec:
        # gen1 endpoints are this library's records, known to the document only as NAT devices;
        # an EndpointList of them would name endpoints HCS has never seen.
        endpoints = () if self.devices else self.endpoint_ids
        return attrs.evolve(spec, endpoints=endpoints, network_namespace=self.namespace, nat_devices=self.devices)


class NetworkBackend(Protocol):
    generation: int
    creates_networks: bool  # False: only the host's own NAT (TP3)
    reports_ip: bool  # False: an endpoint's address is learnt from the running container (TP3)

    def remember_ip(self, endpoint_id: str, ip: str) -> None:
        """Keep an address a backend that does not report them was told (a no-op elsewhere)."""

    def list_networks(self) -> list[NetworkInfo]: ...

    def create_network(self, spec: NetworkSpec) -> NetworkInfo: ...

    def delete_network(self, network_id: str) -> None: ...

    def list_endpoints(self) -> list[EndpointInfo]: ...

    def get_endpoint(self, endpoint_id: str) -> EndpointInfo: ...

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo: ...

    def delete_endpoint(self, endpoint_id: str) -> None: ...

    def container_network(self, endpoints: Sequence[EndpointInfo]) -> ContainerNetwork: ...

    def release_container_network(self, network: ContainerNetwork) -> None: ...

    def attach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork: ...

    def detach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork: ...


def random_mac() -> str:
    """A Hyper-V (00-15-5D) MAC address, as HNS writes them."""
    return "00-15-5D-" + "-".join(f"{b:02X}" for b in secrets.token_bytes(3))


def check_subnet(subnet: Optional[str], gateway: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """Validate a subnet (``172.30.0.0/24``) and gateway (default: the subnet's first address)."""
    if subnet is None:
        if gateway is not None:
            raise errors.BadInput("a gateway needs a subnet")
        return None, None
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise errors.BadInput(f"subnet {subnet!r}: {exc}") from None
    if net.num_addresses < 4:
        raise errors.BadInput(f"subnet {subnet!r} is too small for containers")
    if gateway is None:
        gateway = str(net.network_address + 1)
    try:
        gw = ipaddress.IPv4Address(gateway)
    except ValueError as exc:
        raise errors.BadInput(f"gateway {gateway!r}: {exc}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise errors.BadInput(f"gateway {gateway} is not a host address of {subnet}")
    return str(net), str(gw)


# -- gen1: the host's NAT, devices in the container document ------------------------------------


class Gen1Networking:
    """TP3: one NAT set up by the host; endpoints are records of this library, and become NAT
    devices (with their port bindings and MAC) in the container document at create."""

    generation = 1
    creates_networks = False
    reports_ip = False

    def __init__(self, files: StateFiles, state_dir: Path) -> None:
        # One file per endpoint and one claim file per host port: creates from several threads
        # or processes never overwrite each other, and a port is claimed atomically (CREATE_NEW).
        self.files = files
        self.dir = Path(state_dir) / "tp3-endpoints"
        self.ports_dir = self.dir / "ports"
        files.makedirs(self.ports_dir)

    def _unsupported(self, what: str) -> errors.NotSupported:
        return errors.NotSupported(
            what, message="API generation 1 (Windows Server 2016 TP3) has no network service: containers use "
                          f"the host's NAT ({TP3_NAT_NAME} on '{TP3_SWITCH}')",
            hint="use the 'nat' network, or a host with Server 2016 or later for other networks")

    def nat(self) -> NetworkInfo:
        return NetworkInfo(id=str(uuid.uuid5(uuid.NAMESPACE_URL, "wincontainers:tp3:" + TP3_NAT_NAME)), name="nat",
                           driver="nat", subnet=TP3_NAT_SUBNET, gateway=None,
                           raw={"Name": TP3_NAT_NAME, "NetworkName": TP3_SWITCH})

    def list_networks(self) -> list[NetworkInfo]:
        return [self.nat()]

    def create_network(self, spec: NetworkSpec) -> NetworkInfo:
        raise self._unsupported("create network")

    def delete_network(self, network_id: str) -> None:
        raise self._unsupported("remove network")

    def _path(self, endpoint_id: str) -> Path:
        return self.dir / f"{uuid.UUID(endpoint_id)}.json"

    def _read(self, path: Path) -> Optional[dict[str, Any]]:
        doc = read_optional_json(self.files, path)
        return doc if isinstance(doc, dict) else None

    def _write(self, doc: dict[str, Any]) -> None:
        self.files.write_json(self._path(doc["id"]), doc)

    def _info(self, doc: dict[str, Any]) -> EndpointInfo:
        return EndpointInfo(id=doc["id"], name=doc["name"], network_id=self.nat().id, ip=doc.get("ip"),
                            mac=doc.get("mac"), port_mappings=tuple(PortMapping(*p) for p in doc.get("ports", [])),
                            raw=doc)

    def list_endpoints(self) -> list[EndpointInfo]:
        docs = (self._read(self.dir / name) for name in self.files.names(self.dir, ".json"))
        return [self._info(d) for d in docs if d is not None]

    def get_endpoint(self, endpoint_id: str) -> EndpointInfo:
        try:
            doc = self._read(self._path(endpoint_id))
        except ValueError:
            doc = None
        if doc is None:
            raise errors.NotFound("get endpoint", subject=f"endpoint {endpoint_id}", message="no such endpoint")
        return self._info(doc)

    def _claim(self, mapping: PortMapping, endpoint_id: str) -> Path:
        claim = self.ports_dir / f"{mapping.protocol}-{mapping.host_port}"
        for _attempt in range(3):
            if self.files.create_new(claim, endpoint_id.encode()):
                return claim
            owner = self._claim_owner(claim)
            holder = self._read(self._path(owner)) if owner else None
            if holder is not None:
                raise errors.AlreadyExists("create endpoint", subject=f"host port {mapping.host_port}/"
                                           f"{mapping.protocol}",
                                           message=f"endpoint {holder.get('name') or owner} maps it already")
            self.files.remove(claim)  # its endpoint is gone (a crash): claim it again
        raise errors.InvalidState("create endpoint", subject=f"host port {mapping.host_port}/{mapping.protocol}",
                                  message="other processes keep claiming this port at the same time")

    def _claim_owner(self, claim: Path) -> str:
        try:
            owner = self.files.read_text(claim).strip()
        except (FileNotFoundError, ValueError):
            return ""
        try:
            return str(uuid.UUID(owner))
        except ValueError:
            return ""

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        if spec.ip is not None:
            raise errors.NotSupported("create endpoint", message="TP3's NAT gives addresses itself (DHCP); "
                                      "a static IP needs Server 2016 or later")
        endpoint_id = str(uuid.uuid4())
        claims: list[Path] = []
        try:
            for mapping in spec.port_mappings:
                claims.append(self._claim(mapping, endpoint_id))
            doc = {"id": endpoint_id, "name": spec.name, "mac": spec.mac or random_mac(),
                   "ports": [[m.protocol, m.container_port, m.host_port] for m in spec.port_mappings]}
            self._write(doc)
        except BaseException:
            for claim in claims:
                self.files.remove(claim)
            raise
        return self._info(doc)

    def delete_endpoint(self, endpoint_id: str) -> None:
        info = self.get_endpoint(endpoint_id)
        for mapping in info.port_mappings:
            claim = self.ports_dir / f"{mapping.protocol}-{mapping.host_port}"
            if self._claim_owner(claim) == info.id:
                self.files.remove(claim)
        self.files.remove(self._path(info.id))

    def remember_ip(self, endpoint_id: str, ip: str) -> None:
        """TP3 reports no addresses; what the running container said is kept for ``inspect``."""
        doc = self._read(self._path(endpoint_id))
        if doc is not None:
            self._write({**doc, "ip": ip})

    def container_network(self, endpoints: Sequence[EndpointInfo]) -> ContainerNetwork:
        if len(endpoints) > 1:
            raise errors.NotSupported("create", message="a TP3 container has one NAT device")
        devices = [
            v1.NetworkDevice(
                device_type="Network",
                connection=v1.NetworkConnection(
                    network_name=TP3_SWITCH, enable_nat=False,  # Docker's TP3 comment: "Needs HCS fix"
                    nat=v1.NatSettings(name=TP3_NAT_NAME, port_bindings=[
                        v1.NatPortBinding(protocol=m.protocol.upper(), internal_port=m.container_port,
                                          external_port=m.host_port) for m in endpoint.port_mappings]),
                ),
                settings=v1.NetworkDeviceSettings(mac_address=endpoint.mac),
            )
            for endpoint in endpoints
        ]
        return ContainerNetwork(endpoint_ids=tuple(e.id for e in endpoints), devices=tuple(devices))

    def release_container_network(self, network: ContainerNetwork) -> None:
        pass

    def attach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork:
        raise errors.NotSupported("attach", message="TP3 cannot add a network to a created container",
                                  hint="give the network when creating the container")

    def detach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork:
        raise errors.NotSupported("detach", message="TP3 cannot remove a network from a container")
