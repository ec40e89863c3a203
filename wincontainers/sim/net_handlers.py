"""Handlers of the simulated networking calls: ``HNSCall`` (vmcompute, gen2) and
``computenetwork.dll`` (HCN, gen3), over the daemon's :class:`~wincontainers.sim.network.Networks`."""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
from typing import TYPE_CHECKING, Any, Optional

from wincontainers.sim.faults import Fail
from wincontainers.sim.network import (
    HCN_ENDPOINT_NOT_FOUND,
    HCN_INVALID_JSON,
    HCN_NAMESPACE_NOT_FOUND,
    HCN_NETWORK_NOT_FOUND,
    NetFail,
    Networks,
    SimEndpoint,
    SimNamespace,
    SimNetwork,
)
from wincontainers.sim.calls import Call, Reply, api, guid_of
from wincontainers.sim.wire import dumps

if TYPE_CHECKING:
    from wincontainers.sim.service import Service

E_INVALIDARG = 0x80070057
ERROR_NOT_SUPPORTED = 0x80070032


def _net(svc: Service, call: Call) -> Networks:
    return svc.networks(call.conn.profile)


# == HNS v1 (gen2): HNSCall(method, path, request, &response) ====================================


def _lower_keys(doc: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in doc.items()} if isinstance(doc, dict) else {}


def _ports(policies: Any) -> list[tuple[str, int, int]]:
    out = []
    for policy in policies or []:
        p = _lower_keys(policy)
        if str(p.get("type", "")).upper() != "NAT":
            continue
        try:
            out.append((str(p.get("protocol", "TCP")).lower(), int(p.get("internalport") or 0),
                        int(p.get("externalport") or 0)))
        except (TypeError, ValueError):
            raise NetFail(E_INVALIDARG, f"NAT policy {policy!r} is invalid") from None
    return out


def _hns(svc: Service, call: Call, method: str, path: str, request: str) -> Any:
    net = _net(svc, call)
    parts = [p for p in path.split("/") if p]
    body = _lower_keys(json.loads(request)) if request and request.strip() else {}
    method = method.upper()
    if parts == ["globals", "version"] and method == "GET":
        return {"Major": 7, "Minor": 2}
    if not parts or parts[0] not in ("networks", "endpoints"):
        raise NetFail(E_INVALIDARG, f"{method} {path}: no such HNS resource")
    running = {s.id.lower() for s in svc.systems.values() if s.state != "Stopped"}
    if parts[0] == "networks":
        if len(parts) == 1 and method == "GET":
            return [n.hns() for n in net.networks.values()]
        if len(parts) == 1 and method == "POST":
            subnets = body.get("subnets") or []
            first = _lower_keys(subnets[0]) if subnets else {}
            dns = [d for d in str(body.get("dnsserverlist") or "").split(",") if d]
            return net.create_network(str(body.get("name") or ""), str(body.get("type") or ""),
                                      first.get("addressprefix"), first.get("gatewayaddress"), dns).hns()
        if len(parts) == 2 and method == "GET":
            return net.network(parts[1]).hns()
        if len(parts) == 2 and method == "DELETE":
            net.delete_network(parts[1])
            return None
    else:
        if len(parts) == 1 and method == "GET":
            return [e.hns() for e in net.endpoints.values() if not e.implicit]
        if len(parts) == 1 and method == "POST":
            dns = [d for d in str(body.get("dnsserverlist") or "").split(",") if d]
            return net.create_endpoint(str(body.get("virtualnetwork") or ""), str(body.get("name") or ""),
                                       ip=body.get("ipaddress"), mac=body.get("macaddress"),
                                       ports=_ports(body.get("policies")), dns=dns).hns()
        if len(parts) == 2 and method == "GET":
            return net.endpoint(parts[1]).hns()
        if len(parts) == 2 and method == "DELETE":
            net.delete_endpoint(parts[1], running)
            return None
        if len(parts) == 3 and method == "POST" and parts[2] in ("attach", "detach"):
            system_id = str(body.get("containerid") or "")
            svc.find_system(call, system_id)
            if parts[2] == "attach":
                net.attach(parts[1], system_id)
            else:
                net.detach(parts[1], system_id)
            return None
    raise NetFail(E_INVALIDARG, f"{method} {path} is not an HNS request")


