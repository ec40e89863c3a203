"""Networks and endpoints of a host (``host.networks``), one API over the three generations.

- ``host.networks.create("web", driver="nat", subnet="172.30.0.0/24")`` makes a network (HNS or
  HCN; TP3 has only the host's NAT and says so with ``NotSupported``); ``list()``, ``get()``,
  ``remove()`` (refused while endpoints remain, naming them, unless ``force``).
- ``network.create_endpoint(ip=None, mac=None, port_mappings=[PortMapping("tcp", 80, 8080)])``.
- ``host.containers.create(..., network=net_or_endpoint, ports={"80/tcp": 8080})`` attaches at
  creation (see :func:`plan_container_network`); removing the container removes the endpoints it
  created. Every endpoint wincontainers makes is recorded (owner tag) under
  ``<state>/endpoints``, so :meth:`NetworkCollection.prune` can remove those that belong to no
  container any more (after a crash, at start-up).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import ipaddress
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import attrs

from wincontainers import errors
from wincontainers.display import RichDisplay, Shown, Value, short_id
from wincontainers.rollback import Rollback
from wincontainers.driver import open_networking
from wincontainers.driver.networking import (
    DRIVERS,
    ContainerNetwork,
    EndpointInfo,
    EndpointSpec,
    NetworkInfo,
    NetworkSpec,
    PortMapping,
    check_subnet,
)
from wincontainers.statefiles import read_optional_json

if TYPE_CHECKING:
    from wincontainers._native.library import Binding
    from wincontainers.driver.base import SystemRef
    from wincontainers.records import RecordStore
    from wincontainers.statefiles import StateFiles

log = logging.getLogger("wincontainers.net")

__all__ = ["Network", "Endpoint", "NetworkCollection", "PortMapping", "parse_ports",
           "NetworkPlan", "NetworkLike", "AttachLike", "PortsLike", "DRIVERS", "ipconfig_address"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


@attrs.define(eq=False)
class _NetworkObject(RichDisplay):
    """What networks and endpoints share: identity by ID (HNS/HCN compare GUIDs case-blind)."""

    collection: "NetworkCollection" = attrs.field(repr=False)
    info: Union[NetworkInfo, EndpointInfo]

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NetworkObject) and type(other) is type(self) and other.id.lower() == self.id.lower()

    def __hash__(self) -> int:
        return hash(self.id.lower())


@attrs.define(eq=False)
class Endpoint(_NetworkObject):
    """One endpoint: an address (and MAC, port mappings) on a network."""

    info: EndpointInfo

    @property
    def ip(self) -> Optional[str]:
        return self.info.ip

    @property
    def mac(self) -> Optional[str]:
        return self.info.mac

    @property
    def port_mappings(self) -> tuple[PortMapping, ...]:
        return self.info.port_mappings

    @property
    def network_id(self) -> str:
        return self.info.network_id

    @property
    def container(self) -> Optional[str]:
        """The container that owns it (wincontainers' own record), if any."""
        return self.collection._owner(self.id)

    def remove(self) -> None:
        self.collection.remove_endpoint(self)

    def row(self) -> tuple[Value, ...]:
        """The row a table of endpoints shows."""
        return (short_id(self.id), self.name, self.ip, self.mac, _ports(self.port_mappings))

    def _shown_(self) -> Shown:
        owner = self.container
        return Shown("Endpoint", self.name, fields=(
            ("ID", short_id(self.id)), ("IP", self.ip), ("MAC", self.mac), ("network", short_id(self.network_id)),
            ("container", short_id(owner) if owner else None), ("ports", _ports(self.port_mappings) or None)))


def _ports(mappings: Iterable[PortMapping]) -> str:
    return ", ".join(f"{m.host_port}->{m.container_port}/{m.protocol}" for m in mappings)


NETWORK_COLUMNS = ("ID", "Name", "Driver", "Subnet", "Gateway")
ENDPOINT_COLUMNS = ("ID", "Name", "IP", "MAC", "Ports")


@attrs.define(eq=False)
class Network(_NetworkObject):
    """A network: its driver (``nat``, ``transparent``...), subnet and gateway."""

    info: NetworkInfo

    @property
    def driver(self) -> str:
        return self.info.driver

    @property
    def subnet(self) -> Optional[str]:
        return self.info.subnet

    @property
    def gateway(self) -> Optional[str]:
        return self.info.gateway

    def endpoints(self) -> builtins.list[Endpoint]:
        return [e for e in self.collection.endpoints() if e.network_id.lower() == self.id.lower()]

    def row(self) -> tuple[Value, ...]:
        """The row a table of networks shows."""
        return (short_id(self.id), self.name, self.driver, self.subnet, self.gateway)

    def _shown_(self) -> Shown:
        return Shown.table("Network", ENDPOINT_COLUMNS, (e.row() for e in self.endpoints()), title=self.name,
                           fields=(("ID", short_id(self.id)), ("driver", self.driver), ("subnet", self.subnet),
                                   ("gateway", self.gateway)), empty="no endpoint")

    def create_endpoint(self, *, ip: Optional[str] = None, mac: Optional[str] = None,
                        port_mappings: Iterable[PortMapping] = (), dns: Sequence[str] = (),
                        name: Optional[str] = None) -> Endpoint:
        return self.collection.create_endpoint(self, ip=ip, mac=mac, port_mappings=port_mappings, dns=dns,
                                               name=name)

    def remove(self, *, force: bool = False) -> None:
        self.collection.remove(self, force=force)


NetworkLike = Union[Network, str]
#: what a container is attached with: a network (or its name or ID) or an endpoint made for it
AttachLike = Union[Network, Endpoint, str]
#: published ports: ``{"80/tcp": 8080}`` (Docker's mapping), ``["8080:80"]`` or PortMappings
PortsLike = Union[None, Mapping[str, Any], Iterable[Union[PortMapping, str]]]


def parse_ports(ports: PortsLike) -> builtins.list[PortMapping]:
    """``{"80/tcp": 8080}`` (docker-py style), ``["8080:80/tcp"]`` (``-p``) or PortMappings."""
    if ports is None:
        return []
    out: builtins.list[PortMapping] = []
    if isinstance(ports, Mapping):
        for container_port, host_port in ports.items():
            number, _, proto = str(container_port).partition("/")
            if not number.isdigit():
                raise errors.BadInput(f"ports: {container_port!r} is not PORT[/tcp|udp]")
            if isinstance(host_port, (list, tuple)):
                raise errors.BadInput("ports: one host port per container port")
            try:
                host = int(host_port)
            except (TypeError, ValueError):
                raise errors.BadInput(f"ports: host port {host_port!r} is not a number") from None
            out.append(PortMapping((proto or "tcp").lower(), int(number), host))
        return out
    for item in ports:
        out.append(item if isinstance(item, PortMapping) else PortMapping.parse(str(item)))
    return out


def _check_dns(servers: Sequence[str]) -> None:
    if isinstance(servers, str):
        raise errors.BadInput(f"dns: a list of addresses, not the string {servers!r}")
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise errors.BadInput(f"dns server {server!r} is not an IP address") from None


@attrs.frozen
class NetworkPlan:
    """The endpoints a new container gets (``created``: made for it, removed with it)."""

    endpoints: tuple[EndpointInfo, ...] = ()
    created: tuple[str, ...] = ()
    network: ContainerNetwork = ContainerNetwork()

    def to_record(self) -> dict[str, Any]:
        return {"endpoints": [e.id for e in self.endpoints], "created": list(self.created),
                "namespace": self.network.namespace}


class NetworkCollection(RichDisplay):
    """``host.networks``."""

    def __init__(self, binding: "Binding", state_dir: Path, files: "StateFiles", records: "RecordStore") -> None:
        self.backend = open_networking(binding, state_dir)
        self.files = files
        self.records = records
        self.records_dir = state_dir / "endpoints"
        self.files.makedirs(self.records_dir)

    # -- networks ------------------------------------------------------------------------------

    def _shown_(self) -> Shown:
        return Shown.table("Networks", NETWORK_COLUMNS, (n.row() for n in self.list()), empty="no network")

    def list(self) -> builtins.list[Network]:
        return [Network(self, info) for info in self.backend.list_networks()]

    def get(self, ref: NetworkLike) -> Network:
        """By name (``nat``), ID or unique ID prefix."""
        if isinstance(ref, Network):
            return ref
        networks = self.list()
        for network in networks:
            if network.name == ref or network.id.lower() == ref.lower():
                return network
        plain = ref.lower().replace("-", "")
        matches = [n for n in networks
                   if n.name.lower() == ref.lower() or (plain and n.id.lower().replace("-", "").startswith(plain))]
        if len(matches) == 1:
            return matches[0]
        raise errors.NotFound("network", subject=f"network {ref!r}",
                              message="no such network" if not matches else f"{len(matches)} networks match",
                              hint="`wincontainers network ls` lists them")

    def default(self) -> Network:
        """The host's NAT network (Docker's ``nat``)."""
        nats = [n for n in self.list() if n.driver == "nat"]
        named = [n for n in nats if n.name.lower() == "nat"]
        if named or nats:
            return (named or nats)[0]
        raise errors.NotFound("network", subject="network 'nat'", message="the host has no NAT network",
                              hint="create one: wincontainers network create --driver nat nat")

    def create(self, name: str, driver: str = "nat", *, subnet: Optional[str] = None, gateway: Optional[str] = None,
               dns: Sequence[str] = ()) -> Network:
        """Create a network (``docker network create``). ``subnet`` like ``172.30.0.0/24``;
        ``gateway`` defaults to its first address. Refused before anything is sent: a bad name,
        driver, subnet or DNS address (BadInput), a name in use or a subnet overlapping another
        network's (AlreadyExists); TP3 cannot create networks at all (NotSupported)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise errors.BadInput(f"network name {name!r}: 1-64 characters from [A-Za-z0-9_.-]")
        if driver not in DRIVERS:
            raise errors.BadInput(f"network driver {driver!r}: one of {', '.join(DRIVERS)}")
        _check_dns(dns)
        if not self.backend.creates_networks:
            with errors.during(f"creating network {name}"):  # says which generation cannot, and what to use
                self.backend.create_network(NetworkSpec(name=name, driver=driver, subnet=subnet, gateway=gateway))
        existing = self.list()
        if any(n.name.lower() == name.lower() for n in existing):
            raise errors.AlreadyExists("network create", subject=f"network {name!r}",
                                       message="a network with this name exists")
        subnet, gateway = check_subnet(subnet, gateway)
        if subnet is not None:
            wanted = ipaddress.IPv4Network(subnet)
            for other in existing:
                if other.subnet and wanted.overlaps(ipaddress.IPv4Network(other.subnet, strict=False)):
                    raise errors.AlreadyExists("network create", subject=f"network {name!r}",
                                               message=f"subnet {subnet} overlaps {other.subnet} of network "
                                                       f"{other.name}", hint="choose another subnet")
        spec = NetworkSpec(name=name, driver=driver, subnet=subnet, gateway=gateway, dns=tuple(dns))
        with errors.during(f"creating network {name}"):
            return Network(self, self.backend.create_network(spec))

    def remove(self, ref: NetworkLike, *, force: bool = False) -> None:
        """Refused while the network has endpoints (named, with their containers) unless
        ``force``, which removes them first; HNS/HCN still refuse to remove an endpoint of a
        running container, so stop those containers first."""
        network = self.get(ref)
        endpoints = network.endpoints()
        if endpoints and not force:
            names = sorted(self._describe(e) for e in endpoints)
            raise errors.InvalidState("network rm", subject=f"network {network.name}",
                                      message=f"it has endpoints: {', '.join(names)}",
                                      hint="remove the containers that use it, or force=True (--force)")
        with errors.during(f"removing network {network.name}"):
            for endpoint in endpoints:
                self.remove_endpoint(endpoint)
            self.backend.delete_network(network.id)

    def _describe(self, endpoint: Endpoint) -> str:
        owner = endpoint.container
        label = endpoint.name or endpoint.id
        if owner is None:
            return label
        try:
            return f"{label} (container {self.records.load(owner).name})"
        except errors.NotFound:
            return f"{label} (container {owner[:12]}, removed)"

    # -- endpoints -----------------------------------------------------------------------------

    def endpoints(self) -> builtins.list[Endpoint]:
        return [Endpoint(self, info) for info in self.backend.list_endpoints()]

    def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return Endpoint(self, self.backend.get_endpoint(endpoint_id))

    def create_endpoint(self, network: NetworkLike, *, ip: Optional[str] = None, mac: Optional[str] = None,
                        port_mappings: Iterable[PortMapping] = (), dns: Sequence[str] = (),
                        name: Optional[str] = None, container: Optional[str] = None) -> Endpoint:
        found = self.get(network)
        _check_dns(dns)
        if ip is not None:
            try:
                address = ipaddress.IPv4Address(ip)
            except ValueError as exc:
                raise errors.BadInput(f"ip {ip!r}: {exc}") from None
            if found.subnet and address not in ipaddress.IPv4Network(found.subnet, strict=False):
                raise errors.BadInput(f"ip {ip} is outside the subnet {found.subnet} of network {found.name}")
        mappings = tuple(port_mappings)
        seen: set[tuple[str, int]] = set()
        for mapping in mappings:
            key = (mapping.protocol, mapping.host_port)
            if key in seen:
                raise errors.BadInput(f"host port {mapping.host_port}/{mapping.protocol} is mapped twice")
            seen.add(key)
        spec = EndpointSpec(name=name or f"wc-{os.urandom(4).hex()}-eth0", network=found.info, ip=ip, mac=mac,
                            port_mappings=mappings, dns=tuple(dns))
        with errors.during(f"creating an endpoint on network {found.name}"):
            info = self.backend.create_endpoint(spec)
        try:
            self._record(info, container)
        except BaseException:
            with contextlib.suppress(errors.HcsError):
                self.backend.delete_endpoint(info.id)
            raise
        return Endpoint(self, info)

    def remove_endpoint(self, endpoint: Union[Endpoint, str]) -> None:
        endpoint_id = endpoint.id if isinstance(endpoint, Endpoint) else endpoint
        with errors.during(f"removing endpoint {endpoint_id}"):
            try:
                self.backend.delete_endpoint(endpoint_id)
            except errors.NotFound:
                pass
        path = self._record_path(endpoint_id)
        if path is not None:
            self.files.remove(path)

    # -- owner tags ----------------------------------------------------------------------------

    def _record_path(self, endpoint_id: str) -> Optional[Path]:
        """Where the owner tag of ``endpoint_id`` lives; ``None`` for an ID that is no GUID
        (and so can have none, and must not become a path)."""
        try:
            return self.records_dir / f"{uuid.UUID(endpoint_id)}.json"
        except (ValueError, TypeError, AttributeError):
            return None

    def _record(self, info: EndpointInfo, container: Optional[str]) -> None:
        path = self._record_path(info.id)
        if path is None:
            raise errors.BadInput(f"endpoint ID {info.id!r} is not a GUID")
        self.files.write_json(path, {"id": info.id, "name": info.name, "network": info.network_id,
                                     "container": container, "tagged": time.time()})

    def _owner(self, endpoint_id: str) -> Optional[str]:
        path = self._record_path(endpoint_id)
        doc = read_optional_json(self.files, path) if path is not None else None
        owner = doc.get("container") if isinstance(doc, dict) else None
        return str(owner) if owner else None

    def prune(self, *, grace: float = 60.0) -> builtins.list[str]:
        """Remove the endpoints wincontainers made for containers that no longer exist (left by
        a crash); returns their IDs. Endpoints made by other tools, or by
        :meth:`create_endpoint` for no container, are never touched.

        Endpoints tagged less than ``grace`` seconds ago are kept: a ``create`` in another
        process makes the endpoint just before it writes the container's record.
        """
        removed = []
        existing = {e.id.lower() for e in self.endpoints()}
        now = time.time()
        for name in self.files.names(self.records_dir, ".json"):
            path = self.records_dir / name
            try:
                doc = self.files.read_json(path)
            except FileNotFoundError:
                continue
            except (ValueError, errors.HcsError):
                doc = None
            if not isinstance(doc, dict):  # damaged: nothing in it can be trusted
                self.files.remove(path)
                continue
            owner = doc.get("container")
            endpoint_id = str(doc.get("id") or path.stem)
            tagged = doc.get("tagged")
            age = now - tagged if isinstance(tagged, (int, float)) else float("inf")
            if not owner:  # made with network.create_endpoint(): the user's to remove
                if endpoint_id.lower() not in existing:
                    self.files.remove(path)
                continue
            if self.records.exists(owner) or age < grace:
                continue
            if endpoint_id.lower() in existing:
                with contextlib.suppress(errors.NotFound):
                    self.backend.delete_endpoint(endpoint_id)
                log.info("pruned endpoint %s of container %s, which no longer exists", endpoint_id, str(owner)[:12])
            self.files.remove(path)
            removed.append(endpoint_id)
        return removed


# -- containers ------------------------------------------------------------------------------------

    # -- containers' endpoints (the container record's ``network``: endpoints, created, namespace) ---

    def plan(self, container_name: str, container_id: str, network: Optional[AttachLike],
             ports: PortsLike) -> NetworkPlan:
        """Make (or take) a new container's endpoint and the per-container network object (a
        gen3 namespace); undone entirely when a step fails."""
        mappings = parse_ports(ports)
        if network is None and not mappings:
            return NetworkPlan()
        created: builtins.list[str] = []
        try:
            if isinstance(network, Endpoint):
                if mappings:
                    raise errors.BadInput("ports go with a network, not with an existing endpoint "
                                          "(give them when creating the endpoint)")
                endpoint = network.info
            else:
                target = self.get(network) if network is not None else self.default()
                made = self.create_endpoint(target, port_mappings=mappings, name=f"{container_name}-eth0",
                                            container=container_id)
                created.append(made.id)
                endpoint = made.info
            with errors.during(f"attaching container {container_name} to its network"):
                container_network = self.backend.container_network([endpoint])
            return NetworkPlan((endpoint,), tuple(created), container_network)
        except BaseException as exc:
            undo = Rollback(f"planning the network of container {container_name}", log)
            for endpoint_id in created:
                undo.add(f"endpoint {endpoint_id}", functools.partial(self.remove_endpoint, endpoint_id))
            undo.undo(exc)
            raise

    def release(self, state: Mapping[str, Any]) -> None:
        """Undo what :meth:`plan` (and :meth:`connect`) made, from a container record's ``network``."""
        if not state:
            return
        network = ContainerNetwork(endpoint_ids=tuple(state.get("endpoints") or ()), namespace=state.get("namespace"))
        failures: builtins.list[errors.HcsError] = []
        try:
            self.backend.release_container_network(network)
        except errors.NotFound:
            pass
        except errors.HcsError as exc:
            failures.append(exc)
        for endpoint_id in state.get("created") or ():
            try:
                self.remove_endpoint(endpoint_id)
            except errors.HcsError as exc:
                failures.append(exc)
        if failures:  # every step was tried; the first failure says which call (removal can be repeated)
            raise failures[0]

    def rejoin(self, state: Mapping[str, Any]) -> ContainerNetwork:
        """The network a new compute system of a container with this ``network`` state gets (a
        restart): its endpoints, and its gen3 namespace."""
        ids = tuple(state.get("endpoints") or ())
        if state.get("namespace"):
            return ContainerNetwork(endpoint_ids=ids, namespace=state["namespace"])
        return self.backend.container_network([self.backend.get_endpoint(i) for i in ids])

    def connect(self, system: SystemRef, state: Mapping[str, Any], network: AttachLike, *, ports: PortsLike,
                container_name: str, container_id: str) -> tuple[str, dict[str, Any]]:
        """Attach a running container's compute system to another network (HNS/HCN hosts):
        (the endpoint's ID, the container's new ``network`` state). An endpoint made here is
        removed again when the attach fails."""
        record = dict(state)
        current = self.rejoin(record) if record else ContainerNetwork()
        if isinstance(network, Endpoint):
            endpoint, created = network, None
        else:
            endpoint = self.create_endpoint(network, port_mappings=parse_ports(ports),
                                            name=f"{container_name}-eth{len(record.get('endpoints') or [])}",
                                            container=container_id)
            created = endpoint.id
        try:
            with errors.during(f"attaching container {container_name} to network {endpoint.network_id}"):
                updated = self.backend.attach(system, current, endpoint.info)
        except BaseException:
            if created:
                self.remove_endpoint(created)
            raise
        record["endpoints"] = list(updated.endpoint_ids)
        record["namespace"] = updated.namespace
        record["created"] = list(record.get("created") or []) + ([created] if created else [])
        return endpoint.id, record

    def disconnect(self, system: SystemRef, state: Mapping[str, Any], network: AttachLike, *,
                   container_name: str) -> dict[str, Any]:
        """Detach a running container from a network (a Network, its name or ID, an Endpoint or
        endpoint ID); an endpoint made for the container is removed. The new ``network`` state."""
        record = dict(state)
        attached = list(record.get("endpoints") or [])
        if isinstance(network, Endpoint):
            endpoint_id = network.id
        elif isinstance(network, str) and network in attached:
            endpoint_id = network
        else:
            target = self.get(network)
            on_it = [e for e in attached if self._network_of(e) == target.id.lower()]
            if not on_it:
                raise errors.BadInput(f"container {container_name} is not attached to network {target.name}")
            endpoint_id = on_it[0]
        if endpoint_id not in attached:
            raise errors.BadInput(f"endpoint {endpoint_id} is not attached to container {container_name}")
        current = self.rejoin(record)
        info = self.backend.get_endpoint(endpoint_id)
        with errors.during(f"detaching container {container_name} from endpoint {endpoint_id}"):
            updated = self.backend.detach(system, current, info)
        record["endpoints"] = list(updated.endpoint_ids)
        if endpoint_id in (record.get("created") or []):
            self.remove_endpoint(endpoint_id)
            record["created"] = [e for e in record["created"] if e != endpoint_id]
        return record

    def _network_of(self, endpoint_id: str) -> Optional[str]:
        try:
            return self.backend.get_endpoint(endpoint_id).network_id.lower()
        except errors.NotFound:
            return None

    def settings(self, state: Mapping[str, Any],
                 ask_ip: Optional[Callable[[], Optional[str]]] = None) -> builtins.list[dict[str, Any]]:
        """A container's network settings as ``inspect`` shows them. Where the backend reports no
        addresses (TP3), ``ask_ip`` (the container's ``ipconfig``, when it runs) is asked once
        and its answer remembered."""
        out = []
        networks = {n.id.lower(): n.name for n in self.list()}
        for endpoint_id in state.get("endpoints") or ():
            try:
                info = self.backend.get_endpoint(endpoint_id)
            except errors.NotFound:
                continue
            out.append({"NetworkID": info.network_id, "Network": networks.get(info.network_id.lower(), ""),
                        "EndpointID": info.id, "IPAddress": info.ip, "IPPrefixLen": info.prefix_length,
                        "Gateway": info.gateway, "MacAddress": info.mac,
                        "Ports": {f"{m.container_port}/{m.protocol}": m.host_port for m in info.port_mappings}})
        if out and not out[0]["IPAddress"] and not self.backend.reports_ip and ask_ip is not None:
            address = ask_ip()
            if address:
                self.backend.remember_ip(str(out[0]["EndpointID"]), address)
                out[0]["IPAddress"] = address
        return out


def ipconfig_address(text: str) -> Optional[str]:
    """The first IPv4 address in ``ipconfig``'s output (how a TP3 container's address is learnt)."""
    for line in text.splitlines():
        label, _, value = line.partition(":")
        if label.strip().startswith("IPv4 Address") and value.strip():
            return str(value).strip().split("(")[0].strip()
    return None
