"""Queries and test controls of the simulated service: properties and enumeration as HCS
answers them, and what tests and ``SimulatedHost`` ask (objects, open handles, a system's
network, stopping everything).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

from typing import Any, Optional

from wincontainers.sim.calls import E_INVALIDARG, Call, get_key, loads_document
from wincontainers.sim.faults import Fail
from wincontainers.sim.model import ComputeSystem
from wincontainers.sim.processes import Processes
from wincontainers.sim.profiles import PROFILES
from wincontainers.sim.wire import dumps

__all__ = ["Inspection"]


class Inspection(Processes):
    """What HCS answers about systems and the host, and what tests ask of the daemon."""

    def properties(self, call: Call, system: ComputeSystem, query_text: Optional[str]) -> str:
        query = loads_document(query_text, call, "property query")
        types = get_key(query, "PropertyTypes", default=[]) or []
        with self.lock:
            props = system.basic_properties(with_runtime_os=call.conn.profile == "ws2019")
        for t in types:
            if t == "ProcessList":
                props["ProcessList"] = system.process_list()
            elif t == "Statistics":
                props["Statistics"] = self.vm_statistics(system) if system.vm is not None else system.statistics()
                props["Statistics"]["Network"] = [
                    {"EndpointId": e.id, "InstanceId": e.id, "BytesReceived": 0, "BytesSent": 0, "PacketsReceived": 0,
                     "PacketsSent": 0, "DroppedPacketsIncoming": 0, "DroppedPacketsOutgoing": 0}
                    for e in self.endpoints_of(system.id)]
            elif t in ("PendingUpdates", "MappedVirtualDisk", "GuestConnection", "Memory", "TerminateOnLastHandleClosed"):
                continue
            else:
                raise Fail(E_INVALIDARG, f"unknown property type '{t}'")
        return dumps(props)

    def enumerate(self, call: Call, query_text: Optional[str]) -> str:
        query = loads_document(query_text, call, "enumeration query")
        ids = {str(x).lower() for x in get_key(query, "Ids", default=[]) or []}
        names = set(get_key(query, "Names", default=[]) or [])
        owners = set(get_key(query, "Owners", default=[]) or [])
        types = set(get_key(query, "Types", default=[]) or [])
        out = []
        with self.lock:
            for system in self.systems.values():
                if ids and system.id.lower() not in ids:
                    continue
                if names and system.name not in names:
                    continue
                if owners and system.owner not in owners:
                    continue
                if types and system.kind not in types:
                    continue
                out.append(system.basic_properties(with_runtime_os=call.conn.profile == "ws2019"))
        return dumps(out)

    def service_properties(self, call: Call) -> str:
        profile = PROFILES[call.conn.profile]
        return dumps({
            "SupportedSchemaVersions": [{"Major": a, "Minor": b} for a, b in profile.schema_versions],
            "Build": profile.build,
        })

    # -- control ---------------------------------------------------------------------------------

    def objects(self) -> dict[str, Any]:
        with self.lock:
            systems = []
            for s in self.systems.values():
                systems.append({
                    "id": s.id, "state": s.state, "owner": s.owner, "name": s.name,
                    "processes": sorted(p.pid for p in s.processes.values() if not p.exited.is_set()),
                    "handles": len(s.handles), "root": str(s.root), "created_by": s.created_by,
                    "ignore_shutdown": s.ignore_shutdown, "kind": s.kind, "hyperv": s.hyperv,
                    "host_pids": sorted(p.host_pid for p in s.processes.values() if not p.exited.is_set()),
                    "hosting_system": s.host_vm.id if s.host_vm is not None else None, "vm": self.vm_details(s),
                })
            volumes = [
                {"guid": v.guid, "layer": str(v.layer), "prepared": v.prepared, "refs": v.refs}
                for v in self.storage.volumes.values()
            ]
            networking: dict[str, Any] = {"networks": [], "endpoints": [], "namespaces": []}
            for net in self.host_networks.values():
                for key, items in net.summary().items():
                    networking[key] += items
            vm_disks = {str(path): holder for path, holder in self.storage.vm_disks.items()}
            return {"systems": systems, "volumes": volumes, "vm_disks": vm_disks, **networking}

    def network_of(self, system_id: str) -> list[dict[str, Any]]:
        """What a container sees of its network adapters (the simulated ipconfig asks this)."""
        with self.lock:
            return [e.view() for e in self.endpoints_of(system_id)]

    def open_handles(self, pid: Optional[int]) -> dict[str, dict[str, int]]:
        with self.lock:
            out: dict[str, dict[str, int]] = {}
            owners = [(h.conn.pid, h.kind) for h in self.handles.values()]
        with self.files.lock:
            owners += [(f.pid, "file") for f in self.files.opens.values()]
        for owner, kind in owners:
            if pid is not None and owner != pid:
                continue
            counts = out.setdefault(str(owner), {"total": 0})
            counts[kind] = counts.get(kind, 0) + 1
            counts["total"] += 1
        return out

    def shutdown_all(self) -> None:
        with self.lock:
            systems = list(self.systems.values())
        for system in systems:
            if system.state != "Stopped":
                self.kill_system(system, "ForcedExit")
