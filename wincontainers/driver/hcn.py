"""gen3 networking: HCN v2 through ``computenetwork.dll``.

Objects are created and deleted by GUID, used through handles that are always closed; a call
failed when its HRESULT did or when its ErrorRecord is not empty (hcsshim ``checkForErrors``).
A container's endpoints go in a namespace (HcnModifyNamespace), whose GUID goes in the container's
``Networking.Namespace``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any, Iterator, Sequence

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
from wincontainers.schema import hcn

__all__ = ["HcnNetworking"]

_PROTOCOL_NAMES = {v: k for k, v in hcn.PROTOCOLS.items()}
_DRIVER_NAMES = {v.lower(): k for k, v in hcn.NETWORK_TYPES.items()}


def _query() -> str:
    return hcn.Query(schema_version=hcn.SCHEMA_2_0(), flags=0, filter="").dumps()


class HcnNetworking:
    generation = 3
    creates_networks = True
    reports_ip = True

    def remember_ip(self, endpoint_id: str, ip: str) -> None:
        """HNS reports endpoint addresses itself: nothing to keep."""

    def __init__(self, dll: NativeDll) -> None:
        self.dll = dll

    def _call(self, function: str, *args: Any, subject: str) -> tuple[Any, ...]:
        """Call; raise on a failed HRESULT or a non-empty ErrorRecord (the last out)."""
        result = self.dll.call(function, *args)
        hr, outs = result[0], result[1:]
        record = outs[-1] if outs else None
        check(function, hr, subject=subject, result=record)
        if record:
            try:
                doc = json.loads(record)
            except ValueError:
                doc = {"ErrorMessage": record}
            message = str(doc.get("ErrorMessage") or doc.get("Error") or record) if isinstance(doc, dict) else record
            raise errors.HcsError(function, subject=subject, message=message, result=doc)
        return tuple(outs[:-1])

    @contextlib.contextmanager
    def _opened(self, kind: str, object_id: str) -> Iterator[Any]:
        (handle,) = self._call(f"HcnOpen{kind}", uuid.UUID(object_id), subject=f"{kind.lower()} {object_id}")
        try:
            yield handle
        finally:
            self.dll.call(f"HcnClose{kind}", handle)

    def _properties(self, kind: str, object_id: str) -> dict[str, Any]:
        with self._opened(kind, object_id) as handle:
            (text,) = self._call(f"HcnQuery{kind}Properties", handle, _query(), subject=f"{kind.lower()} {object_id}")
        doc = json.loads(text or "{}")
        return doc if isinstance(doc, dict) else {}

    def _enumerate(self, plural: str) -> list[str]:
        (text,) = self._call(f"HcnEnumerate{plural}", _query(), subject=plural.lower())
        ids = json.loads(text or "[]")
        return [str(i) for i in ids] if isinstance(ids, list) else []

    # -- networks ------------------------------------------------------------------------------

    def _network_info(self, doc: dict[str, Any]) -> NetworkInfo:
        model = hcn.HostComputeNetwork.from_json(doc)
        subnet = gateway = None
        for ipam in model.ipams or []:
            for sub in ipam.subnets or []:
                subnet = subnet or sub.ip_address_prefix
                for route in sub.routes or []:
                    gateway = gateway or route.next_hop
        dns = tuple(model.dns.server_list or ()) if model.dns else ()
        return NetworkInfo(id=str(model.id), name=model.name or "", driver=_DRIVER_NAMES.get(
            (model.type or "").lower(), (model.type or "").lower()), subnet=subnet, gateway=gateway, dns=dns, raw=doc)

    def list_networks(self) -> list[NetworkInfo]:
        out = []
        for network_id in self._enumerate("Networks"):
            with contextlib.suppress(errors.NotFound):
                out.append(self._network_info(self._properties("Network", network_id)))
        return out

    def network_document(self, spec: NetworkSpec) -> hcn.HostComputeNetwork:
        subnet, gateway = check_subnet(spec.subnet, spec.gateway)
        return hcn.HostComputeNetwork(
            name=spec.name, type=hcn.NETWORK_TYPES.get(spec.driver, spec.driver),
            ipams=[hcn.Ipam(type="Static", subnets=[hcn.Subnet(
                ip_address_prefix=subnet,
                routes=[hcn.Route(next_hop=gateway, destination_prefix="0.0.0.0/0")])])] if subnet else None,
            dns=hcn.Dns(server_list=list(spec.dns)) if spec.dns else None,
            schema_version=hcn.SCHEMA_2_0(),
        )

    def create_network(self, spec: NetworkSpec) -> NetworkInfo:
        network_id = uuid.uuid4()
        (handle,) = self._call("HcnCreateNetwork", network_id, self.network_document(spec).dumps(),
                               subject=f"network {spec.name}")
        try:
            (text,) = self._call("HcnQueryNetworkProperties", handle, _query(), subject=f"network {spec.name}")
        except BaseException:
            self.dll.call("HcnCloseNetwork", handle)
            with contextlib.suppress(errors.HcsError):  # nothing half made: the network goes again
                self.delete_network(str(network_id))
            raise
        self.dll.call("HcnCloseNetwork", handle)
        return self._network_info(json.loads(text or "{}"))

    def delete_network(self, network_id: str) -> None:
        self._call("HcnDeleteNetwork", uuid.UUID(network_id), subject=f"network {network_id}")

    # -- endpoints -----------------------------------------------------------------------------

    def _endpoint_info(self, doc: dict[str, Any]) -> EndpointInfo:
        model = hcn.HostComputeEndpoint.from_json(doc)
        ports = []
        for policy in model.policies or []:
            if policy.type == "PortMapping" and policy.settings:
                mapping = hcn.PortMappingSettings.from_json(policy.settings)
                if mapping.internal_port and mapping.external_port:
                    ports.append(PortMapping(_PROTOCOL_NAMES.get(int(mapping.protocol or 6), "tcp"),
                                             int(mapping.internal_port), int(mapping.external_port)))
        config = model.ip_configurations[0] if model.ip_configurations else None
        gateway = next((r.next_hop for r in model.routes or [] if r.next_hop), None)
        return EndpointInfo(id=str(model.id), name=model.name or "", network_id=str(model.host_compute_network or ""),
                            ip=config.ip_address if config else None, prefix_length=config.prefix_length if config
                            else None, gateway=gateway, mac=model.mac_address, port_mappings=tuple(ports), raw=doc)

    def list_endpoints(self) -> list[EndpointInfo]:
        out = []
        for endpoint_id in self._enumerate("Endpoints"):
            with contextlib.suppress(errors.NotFound):
                out.append(self._endpoint_info(self._properties("Endpoint", endpoint_id)))
        return out

    def get_endpoint(self, endpoint_id: str) -> EndpointInfo:
        return self._endpoint_info(self._properties("Endpoint", endpoint_id))

    def endpoint_document(self, spec: EndpointSpec) -> hcn.HostComputeEndpoint:
        return hcn.HostComputeEndpoint(
            name=spec.name, host_compute_network=spec.network.id,
            policies=[hcn.Policy(type="PortMapping", settings=hcn.PortMappingSettings(
                protocol=hcn.PROTOCOLS[m.protocol], internal_port=m.container_port,
                external_port=m.host_port).to_json()) for m in spec.port_mappings] or None,
            ip_configurations=[hcn.IpConfig(ip_address=spec.ip)] if spec.ip else None,
            dns=hcn.Dns(server_list=list(spec.dns)) if spec.dns else None,
            mac_address=spec.mac, schema_version=hcn.SCHEMA_2_0(),
        )

    def create_endpoint(self, spec: EndpointSpec) -> EndpointInfo:
        endpoint_id = uuid.uuid4()
        with self._opened("Network", spec.network.id) as network:
            (handle,) = self._call("HcnCreateEndpoint", network, endpoint_id, self.endpoint_document(spec).dumps(),
                                   subject=f"endpoint {spec.name}")
        try:
            (text,) = self._call("HcnQueryEndpointProperties", handle, _query(), subject=f"endpoint {spec.name}")
        except BaseException:
            self.dll.call("HcnCloseEndpoint", handle)
            with contextlib.suppress(errors.HcsError):
                self.delete_endpoint(str(endpoint_id))
            raise
        self.dll.call("HcnCloseEndpoint", handle)
        return self._endpoint_info(json.loads(text or "{}"))

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._call("HcnDeleteEndpoint", uuid.UUID(endpoint_id), subject=f"endpoint {endpoint_id}")

    # -- namespaces (a container's network stack) ---------------------------------------------------

    def namespace_document(self, namespace: str) -> dict[str, Any]:
        """A namespace as HCN describes it (what a utility VM is given to make it in its guest)."""
        return self._properties("Namespace", namespace)

    def _modify_namespace(self, namespace: str, request: str, endpoint_id: str) -> None:
        document = hcn.ModifyNamespaceRequest(resource_type="Endpoint", request_type=request,
                                              settings={"ID": endpoint_id})
        with self._opened("Namespace", namespace) as handle:
            self._call("HcnModifyNamespace", handle, document.dumps(), subject=f"namespace {namespace}")

    def container_network(self, endpoints: Sequence[EndpointInfo]) -> ContainerNetwork:
        namespace = uuid.uuid4()
        document = hcn.HostComputeNamespace(type="Host", schema_version=hcn.SCHEMA_2_0())
        (handle,) = self._call("HcnCreateNamespace", namespace, document.dumps(), subject=f"namespace {namespace}")
        self.dll.call("HcnCloseNamespace", handle)
        network = ContainerNetwork(namespace=str(namespace))
        try:
            for endpoint in endpoints:
                self._modify_namespace(str(namespace), "Add", endpoint.id)
                network = ContainerNetwork(endpoint_ids=(*network.endpoint_ids, endpoint.id),
                                           namespace=str(namespace))
        except BaseException:
            with contextlib.suppress(errors.HcsError):
                self.release_container_network(network)
            raise
        return network

    def release_container_network(self, network: ContainerNetwork) -> None:
        """Take the endpoints out of the namespace and delete it; a namespace already gone is fine."""
        if network.namespace is None:
            return
        for endpoint_id in network.endpoint_ids:
            with contextlib.suppress(errors.HcsError):
                self._modify_namespace(network.namespace, "Remove", endpoint_id)
        with contextlib.suppress(errors.NotFound):
            self._call("HcnDeleteNamespace", uuid.UUID(network.namespace), subject=f"namespace {network.namespace}")

    def attach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork:
        if network.namespace is None:
            raise errors.InvalidState("attach", message="the container was created without a network namespace",
                                      hint="create the container with a network to attach more later")
        self._modify_namespace(network.namespace, "Add", endpoint.id)
        return ContainerNetwork(endpoint_ids=(*network.endpoint_ids, endpoint.id), namespace=network.namespace)

    def detach(self, system: SystemRef, network: ContainerNetwork, endpoint: EndpointInfo) -> ContainerNetwork:
        if network.namespace is None:
            raise errors.InvalidState("detach", message="the container has no network namespace")
        self._modify_namespace(network.namespace, "Remove", endpoint.id)
        return ContainerNetwork(endpoint_ids=tuple(i for i in network.endpoint_ids if i != endpoint.id),
                                namespace=network.namespace)
