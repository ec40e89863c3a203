"""HCN v2 documents (``computenetwork.dll``, gen3): networks, endpoints, namespaces, queries
(hcs-api.md 7.3)."""

from __future__ import annotations

from typing import Any, Optional

import attrs

from wincontainers.schema._document import Document, json_field
from wincontainers.schema.v2 import Version

__all__ = ["Route", "Subnet", "Ipam", "Dns", "Policy", "PortMappingSettings", "IpConfig", "HostComputeNetwork",
           "HostComputeEndpoint", "HostComputeNamespace", "NamespaceResource", "ModifyNamespaceRequest", "Query",
           "SCHEMA_2_0", "PROTOCOLS", "NETWORK_TYPES"]

#: HCN port mapping protocols (IANA numbers)
PROTOCOLS = {"tcp": 6, "udp": 17}
#: our driver names -> HCN network types
NETWORK_TYPES = {"nat": "NAT", "transparent": "Transparent", "l2bridge": "L2Bridge", "l2tunnel": "L2Tunnel",
                 "ics": "ICS", "private": "Private", "overlay": "Overlay"}


def SCHEMA_2_0() -> Version:  # noqa: N802 - reads like the constant it is
    return Version(major=2, minor=0)


@attrs.define
class Route(Document):
    next_hop: Optional[str] = json_field()
    destination_prefix: Optional[str] = json_field()
    metric: Optional[int] = json_field()


@attrs.define
class Subnet(Document):
    ip_address_prefix: Optional[str] = json_field("IpAddressPrefix")
    routes: Optional[list[Route]] = json_field()
    policies: Optional[list[dict[str, Any]]] = json_field()
    flags: Optional[int] = json_field()


@attrs.define
class Ipam(Document):
    type: Optional[str] = json_field()
    subnets: Optional[list[Subnet]] = json_field()


@attrs.define
class Dns(Document):
    domain: Optional[str] = json_field()
    search: Optional[list[str]] = json_field()
    server_list: Optional[list[str]] = json_field()
    options: Optional[list[str]] = json_field()


@attrs.define
class Policy(Document):
    type: Optional[str] = json_field()
    settings: Optional[dict[str, Any]] = json_field()


@attrs.define
class PortMappingSettings(Document):
    protocol: Optional[int] = json_field()
    internal_port: Optional[int] = json_field()
    external_port: Optional[int] = json_field()
    vip: Optional[str] = json_field("VIP")
    flags: Optional[int] = json_field()


@attrs.define
class IpConfig(Document):
    ip_address: Optional[str] = json_field("IpAddress")
    prefix_length: Optional[int] = json_field()


@attrs.define
class HostComputeNetwork(Document):
    id: Optional[str] = json_field("ID")
    name: Optional[str] = json_field()
    type: Optional[str] = json_field()
    policies: Optional[list[Policy]] = json_field()
    mac_pool: Optional[dict[str, Any]] = json_field()
    dns: Optional[Dns] = json_field("Dns")
    ipams: Optional[list[Ipam]] = json_field()
    flags: Optional[int] = json_field()
    schema_version: Optional[Version] = json_field()


@attrs.define
class HostComputeEndpoint(Document):
    id: Optional[str] = json_field("ID")
    name: Optional[str] = json_field()
    host_compute_network: Optional[str] = json_field()
    host_compute_namespace: Optional[str] = json_field()
    policies: Optional[list[Policy]] = json_field()
    ip_configurations: Optional[list[IpConfig]] = json_field("IpConfigurations")
    dns: Optional[Dns] = json_field("Dns")
    routes: Optional[list[Route]] = json_field()
    mac_address: Optional[str] = json_field()
    flags: Optional[int] = json_field()
    schema_version: Optional[Version] = json_field()


@attrs.define
class NamespaceResource(Document):
    type: Optional[str] = json_field()
    data: Optional[dict[str, Any]] = json_field()


@attrs.define
class HostComputeNamespace(Document):
    id: Optional[str] = json_field("ID")
    type: Optional[str] = json_field()
    resources: Optional[list[NamespaceResource]] = json_field()
    schema_version: Optional[Version] = json_field()


@attrs.define
class ModifyNamespaceRequest(Document):
    """``{"ResourceType": "Endpoint", "RequestType": "Add", "Settings": {"ID": "<endpoint guid>"}}``."""

    resource_type: Optional[str] = json_field(default="Endpoint")
    request_type: Optional[str] = json_field()
    settings: Optional[dict[str, Any]] = json_field()


@attrs.define
class Query(Document):
    """Enumerate/Query document: ``{"SchemaVersion": {...}, "Flags": 0|1, "Filter": "<json>"}``."""

    schema_version: Optional[Version] = json_field()
    flags: Optional[int] = json_field()
    filter: Optional[str] = json_field()
