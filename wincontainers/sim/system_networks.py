"""Networking of simulated compute systems: the HNS/HCN state per profile, and the endpoints a
system is created with or hot-attached to.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

from typing import Any, Optional

from wincontainers.sim.calls import Call, get_key
from wincontainers.sim.faults import Fail
from wincontainers.sim.handle_table import HandleTable
from wincontainers.sim.model import ComputeSystem
from wincontainers.sim.network import Networks

__all__ = ["SystemNetworks"]


class SystemNetworks(HandleTable):
    """The host's networks per profile and the endpoints of compute systems."""

    def networks(self, profile: str) -> Networks:
        """The host's networking (HNS/HCN state, TP3's NAT), created on first use."""
        with self.lock:
            found = self.host_networks.get(profile)
            if found is None:
                found = self.host_networks[profile] = Networks(profile)
            return found

    def endpoints_of(self, system_id: str) -> list[Any]:
        """The endpoints attached to a compute system, on whichever profile's networking."""
        with self.lock:
            return [e for net in self.host_networks.values() for e in net.of_system(system_id)]

    def attach_networks(self, call: Call, system_id: str, endpoints: list[str], devices: list[dict[str, Any]],
                         namespace: Optional[str]) -> None:
        """EndpointList (v1), NAT devices (TP3) or a namespace (v2): all attached, or none."""
        net = self.networks(call.conn.profile)
        try:
            for endpoint_id in endpoints:
                net.attach(endpoint_id, system_id)
            for device in devices:
                net.tp3_device(system_id, device)
            if namespace:
                net.attach_namespace(str(namespace), system_id)
        except Fail:
            net.system_stopped(system_id)
            raise

    def modify_network(self, call: Call, system: ComputeSystem, doc: dict[str, Any]) -> None:
        """HcsModifyComputeSystem {"ResourceType": "Network", "RequestType": "Add"|"Remove", "Settings": id}."""
        with self.lock:
            if system.state != "Running":
                raise call.fail("INVALID_STATE", "networks are added to and removed from running containers")
            net = self.networks(call.conn.profile)
            request = str(get_key(doc, "RequestType", default="")).lower()
            endpoint_id = str(get_key(doc, "Settings", default="") or "")
            if request == "add":
                net.attach(endpoint_id, system.id)
            elif request == "remove":
                net.detach(endpoint_id, system.id)
            else:
                raise call.fail("INVALID_JSON", f"RequestType {get_key(doc, 'RequestType')!r} is invalid")
