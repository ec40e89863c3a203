"""The simulated vmcompute service: what every exported HCS function does.

Handlers are registered per DLL and export name with the same marshalling format string the C
client uses (see native/wcsim.h), so the daemon knows which arguments are inputs and which are
out parameters. A handler gets the inputs, and returns a :class:`Reply` (or raises
:class:`~wincontainers.sim.faults.Fail`). gen3 handlers complete their operation through
``call.complete``; gen2 handlers that return PENDING schedule their completion notification.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
import os
import pty
import signal
import struct
import termios
import threading
import time
import fcntl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import attrs

from wincontainers.sim.wire import dumps
from wincontainers.sim import storage as st
from wincontainers.sim import winproc
from wincontainers.sim.faults import Fail, Faults
from wincontainers.sim.model import EVENTS, NOTIFICATIONS, ComputeSystem, Handle, SimProcess
from wincontainers.sim import ntfs
from wincontainers.sim.network import Networks
from wincontainers.sim.tokens import Tokens
from wincontainers.sim.leases import Leases
from wincontainers.sim.winfs import WinFs, privilege_bits
from wincontainers.sim.profiles import PROFILES
from wincontainers.sim.wire import Guid

if TYPE_CHECKING:
    from wincontainers.sim.daemon import Connection

__all__ = ["Service", "Reply", "Call", "HANDLERS", "Api"]

S_OK = 0
PENDING = 0xC0370103
E_NOTIMPL = 0x80004001
E_INVALIDARG = 0x80070057
E_HANDLE = 0x80070006
E_ABORT = 0x80004004
ERROR_FILE_NOT_FOUND = 0x80070002
ERROR_NOT_FOUND = 0x80070490
ERROR_DIRECTORY = 0x8007010B
ERROR_BROKEN_PIPE = 0x8007006D
WAIT_TIMEOUT = 0x80070102
HCS_E_PROCESS_INFO_NOT_AVAILABLE = 0x8037011D
HCS_E_PROCESS_ALREADY_STOPPED = 0x8037011F
HCS_E_CALLBACK_ALREADY_SET = 0x80370119

# (gen2 value, gen3 value) of the errors whose code depends on the DLL that returns it.
_CODES = {
    "INVALID_STATE": (0xC0370105, 0x80370105),
    "INVALID_JSON": (0xC037010D, 0x8037010D),
    "SYSTEM_NOT_FOUND": (0xC037010E, 0x8037010E),
    "ALREADY_EXISTS": (0xC037010F, 0x8037010F),
    "ALREADY_STOPPED": (0xC0370110, 0x80370110),
    "HYPERV_NOT_INSTALLED": (0xC0370102, 0x80370102),
    "INVALID_LAYER": (0xC0370112, 0x80370112),
}


@attrs.define
class Reply:
    hr: int = S_OK
    outs: list[Any] = attrs.field(factory=list)
    fds: list[int] = attrs.field(factory=list)
    doc: Optional[str] = None
    after: Optional[Callable[[], None]] = None


@attrs.define(eq=False)
class Call:
    conn: "Connection"
    function: str
    wants: list[bool]
    op: Optional[int] = None
    completed: bool = False

    @property
    def gen(self) -> int:
        return self.conn.gen

    @property
    def pid(self) -> int:
        return self.conn.pid

    def code(self, name: str) -> int:
        gen2, gen3 = _CODES[name]
        return gen3 if self.conn.gen == 3 else gen2

    def fail(self, name: str, message: str) -> Fail:
        return Fail(self.code(name), message)

    def complete(
        self,
        hr: int = S_OK,
        result: Optional[str] = None,
        *,
        procinfo: Optional[int] = None,
        fds: Sequence[int] = (),
        system: Optional[int] = None,
        process: Optional[int] = None,
    ) -> None:
        """Complete this call's gen3 operation (events go out in order on the connection)."""
        if self.op is None or self.completed:
            for fd in fds:
                _close(fd)
            return
        self.completed = True
        self.conn.complete_op(self.op, hr, result, procinfo, list(fds), system, process)