@api("vmcompute", "HNSCall", "sssS")
def hns_call(svc: Service, call: Call, method: Optional[str], path: Optional[str], request: Optional[str]) -> Reply:
    with svc.lock:
        try:
            output = _hns(svc, call, method or "", path or "", request or "")
            envelope = {"Success": True, "Error": "", "Output": output}
        except NetFail as exc:
            envelope = {"Success": False, "Error": exc.message}
        except ValueError as exc:
            envelope = {"Success": False, "Error": f"invalid JSON: {exc}"}
    return Reply(outs=[dumps(envelope)])


# == HCN v2 (gen3): computenetwork.dll ===========================================================


def _settings(text: Optional[str]) -> dict[str, Any]:
    try:
        doc = json.loads(text or "{}")
    except ValueError as exc:
        raise NetFail(HCN_INVALID_JSON, f"the settings are not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise NetFail(HCN_INVALID_JSON, "the settings are not a JSON object")
    return doc


def _hcn_network(net: Networks, network_id: str, doc: dict[str, Any]) -> SimNetwork:
    subnet = gateway = None
    for ipam in doc.get("Ipams") or []:
        for sub in (ipam or {}).get("Subnets") or []:
            subnet = subnet or sub.get("IpAddressPrefix")
            for route in sub.get("Routes") or []:
                gateway = gateway or route.get("NextHop")
    dns = list((doc.get("Dns") or {}).get("ServerList") or [])
    return net.create_network(str(doc.get("Name") or ""), str(doc.get("Type") or ""), subnet, gateway, dns,
                              network_id=network_id)


def _hcn_endpoint(net: Networks, network: SimNetwork, endpoint_id: str, doc: dict[str, Any]) -> SimEndpoint:
    ports = []
    for policy in doc.get("Policies") or []:
        if (policy or {}).get("Type") != "PortMapping":
            continue
        settings = policy.get("Settings") or {}
        protocol = {6: "tcp", 17: "udp"}.get(int(settings.get("Protocol") or 6))
        if protocol is None:
            raise NetFail(E_INVALIDARG, f"port mapping protocol {settings.get('Protocol')!r} is invalid")
        ports.append((protocol, int(settings.get("InternalPort") or 0), int(settings.get("ExternalPort") or 0)))
    configs = doc.get("IpConfigurations") or []
    ip = (configs[0] or {}).get("IpAddress") if configs else None
    dns = list((doc.get("Dns") or {}).get("ServerList") or [])
    if doc.get("HostComputeNetwork") and str(doc["HostComputeNetwork"]).lower() != network.id.lower():
        raise NetFail(E_INVALIDARG, "HostComputeNetwork does not name the network handle's network")
    return net.create_endpoint(network.id, str(doc.get("Name") or ""), ip=ip, mac=doc.get("MacAddress"),
                               ports=ports, dns=dns, endpoint_id=endpoint_id)


def _handle_obj(svc: Service, call: Call, hid: int, kind: str) -> Any:
    return svc.handle(call, hid, kind).obj


def _fresh(obj: Any, table: dict[str, Any], missing: int) -> Any:
    if obj.id.lower() not in table:
        raise NetFail(missing, f"{type(obj).__name__[3:].lower()} {obj.id} no longer exists")
    return obj


@api("computenetwork", "HcnCreateNetwork", "gsHS", doc=True)
def hcn_create_network(svc: Service, call: Call, guid: Any, settings: Optional[str]) -> Reply:
    with svc.lock:
        network = _hcn_network(_net(svc, call), guid_of(guid), _settings(settings))
        return Reply(outs=[svc.new_handle("hcn-network", network, call.conn).id])


@api("computenetwork", "HcnDeleteNetwork", "gS", doc=True)
def hcn_delete_network(svc: Service, call: Call, guid: Any) -> None:
    with svc.lock:
        _net(svc, call).delete_network(guid_of(guid))


@api("computenetwork", "HcnCreateEndpoint", "hgsHS", doc=True)
def hcn_create_endpoint(svc: Service, call: Call, network_hid: int, guid: Any, settings: Optional[str]) -> Reply:
    with svc.lock:
        net = _net(svc, call)
        network = _fresh(_handle_obj(svc, call, network_hid, "hcn-network"), net.networks, HCN_NETWORK_NOT_FOUND)
        endpoint = _hcn_endpoint(net, network, guid_of(guid), _settings(settings))
        return Reply(outs=[svc.new_handle("hcn-endpoint", endpoint, call.conn).id])


@api("computenetwork", "HcnDeleteEndpoint", "gS", doc=True)
def hcn_delete_endpoint(svc: Service, call: Call, guid: Any) -> None:
    with svc.lock:
        running = {s.id.lower() for s in svc.systems.values() if s.state != "Stopped"}
        _net(svc, call).delete_endpoint(guid_of(guid), running)


@api("computenetwork", "HcnCreateNamespace", "gsHS", doc=True)
def hcn_create_namespace(svc: Service, call: Call, guid: Any, settings: Optional[str]) -> Reply:
    with svc.lock:
        namespace = _net(svc, call).create_namespace(guid_of(guid), str(_settings(settings).get("Type") or "Host"))
        return Reply(outs=[svc.new_handle("hcn-namespace", namespace, call.conn).id])


@api("computenetwork", "HcnModifyNamespace", "hsS", doc=True)
def hcn_modify_namespace(svc: Service, call: Call, hid: int, settings: Optional[str]) -> None:
    with svc.lock:
        net = _net(svc, call)
        namespace: SimNamespace = _fresh(_handle_obj(svc, call, hid, "hcn-namespace"), net.namespaces, HCN_NAMESPACE_NOT_FOUND)
        net.modify_namespace(namespace, _settings(settings))


@api("computenetwork", "HcnDeleteNamespace", "gS", doc=True)
def hcn_delete_namespace(svc: Service, call: Call, guid: Any) -> None:
    with svc.lock:
        _net(svc, call).delete_namespace(guid_of(guid))


# Enumerate, Open, Query and Close work alike for the three kinds: one handler factory each.


def _enumerate(plural: str) -> Any:
    def handler(svc: Service, call: Call, query: Optional[str]) -> Reply:
        with svc.lock:
            items = getattr(_net(svc, call), plural).values()
            return Reply(outs=[dumps([o.id for o in items if not getattr(o, "implicit", False)])])
    return handler


def _open(kind: str, name: str) -> Any:
    def handler(svc: Service, call: Call, guid: Any) -> Reply:
        with svc.lock:
            found = getattr(_net(svc, call), name.lower())(guid_of(guid))  # raises the kind's NOT_FOUND
            return Reply(outs=[svc.new_handle(kind, found, call.conn).id])
    return handler


def _query(kind: str, plural: str, missing: int) -> Any:
    def handler(svc: Service, call: Call, hid: int, query: Optional[str]) -> Reply:
        with svc.lock:
            found = _fresh(_handle_obj(svc, call, hid, kind), getattr(_net(svc, call), plural), missing)
            return Reply(outs=[dumps(found.hcn())])
    return handler


def _close(kind: str) -> Any:
    def handler(svc: Service, call: Call, hid: int) -> None:
        svc.handle(call, hid, kind)
        svc.close_handle(hid)
    return handler


for _name, _plural, _missing in (("Network", "networks", HCN_NETWORK_NOT_FOUND),
                                 ("Endpoint", "endpoints", HCN_ENDPOINT_NOT_FOUND),
                                 ("Namespace", "namespaces", HCN_NAMESPACE_NOT_FOUND)):
    _kind = f"hcn-{_name.lower()}"
    api("computenetwork", f"HcnEnumerate{_plural.capitalize()}", "sSS", doc=True)(_enumerate(_plural))
    api("computenetwork", f"HcnOpen{_name}", "gHS", doc=True)(_open(_kind, _name))
    api("computenetwork", f"HcnQuery{_name}Properties", "hsSS", doc=True)(_query(_kind, _plural, _missing))
    api("computenetwork", f"HcnClose{_name}", "h")(_close(_kind))
    if _name != "Namespace":
        def _modify(svc: Service, call: Call, hid: int, settings: Optional[str], _k: str = _kind) -> None:
            svc.handle(call, hid, _k)
            raise Fail(ERROR_NOT_SUPPORTED, f"{call.function} is not simulated (wincontainers does not use it)")
        api("computenetwork", f"HcnModify{_name}", "hsS", doc=True)(_modify)
