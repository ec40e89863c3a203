"""HNS v1 documents (``HNSCall``, gen2): networks, endpoints, policies, the response envelope,
and the attach/modify requests (hcs-api.md 7.2, 6.4)."""

from __future__ import annotations

from typing import Any, Optional

import attrs

from wincontainers.schema._document import Document, json_field

__all__ = ["Subnet", "Network", "NatPolicy", "Endpoint", "Response", "ModifySystemNetworkRequest",
           "ENDPOINT_STATES"]

#: HNS endpoint ``State`` values
ENDPOINT_STATES = {1: "created", 2: "attached", 3: "attached-sharing", 4: "detached", 5: "degraded",
                   6: "destroyed"}


@attrs.define
class Subnet(Document):
    address_prefix: Optional[str] = json_field()
    gateway_address: Optional[str] = json_field()
    policies: Optional[list[dict[str, Any]]] = json_field()


@attrs.define
class Network(Document):
    id: Optional[str] = json_field("ID")
    name: Optional[str] = json_field()
    type: Optional[str] = json_field()
    network_adapter_name: Optional[str] = json_field()
    subnets: Optional[list[Subnet]] = json_field()
    dns_suffix: Optional[str] = json_field("DNSSuffix")
    dns_server_list: Optional[str] = json_field("DNSServerList")
    policies: Optional[list[dict[str, Any]]] = json_field()


@attrs.define
class NatPolicy(Document):
    """A port mapping: ``{"Type": "NAT", "Protocol": "TCP", "InternalPort": 80, "ExternalPort": 8080}``."""

    type: Optional[str] = json_field(default="NAT")
    protocol: Optional[str] = json_field()
    internal_port: Optional[int] = json_field()
    external_port: Optional[int] = json_field()


@attrs.define
class Endpoint(Document):
    id: Optional[str] = json_field("ID")
    name: Optional[str] = json_field()
    virtual_network: Optional[str] = json_field()
    virtual_network_name: Optional[str] = json_field()
    mac_address: Optional[str] = json_field()
    ip_address: Optional[str] = json_field("IPAddress")
    prefix_length: Optional[int] = json_field()
    gateway_address: Optional[str] = json_field()
    dns_suffix: Optional[str] = json_field("DNSSuffix")
    dns_server_list: Optional[str] = json_field("DNSServerList")
    state: Optional[int] = json_field()
    shared_containers: Optional[list[str]] = json_field()
    policies: Optional[list[dict[str, Any]]] = json_field()


@attrs.define
class Response(Document):
    """``{"Success": bool, "Error": "text", "Output": ...}``: the outcome of an HNSCall."""

    success: Optional[bool] = json_field()
    error: Optional[str] = json_field()
    output: Any = json_field()


@attrs.define
class ModifySystemNetworkRequest(Document):
    """Hot add/remove of an endpoint through HcsModifyComputeSystem (schema v1, 2017+)."""

    resource_type: Optional[str] = json_field(default="Network")
    request_type: Optional[str] = json_field()
    settings: Optional[str] = json_field()