@attrs.frozen
class Api:
    group: str
    name: str
    fmt: str
    func: Callable[..., Optional[Reply]]
    blocking: bool = False
    #: the last 'S' out parameter carries the result / error document
    doc: bool = False
    #: kernel32/advapi32: the reply carries the handler's values as they are (no out parameters)
    raw: bool = False

    @property
    def out_count(self) -> int:
        return sum(1 for c in self.fmt if c.isupper() and c != "L")

    @property
    def is_void(self) -> bool:
        """computecore's close functions return nothing: an injected HRESULT cannot reach the caller."""
        return self.group == "computecore" and self.name in _VOID_FUNCTIONS

    def split(self, args: Sequence[Any]) -> tuple[list[Any], list[bool]]:
        inputs, wants = [], []
        for c, a in zip(self.fmt, args):
            if c.isupper() and c != "L":
                wants.append(bool(a))
            else:
                inputs.append(a)
        return inputs, wants


_VOID_FUNCTIONS = {"HcsCloseComputeSystem", "HcsCloseProcess"}
HANDLERS: dict[tuple[str, str], Api] = {}


def api(group: str, name: str, fmt: str, *, blocking: bool = False, doc: bool = False,
        raw: bool = False) -> Callable[..., Any]:
    def register(func: Callable[..., Optional[Reply]]) -> Callable[..., Optional[Reply]]:
        HANDLERS[(group, name)] = Api(group, name, fmt, func, blocking, doc, raw)
        return func

    return register


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _loads(text: Optional[str], call: Call, what: str) -> Any:
    if text is None or not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise call.fail("INVALID_JSON", f"the {what} document is not valid JSON: {exc}") from None


def _get(doc: Any, *keys: str, default: Any = None) -> Any:
    """Case-insensitive key lookup (HCS v1 and HNS parse keys case-insensitively)."""
    if not isinstance(doc, dict):
        return default
    for key in keys:
        if key in doc:
            return doc[key]
        lower = key.lower()
        for k, v in doc.items():
            if k.lower() == lower:
                return v
    return default


#: Windows tools the simulated containers get (wincontainers.sim.commands).
TOOLS = ("tasklist", "ver", "hostname", "ipconfig", "ping")

# Signals for HcsSignalProcess' {"Signal": ...}
_SIGNALS = {
    "ctrlc": signal.SIGINT,
    "ctrlbreak": signal.SIGQUIT,
    "ctrlclose": signal.SIGHUP,
    "ctrllogoff": signal.SIGHUP,
    "ctrlshutdown": signal.SIGTERM,
}


