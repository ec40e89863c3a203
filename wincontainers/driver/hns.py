"""gen2 networking: HNS v1 through ``HNSCall(method, path, request, &response)``.

The HRESULT only reports the transport; the outcome is the response envelope
``{"Success", "Error", "Output"}``. A failed request becomes a typed error named ``HNSCall``
with the method and path, classified from HNS's message.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from wincontainers import errors
from wincontainers._native.library import NativeDll
from wincontainers.driver.base import SystemRef
from wincontainers.driver.common import check
from wincontainers.driver.networking import (
    ContainerNetwork,
    EndpointInfo,
    EndpointSpec,
    NetworkInfo,
    NetworkSpec,
    PortMapping,
    check_subnet,
)
from wincontainers.schema import hns

__all__ = ["HnsNetworking", "classify_hns_error"]

_CLASSES: tuple[tuple[tuple[str, ...], type[errors.HcsError]], ...] = (
    (("not found", "does not exist", "no such"), errors.NotFound),
    (("already exists", "already in use", "already mapped", "is in use", "overlap", "duplicate"),
     errors.AlreadyExists),
    (("has endpoints", "still attached", "in use by"), errors.InvalidState),
    (("invalid", "outside", "not a valid", "malformed", "requires"), errors.InvalidArgument),
)


def classify_hns_error(message: str) -> type[errors.HcsError]:
    lower = message.lower()
    for phrases, cls in _CLASSES:
        if any(p in lower for p in phrases):
            return cls
    return errors.HcsError


def _endpoint_info(doc: dict[str, Any]) -> EndpointInfo:
    model = hns.Endpoint.from_json(doc)
    ports = []
    for policy in model.policies or []:
        if str(policy.get("Type", "")).upper() == "NAT":
            nat = hns.NatPolicy.from_json(policy)
            if nat.internal_port and nat.external_port:
                ports.append(PortMapping((nat.protocol or "tcp").lower(), int(nat.internal_port),
                                         int(nat.external_port)))
    return EndpointInfo(id=str(model.id), name=model.name or "", network_id=str(model.virtual_network or ""),
                        ip=model.ip_address, prefix_length=model.prefix_length, gateway=model.gateway_address,
                        mac=model.mac_address, port_mappings=tuple(ports), raw=doc)


def _network_info(doc: dict[str, Any]) -> NetworkInfo:
    model = hns.Network.from_json(doc)
    subnet = model.subnets[0] if model.subnets else None
    dns = tuple(d for d in (model.dns_server_list or "").split(",") if d)
    return NetworkInfo(id=str(model.id), name=model.name or "", driver=(model.type or "").lower(),
                       subnet=subnet.address_prefix if subnet else None,
                       gateway=subnet.gateway_address if subnet else None, dns=dns, raw=doc)


class HnsNetworking:
    generation = 2
    creates_networks = True
    reports_ip = True

    def remember_ip(self, endpoint_id: str, ip: str) -> None:
        """HNS reports endpoint addresses itself: nothing to keep."""

    def __init__(self, vm: NativeDll) -> None:
        self.vm = vm

    def call(self, method: str, path: str, request: Optional[hns.Network | hns.Endpoint | dict[str, Any]] = None
             ) -> Any:
        """One HNSCall; the envelope's Output, or the typed error."""
        body = "" if request is None else json.dumps(
            request.to_json() if hasattr(request, "to_json") else request, separators=(",", ":"))
        hr, response = self.vm.call("HNSCall", method, path, body)
        check("HNSCall", hr, subject=f"HNS {method} {path}")
        try:
            envelope = hns.Response.from_json(json.loads(response or "{}"))
        except (ValueError, TypeError):
            raise errors.HcsError("HNSCall", subject=f"HNS {method} {path}",
                                  message=f"HNS answered something that is not JSON: {response!r}") from None
        if not envelope.success:
            message = envelope.error or "HNS reported a failure without a message"
            raise classify_hns_error(message)("HNSCall", subject=f"HNS {method} {path}", message=message)
        return envelope.output

    # -- networks ------------------------------------------------------------------------------

    def list_networks(self) -> list[NetworkInfo]:
        return [_network_info(d) for d in self.call("GET", "/networks/") or []]

    def create_network(self, spec: NetworkSpec) -> NetworkInfo:
        subnet, gateway = check_subnet(spec.subnet, spec.gateway)
        document = hns.Network(
            name=spec.name, type=spec.driver,
            subnets=[hns.Subnet(address_prefix=subnet, gateway_address=gateway)] if subnet else None,
            dns_server_list=",".join(spec.dns) or None,
        )
        return _network_info(self.call("POST", "/networks/", document))

    def delete_network(self, network_id: str) -> None:
        self.call("DELETE", f"/networks/{network_id}")

    # -- endpoints -----------------------------------------------------------------------------

    def list_endpoints(self) -> list[EndpointInfo]:
        return [_endpoint_info(d) for d in self.call("GET", "/endpoints/") or []]

    def get_endpoint(self, endpoint_id: str) -> EndpointInfo:
        return _endpoint_info(self.call("GET", f"/endpoints/{endpoint_id}"))

    def endpoint_document(self, spec: EndpointSpec) -> hns.Endpoint:
        """The POST /endpoints/ body (hcs-api.md 7.2)."""
        return hns.Endpoint(
            name=spec.name, virtual_network=spec.network.id, mac_address=spec.mac, ip_address=spec.ip,
            dns_server_list=",".join(spec.dns) or None,
            policies=[hns.NatPolicy(type="NAT", protocol=m.protocol.upper(), internal_port=m.container_port,
                                    external_port=m.host_port).to_json() for m in spec.port_mappings] or None,
        )

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        return _endpoint_info(self.call("POST", "/endpoints/", self.endpoint_document(spec)))

    def delete_endpoint(self, endpoint_id: str) -> None:
        self.call("DELETE", f"/endpoints/{endpoint_id}")

    # -- containers ----------------------------------------------------------------------------

    def container_network(self, endpoints: Sequence[EndpointInfo]) -> ContainerNetwork:
        return ContainerNetwork(endpoint_ids=tuple(e.id for e in endpoints))

    def release_container_network(self, network: ContainerNetwork) -> None:
        pass

    def attach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork:
        system.modify(hns.ModifySystemNetworkRequest(request_type="Add", settings=endpoint.id).to_json())
        return ContainerNetwork(endpoint_ids=(*network.endpoint_ids, endpoint.id))

    def detach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork:
        system.modify(hns.ModifySystemNetworkRequest(request_type="Remove", settings=endpoint.id).to_json())
        return ContainerNetwork(endpoint_ids=tuple(i for i in network.endpoint_ids if i != endpoint.id))