class Service:
    """State of the simulated host; every mutation happens under ``self.lock``."""

    def __init__(self, root: Path, socket_path: Path, *, elevated: bool = True) -> None:
        self.root = root
        self.socket_path = socket_path
        self.lock = threading.RLock()
        ntfs.set_volume_root(root)
        self.storage = st.Storage(root)
        self.tokens = Tokens(elevated)
        self.files = WinFs(root, self.tokens, self._volume_content)
        self.leases = Leases(lambda pid: privilege_bits(self.tokens.of(pid)))
        self.leases.adopt = lambda lease, hid, access, share, flags, directory, rel: self.files.adopt(
            hid, lease.pid, lease.owner, lease.path_of(rel), access, share, flags, directory)
        self.files.through_link = lambda host: self.leases.touched([host], None)
        self.faults = Faults()
        self.systems: dict[str, ComputeSystem] = {}
        self.handles: dict[int, Handle] = {}
        self._next_id = 1
        self.call_log: dict[int, list[str]] = {}
        self.document_log: dict[int, list[dict[str, Any]]] = {}
        self.misuse: dict[int, list[str]] = {}
        self._networks: dict[str, Networks] = {}
        self.bin_dir = root / "daemon" / "bin"
        self._write_tools()

    def _volume_content(self, guid: str) -> Optional[Path]:
        """``\\\\?\\Volume{guid}\\`` -> the folder that plays that mounted sandbox volume."""
        with self.lock:
            vol = self.storage.volumes.get(guid.lower())
            return vol.content if vol is not None else None

    def networks(self, profile: str) -> Networks:
        """The host's networking (HNS/HCN state, TP3's NAT), created on first use."""
        with self.lock:
            found = self._networks.get(profile)
            if found is None:
                found = self._networks[profile] = Networks(profile)
            return found

    def _endpoints_of(self, system_id: str) -> list[Any]:
        """The endpoints attached to a compute system, on whichever profile's networking."""
        with self.lock:
            return [e for net in self._networks.values() for e in net.of_system(system_id)]

    # -- ids, handles, logs ------------------------------------------------------------------

    def new_id(self) -> int:
        with self.lock:
            n = self._next_id
            self._next_id += 1
            return n

    def new_handle(self, kind: str, obj: Any, conn: "Connection") -> Handle:
        with self.lock:
            h = Handle(self.new_id(), kind, obj, conn, 3 if conn.gen == 3 else 2)
            self.handles[h.id] = h
            conn.handles.add(h.id)
            if kind in ("system", "process"):
                obj.handles.add(h)
            return h

    def handle(self, call: Call, hid: int, kind: str) -> Handle:
        with self.lock:
            h = self.handles.get(hid)
            if h is None or h.kind != kind or h.conn is not call.conn:
                raise Fail(E_HANDLE, f"invalid {kind} handle")
            return h

    def close_handle(self, hid: int) -> None:
        with self.lock:
            h = self.handles.pop(hid, None)
            if h is None:
                return
            h.conn.handles.discard(hid)
            # A callback registration dies with the handle it was registered on.
            for dependent in [d for d in self.handles.values() if d.kind == "callback" and d.obj is h]:
                self.close_handle(dependent.id)
            if h.kind == "system":
                system: ComputeSystem = h.obj
                system.handles.discard(h)
                if not system.handles:
                    if system.state != "Stopped" and system.terminate_on_last_close:
                        self._kill_system(system, "ForcedExit")
                    if system.state == "Stopped":
                        self.systems.pop(system.id.lower(), None)
            elif h.kind == "process":
                proc: SimProcess = h.obj
                proc.handles.discard(h)
                self._maybe_forget_process(proc)

    def log_call(self, pid: int, function: str) -> None:
        with self.lock:
            log = self.call_log.setdefault(pid, [])
            log.append(function)
            if len(log) > 20000:
                del log[:10000]

    def log_documents(self, pid: int, function: str, inputs: Sequence[Any]) -> None:
        """Keep the JSON documents a client sent (with the call's other string arguments, such
        as HNSCall's method and path), so a test can compare them with the reference."""
        strings = [a for a in inputs if isinstance(a, str)]
        if not any(a.lstrip().startswith(("{", "[")) for a in strings):
            return
        with self.lock:
            log = self.document_log.setdefault(pid, [])
            log.append({"function": function, "args": strings})
            if len(log) > 2000:
                del log[:1000]

    # -- notifications -------------------------------------------------------------------------

    def notify(self, handles: Sequence[Handle], name: str, status: int = 0, data: Optional[str] = None) -> None:
        for h in handles:
            if h.api == 2 and name in NOTIFICATIONS:
                if self.faults.should_drop(name, h.conn.pid):
                    continue
                h.conn.send_event("N", [h.id, NOTIFICATIONS[name], _signed(status), data])
            elif h.api == 3 and name in EVENTS:
                if self.faults.should_drop(name, h.conn.pid):
                    continue
                h.conn.send_event("V", [h.id, EVENTS[name], data])

    def notify_system(self, system: ComputeSystem, name: str, status: int = 0, data: Optional[str] = None) -> None:
        with self.lock:
            handles = list(system.handles)
        self.notify(handles, name, status, data)

    # -- compute system lifecycle ----------------------------------------------------------------

    def find_system(self, call: Call, system_id: Optional[str]) -> ComputeSystem:
        with self.lock:
            system = self.systems.get((system_id or "").lower())
            if system is None:
                raise call.fail("SYSTEM_NOT_FOUND", f"no compute system with id '{system_id}'")
            return system

    def create_system(self, call: Call, system_id: Optional[str], config_text: Optional[str]) -> ComputeSystem:
        if not system_id:
            raise Fail(E_INVALIDARG, "the compute system id is empty")
        doc = _loads(config_text, call, "configuration")
        if not isinstance(doc, dict):
            raise call.fail("INVALID_JSON", "the configuration document is not a JSON object")
        profile = PROFILES[call.conn.profile]
        schema = 2 if _get(doc, "SchemaVersion") is not None else 1
        if schema == 2 and (1 if call.gen != 3 else 2) == 1 and (2, 1) not in profile.schema_versions:
            raise call.fail("INVALID_JSON", "schema 2 documents need Windows Server 2019 or later")
        if schema == 1 and call.gen == 3:
            raise call.fail("INVALID_JSON", "computecore.dll takes schema 2 documents (SchemaVersion 2.1)")
        if schema == 1:
            spec = self._parse_v1(call, doc)
            endpoints = [str(e) for e in _get(doc, "EndpointList", default=[]) or []]
            devices = [d for d in _get(doc, "Devices", default=[]) or []
                       if isinstance(d, dict) and str(_get(d, "DeviceType", default="")).lower() == "network"]
            namespace = None
        else:
            spec = self._parse_v2(call, doc)
            endpoints, devices = [], []
            namespace = ((doc.get("Container") or {}).get("Networking") or {}).get("Namespace")
        volume_path, layers, hostname, owner, name, terminate_on_close, mapped = spec
        with self.lock:
            if system_id.lower() in self.systems:
                raise call.fail("ALREADY_EXISTS", f"a compute system with id {system_id!r} already exists")
            vol = self.storage.volume_from_path(volume_path or "")
            if vol is None:
                raise Fail(0x80070003, f"volume {volume_path!r} is not an activated sandbox volume")
            if not vol.prepared:
                raise call.fail("INVALID_LAYER", f"volume {volume_path!r} is not prepared (call PrepareLayer first)")
            for layer in layers:
                self._check_layer_ref(call, layer)
            if layers:
                self._check_image_build(profile, Path(layers[-1][1]))
            if any(s.volume_guid == vol.guid and s.state != "Stopped" for s in self.systems.values()):
                raise Fail(0x80070020, f"volume {volume_path!r} is in use by another compute system")
            system = ComputeSystem(
                id=system_id,
                owner=owner or "",
                name=name or system_id,
                schema=schema,
                config=doc,
                root=vol.content,
                volume_guid=vol.guid,
                hostname=hostname or system_id[:15],
                terminate_on_last_close=terminate_on_close,
                created_by=call.pid,
            )
            self._attach_networks(call, system_id, endpoints, devices, namespace)
            self._map_directories(system, mapped)
            self.systems[system_id.lower()] = system
            return system

    def _attach_networks(self, call: Call, system_id: str, endpoints: list[str], devices: list[dict[str, Any]],
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
            request = str(_get(doc, "RequestType", default="")).lower()
            endpoint_id = str(_get(doc, "Settings", default="") or "")
            if request == "add":
                net.attach(endpoint_id, system.id)
            elif request == "remove":
                net.detach(endpoint_id, system.id)
            else:
                raise call.fail("INVALID_JSON", f"RequestType {_get(doc, 'RequestType')!r} is invalid")

    def _parse_v1(self, call: Call, doc: dict[str, Any]) -> tuple[Any, ...]:
        system_type = _get(doc, "SystemType", default="Container")
        if str(system_type).lower() != "container" or _get(doc, "HvPartition"):
            raise call.fail("HYPERV_NOT_INSTALLED", "the simulated host runs process-isolated containers only")
        layers = _get(doc, "Layers", default=[]) or []
        if not isinstance(layers, list):
            raise call.fail("INVALID_JSON", "Layers must be an array")
        return (
            _get(doc, "VolumePath"),
            [(_get(layer, "ID", "Id"), _get(layer, "Path")) for layer in layers],
            _get(doc, "HostName"),
            _get(doc, "Owner"),
            _get(doc, "Name"),
            bool(_get(doc, "TerminateOnLastHandleClosed", default=False)),
            _get(doc, "MappedDirectories", default=[]) or [],
        )

    def _parse_v2(self, call: Call, doc: dict[str, Any]) -> tuple[Any, ...]:
        version = doc.get("SchemaVersion") or {}
        if not isinstance(version, dict) or version.get("Major") != 2:
            raise call.fail("INVALID_JSON", "SchemaVersion must be {Major: 2, Minor: 1}")
        if "VirtualMachine" in doc or "HostingSystemId" in doc:
            raise call.fail("HYPERV_NOT_INSTALLED", "the simulated host runs process-isolated containers only")
        container = doc.get("Container")
        if not isinstance(container, dict):
            raise call.fail("INVALID_JSON", "a schema 2 document needs a Container object")
        storage = container.get("Storage") or {}
        layers = storage.get("Layers") or []
        return (
            storage.get("Path"),
            [(layer.get("Id"), layer.get("Path")) for layer in layers if isinstance(layer, dict)],
            (container.get("GuestOs") or {}).get("HostName"),
            doc.get("Owner"),
            None,
            bool(doc.get("ShouldTerminateOnLastHandleClosed", False)),
            container.get("MappedDirectories") or [],
        )

    def _check_layer_ref(self, call: Call, layer: tuple[Any, Any]) -> None:
        guid, path = layer
        if not path or not Path(path).is_dir():
            raise Fail(0x80070003, f"layer {path!r} does not exist")
        want = st.guid_text(st.name_to_guid(Path(path).name))
        if str(guid or "").lower().strip("{}") != want:
            raise call.fail("INVALID_LAYER", f"layer {path} has ID {guid!r}; NameToGuid of its folder name is {want}")

    def _check_image_build(self, profile: Any, base: Path) -> None:
        """Process isolation shares the host's kernel: the base layer's Windows build (its
        SOFTWARE hive, or a central-store folder name) must be the host's. Revisions may differ."""
        from wincontainers.sim.layerio import layer_build

        build = layer_build(base) or st.base_image_build(base)
        if build is not None and build != profile.build:
            raise Fail(0xC0370101, f"The container operating system does not match the host operating system. "
                                   f"(image build {build}, host build {profile.build})")

    def _map_directories(self, system: ComputeSystem, mapped: Any) -> None:
        for entry in mapped if isinstance(mapped, list) else []:
            host = _get(entry, "HostPath")
            inside = _get(entry, "ContainerPath")
            if not host or not inside:
                continue
            target = winproc.resolve_container_path(system.root, inside)
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(host, target)

    def start_system(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state == "Running":
                raise call.fail("INVALID_STATE", "the compute system is already running")
            if system.state != "Created":
                raise call.fail("INVALID_STATE", f"cannot start a compute system that is {system.state}")
            system.state = "Running"
            system.started = time.time()

    def pause_system(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state != "Running":
                raise call.fail("INVALID_STATE", f"cannot pause a compute system that is {system.state}")
            system.signal_all(signal.SIGSTOP)
            system.state = "Paused"

    def resume_system(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state != "Paused":
                raise call.fail("INVALID_STATE", f"cannot resume a compute system that is {system.state}")
            system.signal_all(signal.SIGCONT)
            system.state = "Running"

    def begin_shutdown(self, call: Call, system: ComputeSystem) -> bool:
        """Ask the processes to exit; True when the system is already down."""
        with self.lock:
            if system.state == "Stopped":
                raise call.fail("ALREADY_STOPPED", "the compute system is not running")
            if not system.sessions():
                self._mark_stopped(system, "GracefulExit")
                return True
            if not system.ignore_shutdown:
                system.signal_all(signal.SIGTERM)
                system.signal_all(signal.SIGCONT)
            system.shutting_down = True
            return False

    def wait_stopped(self, system: ComputeSystem, timeout: Optional[float]) -> bool:
        """Wait until every process of the system has exited, then mark it stopped (graceful)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if system.stopped.is_set():
                return True
            with self.lock:
                if not system.sessions() and not system.member_pids():
                    self._mark_stopped(system, "GracefulExit")
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            system.stopped.wait(0.02)

    def terminate_system(self, call: Call, system: ComputeSystem) -> None:
        with self.lock:
            if system.state == "Stopped":
                raise call.fail("ALREADY_STOPPED", "the compute system is not running")
        self._kill_system(system, "ForcedExit")

    def _kill_system(self, system: ComputeSystem, exit_type: str) -> None:
        with self.lock:
            for proc in system.processes.values():
                if not proc.exited.is_set():
                    proc.killed_by_terminate = True
            system.signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                if all(p.exited.is_set() for p in system.processes.values()):
                    break
            time.sleep(0.005)
        with self.lock:
            self._mark_stopped(system, exit_type)

    def _mark_stopped(self, system: ComputeSystem, exit_type: str) -> None:
        with self.lock:
            if system.state == "Stopped":
                return
            system.state = "Stopped"
            system.exit_type = exit_type
            system.shutting_down = False
            for net in self._networks.values():
                net.system_stopped(system.id)
            for proc in system.processes.values():
                proc.close_kept()
            handles = list(system.handles)
            if not handles:
                self.systems.pop(system.id.lower(), None)
            system.stopped.set()
        status = dumps({"Status": 0, "ExitType": exit_type})
        self.notify(handles, "SystemExited", 0, status)

    # -- processes ---------------------------------------------------------------------------------

    def create_process(
        self,
        call: Call,
        system: ComputeSystem,
        params_text: Optional[str],
        pipes: tuple[bool, bool, bool],
        keep: bool,
    ) -> tuple[SimProcess, list[int], int]:
        """Start a process; returns it, the caller's stdio fds (in, out, err order) and their mask."""
        params = _loads(params_text, call, "process parameters")
        if not isinstance(params, dict):
            raise call.fail("INVALID_JSON", "the process parameters are not a JSON object")
        command_line = _get(params, "CommandLine") or _get(params, "ApplicationName")
        if not command_line or not str(command_line).strip():
            raise Fail(E_INVALIDARG, "the process has no CommandLine")
        with self.lock:
            if system.state != "Running":
                raise call.fail("INVALID_STATE", f"cannot create a process in a compute system that is {system.state}")
        console = bool(_get(params, "EmulateConsole", default=False))
        cwd_text = _get(params, "WorkingDirectory") or "C:\\"
        cwd = winproc.resolve_container_path(system.root, str(cwd_text))
        if not cwd.is_dir():
            raise Fail(ERROR_DIRECTORY, f"working directory {cwd_text!r} does not exist in the container")
        env = self._environment(system, _get(params, "Environment", default={}) or {}, console)
        try:
            argv, image = winproc.translate_command(str(command_line), system.root, env["PATH"])
        except winproc.CommandNotFound as exc:
            raise Fail(ERROR_FILE_NOT_FOUND, f"cannot find {str(exc) or command_line!r} in the container") from None

        want_in, want_out, want_err = pipes
        parent_fds: list[Optional[int]] = [None, None, None]
        child_fds: list[Optional[int]] = [None, None, None]
        master = slave = None
        tty_path = None
        try:
            if console:
                master, slave = pty.openpty()
                size = _get(params, "ConsoleSize")
                if isinstance(size, list) and len(size) == 2 and all(size):
                    _set_winsize(master, int(size[0]), int(size[1]))
                tty_path = os.ttyname(slave)
                child_fds = [slave, slave, slave]
                if want_in:
                    parent_fds[0] = os.dup(master)
                if want_out:
                    parent_fds[1] = os.dup(master)
                # With a console stderr is merged into stdout: no stderr pipe (hcs-api.md 6.2).
            else:
                if want_in:
                    r, w = os.pipe()
                    child_fds[0], parent_fds[0] = r, w
                if want_out:
                    r, w = os.pipe()
                    parent_fds[1], child_fds[1] = r, w
                if want_err:
                    r, w = os.pipe()
                    parent_fds[2], child_fds[2] = r, w
            popen = winproc.spawn(
                argv, cwd=cwd, env=env, stdin=child_fds[0], stdout=child_fds[1], stderr=child_fds[2],
                tty_path=tty_path,
            )
        except OSError as exc:
            for fd in (*parent_fds, master):
                if fd is not None:
                    _close(fd)
            raise Fail(0x80004005, f"starting {command_line!r} failed: {exc}") from None
        finally:
            for fd in set(child_fds):
                if fd is not None:
                    _close(fd)
        proc = SimProcess(
            system=system, popen=popen, pid=popen.pid, image_name=image, command_line=str(command_line),
            console=console,
        )
        if master is not None:
            proc.pty_master = master
        if keep:
            for name, fd in zip(("StdIn", "StdOut", "StdErr"), parent_fds):
                if fd is not None:
                    proc.kept[name] = os.dup(fd)
        with self.lock:
            system.processes[proc.pid] = proc
        threading.Thread(target=self._reap, args=(proc,), name=f"reap-{proc.pid}", daemon=True).start()
        mask = sum(1 << i for i, fd in enumerate(parent_fds) if fd is not None)
        return proc, [fd for fd in parent_fds if fd is not None], mask

    def _environment(self, system: ComputeSystem, requested: Any, console: bool) -> dict[str, str]:
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env = {
            "PATH": f"{self.bin_dir}:{host_path}",
            "COMPUTERNAME": system.hostname.upper(),
            "USERNAME": "ContainerAdministrator",
            "USERPROFILE": "C:\\Users\\ContainerAdministrator",
            "SystemRoot": "C:\\Windows",
            "HOME": str(system.root),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "WCSIM_SOCKET": str(self.socket_path),
            "WCSIM_CONTAINER": system.id,
        }
        if console:
            env["TERM"] = "xterm"
        if isinstance(requested, dict):
            for key, value in requested.items():
                value = "" if value is None else str(value)
                if key.upper() == "PATH" and (";" in value or "\\" in value):
                    env["WCSIM_WINDOWS_PATH"] = value  # a Windows PATH cannot find host programs
                    continue
                env[str(key)] = value
        return env

    def _reap(self, proc: SimProcess) -> None:
        code = proc.popen.wait()
        with self.lock:
            proc.exit_code = winproc.exit_code_from_status(code)
            proc.exited.set()
            proc.close_kept()
            system = proc.system
            system.exit_codes[proc.pid] = proc.exit_code
            if len(system.exit_codes) > 4096:
                for old in list(system.exit_codes)[:2048]:
                    del system.exit_codes[old]
            handles = list(proc.handles)
            self._maybe_forget_process(proc)
        self.notify(handles, "ProcessExited", 0, proc.status_json())

    def _maybe_forget_process(self, proc: SimProcess) -> None:
        with self.lock:
            if proc.exited.is_set() and not proc.handles:
                proc.system.processes.pop(proc.pid, None)

    def find_process(self, call: Call, system: ComputeSystem, pid: int) -> SimProcess:
        with self.lock:
            proc = system.processes.get(pid)
            if proc is None:
                raise Fail(ERROR_NOT_FOUND, f"no process {pid} in compute system {system.id}")
            return proc

    def signal_process(self, call: Call, proc: SimProcess, sig: int, already: int) -> None:
        if proc.exited.is_set():
            raise Fail(already, f"process {proc.pid} has already exited")
        if sig == signal.SIGKILL:
            proc.killed_by_terminate = True
        proc.signal_group(sig)
        if sig != signal.SIGKILL:
            proc.signal_group(signal.SIGCONT)

    def modify_process(self, call: Call, proc: SimProcess, settings_text: Optional[str]) -> None:
        settings = _loads(settings_text, call, "modify process")
        operation = str(_get(settings, "Operation", default="")).lower()
        if operation == "consolesize":
            size = _get(settings, "ConsoleSize", default={}) or {}
            self.resize(proc, int(_get(size, "Height", default=0)), int(_get(size, "Width", default=0)))
        elif operation == "closehandle":
            if proc.exited.is_set():
                raise call.fail("INVALID_STATE", f"process {proc.pid} has exited")
            which = str(_get(_get(settings, "CloseHandle", default={}), "Handle", default=""))
            with self.lock:
                if which.lower() == "all":
                    proc.close_kept()
                elif which in ("StdIn", "StdOut", "StdErr"):
                    proc.close_kept(which)
                else:
                    raise Fail(E_INVALIDARG, f"unknown handle {which!r}")
        else:
            raise Fail(E_INVALIDARG, f"unknown modify operation {operation!r}")

    def resize(self, proc: SimProcess, height: int, width: int) -> None:
        if proc.pty_master is not None and height > 0 and width > 0:
            _set_winsize(proc.pty_master, height, width)

    def process_info(self, call: Call, proc: SimProcess) -> tuple[list[int], int]:
        with self.lock:
            if proc.exited.is_set():
                raise Fail(HCS_E_PROCESS_INFO_NOT_AVAILABLE, f"process {proc.pid} has exited")
            fds, mask = [], 0
            for i, name in enumerate(("StdIn", "StdOut", "StdErr")):
                fd = proc.kept.get(name)
                if fd is not None:
                    fds.append(os.dup(fd))
                    mask |= 1 << i
            return fds, mask

    def wait_process_gen1(self, call: Call, system_id: str, pid: int, timeout_ms: int) -> int:
        system = self.find_system(call, system_id)
        with self.lock:
            proc = system.processes.get(pid)
            if proc is None:
                if pid in system.exit_codes:
                    return system.exit_codes[pid]
                raise Fail(ERROR_NOT_FOUND, f"no process {pid} in compute system {system_id}")
        timeout = None if timeout_ms == 0xFFFFFFFF else timeout_ms / 1000
        if not proc.exited.wait(timeout):
            raise Fail(WAIT_TIMEOUT, "the process is still running")
        if proc.killed_by_terminate and system.exit_type == "ForcedExit":
            raise Fail(ERROR_BROKEN_PIPE, "the compute system was terminated")
        return proc.exit_code or 0

    # -- queries -------------------------------------------------------------------------------

    def properties(self, call: Call, system: ComputeSystem, query_text: Optional[str]) -> str:
        query = _loads(query_text, call, "property query")
        types = _get(query, "PropertyTypes", default=[]) or []
        with self.lock:
            props = system.basic_properties(with_runtime_os=call.conn.profile == "ws2019")
        for t in types:
            if t == "ProcessList":
                props["ProcessList"] = system.process_list()
            elif t == "Statistics":
                props["Statistics"] = system.statistics()
                props["Statistics"]["Network"] = [
                    {"EndpointId": e.id, "InstanceId": e.id, "BytesReceived": 0, "BytesSent": 0, "PacketsReceived": 0,
                     "PacketsSent": 0, "DroppedPacketsIncoming": 0, "DroppedPacketsOutgoing": 0}
                    for e in self._endpoints_of(system.id)]
            elif t in ("PendingUpdates", "MappedVirtualDisk", "GuestConnection", "Memory", "TerminateOnLastHandleClosed"):
                continue
            else:
                raise Fail(E_INVALIDARG, f"unknown property type '{t}'")
        return dumps(props)

    def enumerate(self, call: Call, query_text: Optional[str]) -> str:
        query = _loads(query_text, call, "enumeration query")
        ids = {str(x).lower() for x in _get(query, "Ids", default=[]) or []}
        names = set(_get(query, "Names", default=[]) or [])
        owners = set(_get(query, "Owners", default=[]) or [])
        types = set(_get(query, "Types", default=[]) or [])
        out = []
        with self.lock:
            for system in self.systems.values():
                if ids and system.id.lower() not in ids:
                    continue
                if names and system.name not in names:
                    continue
                if owners and system.owner not in owners:
                    continue
                if types and "Container" not in types:
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
                    "ignore_shutdown": s.ignore_shutdown,
                })
            volumes = [
                {"guid": v.guid, "layer": str(v.layer), "prepared": v.prepared, "refs": v.refs}
                for v in self.storage.volumes.values()
            ]
            networking: dict[str, Any] = {"networks": [], "endpoints": [], "namespaces": []}
            for net in self._networks.values():
                for key, items in net.summary().items():
                    networking[key] += items
            return {"systems": systems, "volumes": volumes, **networking}

    def network_of(self, system_id: str) -> list[dict[str, Any]]:
        """What a container sees of its network adapters (the simulated ipconfig asks this)."""
        with self.lock:
            return [e.view() for e in self._endpoints_of(system_id)]

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
                self._kill_system(system, "ForcedExit")

    def _write_tools(self) -> None:
        """Shell shims so `cmd /c tasklist` finds the simulated Windows tools on PATH."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        package_parent = Path(__file__).resolve().parents[2]
        for tool in TOOLS:
            shim = self.bin_dir / tool
            text = (f'#!/bin/sh\nPYTHONPATH="{package_parent}${{PYTHONPATH:+:$PYTHONPATH}}" '
                    f'exec "{sys.executable}" -m wincontainers.sim.commands {tool} "$@"\n')
            if not shim.exists() or shim.read_text() != text:
                shim.write_text(text)
                shim.chmod(0o755)


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass


def _signed(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def guid_of(value: Any) -> str:
    return str(value) if isinstance(value, Guid) else ""


# Registers the handlers (import for side effects).
from wincontainers.sim import handlers as _handlers  # noqa: E402,F401
from wincontainers.sim import net_handlers as _net_handlers  # noqa: E402,F401
from wincontainers.sim import k32_handlers as _k32_handlers  # noqa: E402,F401
