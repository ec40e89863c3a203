"""The exported HCS functions of the simulated host, one handler each.

Format strings are those of the C client (native/*.c); ``tests/test_native.py`` checks that
both sides agree. Groups: ``vmcompute`` (gen1 string ids on the tp3 profile, gen2 handles on
later ones, and the layer API), ``computecore`` (gen3 operations), ``computestorage``,
``computenetwork`` and ``any`` (bookkeeping messages of the client library).

Why one file: it is a table, one short handler per exported HCS function of three generations,
registered by the same decorator; networking and kernel32 have their own modules.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from wincontainers.sim.wire import dumps
from wincontainers.sim import layerio
from wincontainers.sim import storage as st
from wincontainers.sim.faults import Fail
from wincontainers.sim.model import ComputeSystem, SimProcess
from wincontainers.sim.calls import (
    E_INVALIDARG,
    E_NOTIMPL,
    ERROR_NOT_FOUND,
    HCS_E_CALLBACK_ALREADY_SET,
    HCS_E_PROCESS_ALREADY_STOPPED,
    PENDING,
    S_OK,
    SIGNALS,
    WAIT_TIMEOUT,
    Call,
    Reply,
    api,
    get_key,
    loads_document,
    signed32,
)
from wincontainers.sim.wire import Guid

if TYPE_CHECKING:
    from wincontainers.sim.service import Service

ERROR_NOT_SUPPORTED = 0x80070032


def _thread(target: Any, *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


def _system(svc: Service, call: Call, hid: int) -> ComputeSystem:
    system: ComputeSystem = svc.handle(call, hid, "system").obj
    return system


def _process(svc: Service, call: Call, hid: int) -> SimProcess:
    proc: SimProcess = svc.handle(call, hid, "process").obj
    return proc


def _not_yet(what: str) -> Any:
    def handler(svc: Service, call: Call, *args: Any) -> Reply:
        raise Fail(E_NOTIMPL, f"{call.function} is not implemented by the simulated host yet ({what})")

    return handler


# == gen1: string-id compute system API ======================================================


@api("vmcompute", "CreateComputeSystem", "ss")
def create_compute_system(svc: Service, call: Call, system_id: Optional[str], config: Optional[str]) -> None:
    svc.create_system(call, system_id, config)


@api("vmcompute", "StartComputeSystem", "s")
def start_compute_system(svc: Service, call: Call, system_id: Optional[str]) -> None:
    svc.start_system(call, svc.find_system(call, system_id))


@api("vmcompute", "ShutdownComputeSystem", "su", blocking=True)
def shutdown_compute_system(svc: Service, call: Call, system_id: Optional[str], timeout_ms: int) -> None:
    system = svc.find_system(call, system_id)
    if not svc.begin_shutdown(call, system):
        _thread(svc.wait_stopped, system, None)
        timeout = None if timeout_ms == 0xFFFFFFFF else timeout_ms / 1000
        if not system.stopped.wait(timeout):
            raise Fail(WAIT_TIMEOUT, "the compute system did not shut down in time")


@api("vmcompute", "TerminateComputeSystem", "s", blocking=True)
def terminate_compute_system(svc: Service, call: Call, system_id: Optional[str]) -> None:
    svc.terminate_system(call, svc.find_system(call, system_id))


@api("vmcompute", "CreateProcessWithStdHandlesInComputeSystem", "ssIFFF")
def create_process_gen1(svc: Service, call: Call, system_id: Optional[str], params: Optional[str]) -> Reply:
    system = svc.find_system(call, system_id)
    pipes = (call.wants[1], call.wants[2], call.wants[3])
    proc, fds, mask = svc.create_process(call, system, params, pipes, keep=False)
    return Reply(outs=[proc.pid, mask & 1, (mask >> 1) & 1, (mask >> 2) & 1], fds=fds)


@api("vmcompute", "WaitForProcessInComputeSystem", "suuI", blocking=True)
def wait_process_gen1(svc: Service, call: Call, system_id: Optional[str], pid: int, timeout_ms: int) -> Reply:
    return Reply(outs=[svc.wait_process_gen1(call, system_id or "", pid, timeout_ms)])


@api("vmcompute", "TerminateProcessInComputeSystem", "su")
def terminate_process_gen1(svc: Service, call: Call, system_id: Optional[str], pid: int) -> None:
    proc = svc.find_process(call, svc.find_system(call, system_id), pid)
    svc.signal_process(call, proc, signal.SIGKILL, ERROR_NOT_FOUND)


@api("vmcompute", "ResizeConsoleInComputeSystem", "suuuu")
def resize_console_gen1(
    svc: Service, call: Call, system_id: Optional[str], pid: int, height: int, width: int, flags: int
) -> None:
    proc = svc.find_process(call, svc.find_system(call, system_id), pid)
    svc.resize(proc, height, width)


# == layer API (vmcompute) ======================================================================


def _running_volumes(svc: Service) -> set[str]:
    return {s.volume_guid for s in svc.systems.values() if s.state != "Stopped"}


@api("vmcompute", "LayerExists", "dsB")
def layer_exists(svc: Service, call: Call, info: Any, layer_id: Optional[str]) -> Reply:
    return Reply(outs=[svc.storage.exists(svc.storage.layer_path(info, layer_id))])


@api("vmcompute", "CreateLayer", "dss")
def create_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str], parent: Optional[str]) -> None:
    with svc.lock:
        svc.storage.create_layer(svc.storage.layer_path(info, layer_id))


@api("vmcompute", "CreateSandboxLayer", "dssL")
def create_sandbox_layer(
    svc: Service, call: Call, info: Any, layer_id: Optional[str], parent: Optional[str], layers: list[Any]
) -> None:
    with svc.lock:
        svc.storage.create_sandbox(svc.storage.layer_path(info, layer_id), layers)


@api("vmcompute", "DestroyLayer", "ds")
def destroy_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str]) -> None:
    with svc.lock:
        svc.storage.destroy(svc.storage.layer_path(info, layer_id), _running_volumes(svc))


@api("vmcompute", "ActivateLayer", "ds")
def activate_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str]) -> None:
    with svc.lock:
        svc.storage.activate(svc.storage.layer_path(info, layer_id))


@api("vmcompute", "DeactivateLayer", "ds")
def deactivate_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str]) -> None:
    with svc.lock:
        svc.storage.deactivate(svc.storage.layer_path(info, layer_id), _running_volumes(svc))


@api("vmcompute", "PrepareLayer", "dsL")
def prepare_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str], layers: list[Any]) -> None:
    with svc.lock:
        svc.storage.prepare(svc.storage.layer_path(info, layer_id), layers)


@api("vmcompute", "UnprepareLayer", "ds")
def unprepare_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str]) -> None:
    with svc.lock:
        svc.storage.unprepare(svc.storage.layer_path(info, layer_id))


@api("vmcompute", "GetLayerMountPath", "dsS")
def get_layer_mount_path(svc: Service, call: Call, info: Any, layer_id: Optional[str]) -> Reply:
    with svc.lock:
        return Reply(outs=[svc.storage.mount_path(svc.storage.layer_path(info, layer_id))])


@api("vmcompute", "GetBaseImages", "S")
def get_base_images(svc: Service, call: Call) -> Reply:
    from wincontainers.sim.profiles import PROFILES

    profile = PROFILES[call.conn.profile]
    images = svc.storage.base_images(profile.build, utility_vm=bool(profile.hyperv_routes))
    return Reply(outs=[dumps({"Images": images})])


@api("vmcompute", "ExpandSandboxSize", "dsq")
def expand_sandbox_size(svc: Service, call: Call, info: Any, layer_id: Optional[str], size: int) -> None:
    path = svc.storage.layer_path(info, layer_id)
    meta_file = path / st.SANDBOX_META
    if not meta_file.exists():
        raise Fail(E_INVALIDARG, f"{path} is not a sandbox layer")
    with svc.lock:
        meta = json.loads(meta_file.read_text())
        meta["size"] = max(int(meta.get("size", 0)), size)
        meta_file.write_text(dumps(meta))


@api("vmcompute", "GrantVmAccess", "ss")
def grant_vm_access(svc: Service, call: Call, vm_id: Optional[str], path: Optional[str]) -> None:
    if not path or not Path(path).exists():
        raise Fail(0x80070002, f"{path!r} does not exist")


def _parents(svc: Service, descriptors: list[Any]) -> list[Path]:
    with svc.lock:
        return svc.storage.check_descriptors(descriptors)


def _import(svc: Service, layer: Path, folder: Optional[str], parents: list[Path]) -> None:
    if not folder:
        raise Fail(E_INVALIDARG, "no import folder")
    layerio.import_transport(Path(folder), layer, parents)


def _export(svc: Service, layer: Path, folder: Optional[str], parents: list[Path]) -> None:
    if not folder:
        raise Fail(E_INVALIDARG, "no export folder")
    with svc.lock:
        volume = svc.storage.export_source(layer, _running_volumes(svc))
    layerio.export_layer(layer, Path(folder), volume=volume, parents=parents)


@api("vmcompute", "ImportLayer", "dssL", blocking=True)
def import_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str], folder: Optional[str],
                 layers: list[Any]) -> None:
    _import(svc, svc.storage.layer_path(info, layer_id), folder, _parents(svc, layers))


@api("vmcompute", "ExportLayer", "dssL", blocking=True)
def export_layer(svc: Service, call: Call, info: Any, layer_id: Optional[str], folder: Optional[str],
                 layers: list[Any]) -> None:
    _export(svc, svc.storage.layer_path(info, layer_id), folder, _parents(svc, layers))


@api("vmcompute", "CopyLayer", "dssL", blocking=True)
def copy_layer(svc: Service, call: Call, info: Any, src: Optional[str], dst: Optional[str], layers: list[Any]) -> None:
    """TP3's commit: a sandbox's changes become a read-only layer."""
    import tempfile

    parents = _parents(svc, layers)
    source, target = svc.storage.layer_path(info, src), svc.storage.layer_path(info, dst)
    with tempfile.TemporaryDirectory(prefix="wcsim-copy-", dir=target.parent) as tmp:
        _export(svc, source, tmp, parents)
        layerio.import_transport(Path(tmp), target, parents)


def _process_base(path: Optional[str]) -> None:
    if not path or not (Path(path) / "Files").is_dir():
        raise Fail(0x80070003, f"{path!r} is not a layer folder with Files")
    layerio.process_base_image(Path(path))


@api("vmcompute", "ProcessBaseImage", "s", blocking=True)
def process_base_image(svc: Service, call: Call, path: Optional[str]) -> None:
    _process_base(path)


@api("vmcompute", "ProcessUtilityImage", "s", blocking=True)
def process_utility_image(svc: Service, call: Call, path: Optional[str]) -> None:
    if not path or not Path(path).is_dir():
        raise Fail(0x80070003, f"{path!r} is not a UtilityVM folder")
    for name in ("SystemTemplateBase.vhdx", "SystemTemplate.vhdx"):
        (Path(path) / name).write_bytes(b"vhdxfile (simulated)\n")


# == gen2: handle-based API (vmcompute on 2016 and later) ========================================


@api("vmcompute", "HcsEnumerateComputeSystems", "sSS", doc=True)
def hcs2_enumerate(svc: Service, call: Call, query: Optional[str]) -> Reply:
    return Reply(outs=[svc.enumerate(call, query)])


@api("vmcompute", "HcsCreateComputeSystem", "ssxHS", doc=True)
def hcs2_create(svc: Service, call: Call, system_id: Optional[str], config: Optional[str], identity: int) -> Reply:
    system = svc.create_system(call, system_id, config)
    h = svc.new_handle("system", system, call.conn)
    return Reply(PENDING, outs=[h.id], after=lambda: svc.notify([h], "SystemCreateCompleted"))


@api("vmcompute", "HcsOpenComputeSystem", "sHS", doc=True)
def hcs2_open(svc: Service, call: Call, system_id: Optional[str]) -> Reply:
    with svc.lock:
        system = svc.find_system(call, system_id)
        return Reply(outs=[svc.new_handle("system", system, call.conn).id])


@api("vmcompute", "HcsCloseComputeSystem", "h")
def hcs2_close(svc: Service, call: Call, hid: int) -> None:
    svc.handle(call, hid, "system")
    svc.close_handle(hid)


def _async_gen2(call: Call, svc: Service, system: ComputeSystem, work: Any, done: str, fault: Any = None) -> Reply:
    """gen2 pattern: accept (PENDING), do the work, then notify its completion."""

    def complete() -> None:
        try:
            work()
        except Fail as f:
            svc.notify(list(system.handles), done, f.hresult, dumps({"Error": f.hresult, "ErrorMessage": f.message}))
            return
        svc.notify(list(system.handles), done)

    return Reply(PENDING, after=complete)


@api("vmcompute", "HcsStartComputeSystem", "hsS", doc=True)
def hcs2_start(svc: Service, call: Call, hid: int, options: Optional[str]) -> Reply:
    system = _system(svc, call, hid)
    if svc.boots(system):  # a utility VM boots: completed when it has
        svc.check_start(call, system)

        def boot() -> None:
            svc.boot()
            svc.finish_start(call, system)

        return Reply(PENDING, after=lambda: _thread(_async_gen2(call, svc, system, boot,
                                                                "SystemStartCompleted").after))
    svc.start_system(call, system)
    return Reply(PENDING, after=lambda: svc.notify_system(system, "SystemStartCompleted"))


@api("vmcompute", "HcsPauseComputeSystem", "hsS", doc=True)
def hcs2_pause(svc: Service, call: Call, hid: int, options: Optional[str]) -> Reply:
    system = _system(svc, call, hid)
    svc.pause_system(call, system)
    return Reply(PENDING, after=lambda: svc.notify_system(system, "SystemPauseCompleted"))


@api("vmcompute", "HcsResumeComputeSystem", "hsS", doc=True)
def hcs2_resume(svc: Service, call: Call, hid: int, options: Optional[str]) -> Reply:
    system = _system(svc, call, hid)
    svc.resume_system(call, system)
    return Reply(PENDING, after=lambda: svc.notify_system(system, "SystemResumeCompleted"))


@api("vmcompute", "HcsShutdownComputeSystem", "hsS", doc=True)
def hcs2_shutdown(svc: Service, call: Call, hid: int, options: Optional[str]) -> Reply:
    system = _system(svc, call, hid)
    if svc.begin_shutdown(call, system):
        return Reply(PENDING)
    return Reply(PENDING, after=lambda: _thread(svc.wait_stopped, system, None))


@api("vmcompute", "HcsTerminateComputeSystem", "hsS", doc=True)
def hcs2_terminate(svc: Service, call: Call, hid: int, options: Optional[str]) -> Reply:
    system = _system(svc, call, hid)
    with svc.lock:
        if system.state == "Stopped":
            raise call.fail("ALREADY_STOPPED", "the compute system is not running")
    return Reply(PENDING, after=lambda: _thread(svc.kill_system, system, "ForcedExit"))


@api("vmcompute", "HcsSaveComputeSystem", "hsS", doc=True)
def hcs2_save(svc: Service, call: Call, hid: int, options: Optional[str]) -> Reply:
    _system(svc, call, hid)
    raise Fail(ERROR_NOT_SUPPORTED, "saving process-isolated containers is not supported")


@api("vmcompute", "HcsGetComputeSystemProperties", "hsSS", doc=True)
def hcs2_properties(svc: Service, call: Call, hid: int, query: Optional[str]) -> Reply:
    return Reply(outs=[svc.properties(call, _system(svc, call, hid), query)])


@api("vmcompute", "HcsModifyComputeSystem", "hsS", doc=True)
def hcs2_modify(svc: Service, call: Call, hid: int, configuration: Optional[str]) -> None:
    system = _system(svc, call, hid)
    doc = loads_document(configuration, call, "modify")
    if system.vm is not None and isinstance(doc, dict):
        svc.modify_vm(call, system, doc)
        return
    if str(get_key(doc, "ResourceType", default="")).lower() == "network":
        svc.modify_network(call, system, doc)  # hot add/remove of an HNS endpoint (2017+)
        return
    _modify_unsupported(call, configuration)


def _modify_unsupported(call: Call, configuration: Optional[str]) -> None:
    doc = loads_document(configuration, call, "modify")
    kind = get_key(doc, "ResourceType", "ResourcePath", default="")
    raise Fail(ERROR_NOT_SUPPORTED, f"modifying {kind or 'this resource'} is not supported by the simulated host yet")


def _register(svc: Service, call: Call, hid: int, kind: str) -> Reply:
    target = svc.handle(call, hid, kind)
    reg = svc.new_handle("callback", target, call.conn)
    return Reply(outs=[reg.id])


@api("vmcompute", "HcsRegisterComputeSystemCallback", "hQ")
def hcs2_register_system(svc: Service, call: Call, hid: int) -> Reply:
    return _register(svc, call, hid, "system")


@api("vmcompute", "HcsRegisterProcessCallback", "hQ")
def hcs2_register_process(svc: Service, call: Call, hid: int) -> Reply:
    return _register(svc, call, hid, "process")


@api("vmcompute", "HcsUnregisterComputeSystemCallback", "h")
def hcs2_unregister_system(svc: Service, call: Call, hid: int) -> None:
    svc.handle(call, hid, "callback")
    svc.close_handle(hid)


@api("vmcompute", "HcsUnregisterProcessCallback", "h")
def hcs2_unregister_process(svc: Service, call: Call, hid: int) -> None:
    svc.handle(call, hid, "callback")
    svc.close_handle(hid)


def _pipes_from(params: Optional[str], call: Call) -> tuple[bool, bool, bool]:
    doc = loads_document(params, call, "process parameters")
    return (
        bool(get_key(doc, "CreateStdInPipe", default=False)),
        bool(get_key(doc, "CreateStdOutPipe", default=False)),
        bool(get_key(doc, "CreateStdErrPipe", default=False)),
    )


@api("vmcompute", "HcsCreateProcess", "hsPHS", doc=True)
def hcs2_create_process(svc: Service, call: Call, hid: int, params: Optional[str]) -> Reply:
    system = _system(svc, call, hid)
    proc, fds, mask = svc.create_process(call, system, params, _pipes_from(params, call), keep=True)
    h = svc.new_handle("process", proc, call.conn)
    return Reply(outs=[proc.pid | (mask << 32), h.id], fds=fds)


@api("vmcompute", "HcsOpenProcess", "huHS", doc=True)
def hcs2_open_process(svc: Service, call: Call, hid: int, pid: int) -> Reply:
    proc = svc.find_process(call, _system(svc, call, hid), pid)
    return Reply(outs=[svc.new_handle("process", proc, call.conn).id])


@api("vmcompute", "HcsCloseProcess", "h")
def hcs2_close_process(svc: Service, call: Call, hid: int) -> None:
    svc.handle(call, hid, "process")
    svc.close_handle(hid)


@api("vmcompute", "HcsTerminateProcess", "hS", doc=True)
def hcs2_terminate_process(svc: Service, call: Call, hid: int) -> None:
    svc.signal_process(call, _process(svc, call, hid), signal.SIGKILL, ERROR_NOT_FOUND)


def _signal_from(call: Call, options: Optional[str]) -> int:
    doc = loads_document(options, call, "signal options")
    name = str(get_key(doc, "Signal", default="CtrlC")).lower()
    if name not in SIGNALS:
        raise Fail(E_INVALIDARG, f"unknown signal {name!r}")
    return int(SIGNALS[name])


@api("vmcompute", "HcsSignalProcess", "hsS", doc=True)
def hcs2_signal_process(svc: Service, call: Call, hid: int, options: Optional[str]) -> None:
    svc.signal_process(call, _process(svc, call, hid), _signal_from(call, options), ERROR_NOT_FOUND)


@api("vmcompute", "HcsGetProcessInfo", "hPS", doc=True)
def hcs2_process_info(svc: Service, call: Call, hid: int) -> Reply:
    proc = _process(svc, call, hid)
    fds, mask = svc.process_info(call, proc)
    return Reply(outs=[proc.pid | (mask << 32)], fds=fds)


@api("vmcompute", "HcsGetProcessProperties", "hSS", doc=True)
def hcs2_process_properties(svc: Service, call: Call, hid: int) -> Reply:
    return Reply(outs=[_process(svc, call, hid).status_json()])


@api("vmcompute", "HcsModifyProcess", "hsS", doc=True)
def hcs2_modify_process(svc: Service, call: Call, hid: int, settings: Optional[str]) -> None:
    svc.modify_process(call, _process(svc, call, hid), settings)


@api("vmcompute", "HcsGetServiceProperties", "sSS", doc=True)
def hcs2_service_properties(svc: Service, call: Call, query: Optional[str]) -> Reply:
    return Reply(outs=[svc.service_properties(call)])


@api("vmcompute", "HcsModifyServiceSettings", "sS", doc=True)
def hcs2_modify_service(svc: Service, call: Call, settings: Optional[str]) -> None:
    loads_document(settings, call, "service settings")


# HNSCall: see net_handlers.py


# == gen3: computecore operations ================================================================


def _complete_later(call: Call, work: Any, result: Any = None) -> None:
    """Run blocking work off the connection thread, then complete the operation."""

    def run() -> None:
        try:
            work()
        except Fail as f:
            call.complete(f.hresult, dumps({"Error": signed32(f.hresult), "ErrorMessage": f.message}))
            return
        call.complete(S_OK, result() if callable(result) else result)

    _thread(run)


@api("computecore", "HcsCreateOperation", "u")
def hcs3_create_operation(svc: Service, call: Call, op_id: int) -> None:
    call.conn.open_op(op_id)


@api("computecore", "HcsCloseOperation", "u")
def hcs3_close_operation(svc: Service, call: Call, op_id: int) -> None:
    call.conn.close_op(op_id)


@api("computecore", "HcsCancelOperation", "o")
def hcs3_cancel_operation(svc: Service, call: Call, op_id: int) -> None:
    call.conn.cancel_op(op_id)


@api("computecore", "HcsEnumerateComputeSystems", "so")
def hcs3_enumerate(svc: Service, call: Call, query: Optional[str], op: int) -> None:
    call.complete(S_OK, svc.enumerate(call, query))


@api("computecore", "HcsCreateComputeSystem", "ssoxH")
def hcs3_create(svc: Service, call: Call, system_id: Optional[str], config: Optional[str], op: int, sd: int) -> Reply:
    system = svc.create_system(call, system_id, config)
    h = svc.new_handle("system", system, call.conn)
    call.complete(S_OK, None, system=h.id)
    return Reply(outs=[h.id])


@api("computecore", "HcsOpenComputeSystem", "suH")
def hcs3_open(svc: Service, call: Call, system_id: Optional[str], access: int) -> Reply:
    with svc.lock:
        system = svc.find_system(call, system_id)
        return Reply(outs=[svc.new_handle("system", system, call.conn).id])


@api("computecore", "HcsCloseComputeSystem", "h")
def hcs3_close(svc: Service, call: Call, hid: int) -> None:
    svc.handle(call, hid, "system")
    svc.close_handle(hid)


@api("computecore", "HcsStartComputeSystem", "hos")
def hcs3_start(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    system = _system(svc, call, hid)
    if svc.boots(system):  # a utility VM boots: the operation completes when it has
        svc.check_start(call, system)

        def boot() -> None:
            svc.boot()
            svc.finish_start(call, system)

        _complete_later(call, boot)
        return
    svc.start_system(call, system)
    call.complete(S_OK)


@api("computecore", "HcsShutDownComputeSystem", "hos")
def hcs3_shutdown(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    system = _system(svc, call, hid)
    if svc.begin_shutdown(call, system):
        call.complete(S_OK)
        return
    _complete_later(call, lambda: svc.wait_stopped(system, None))


@api("computecore", "HcsTerminateComputeSystem", "hos")
def hcs3_terminate(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    system = _system(svc, call, hid)
    _complete_later(call, lambda: svc.terminate_system(call, system))


@api("computecore", "HcsPauseComputeSystem", "hos")
def hcs3_pause(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    svc.pause_system(call, _system(svc, call, hid))
    call.complete(S_OK)


@api("computecore", "HcsResumeComputeSystem", "hos")
def hcs3_resume(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    svc.resume_system(call, _system(svc, call, hid))
    call.complete(S_OK)


@api("computecore", "HcsCrashComputeSystem", "hos")
def hcs3_crash(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    _system(svc, call, hid)
    raise Fail(ERROR_NOT_SUPPORTED, "crashing a process-isolated container is not supported")


@api("computecore", "HcsSaveComputeSystem", "hos")
def hcs3_save(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    _system(svc, call, hid)
    raise Fail(ERROR_NOT_SUPPORTED, "saving process-isolated containers is not supported")


@api("computecore", "HcsGetComputeSystemProperties", "hos")
def hcs3_properties(svc: Service, call: Call, hid: int, op: int, query: Optional[str]) -> None:
    call.complete(S_OK, svc.properties(call, _system(svc, call, hid), query))


@api("computecore", "HcsModifyComputeSystem", "hosx")
def hcs3_modify(svc: Service, call: Call, hid: int, op: int, configuration: Optional[str], identity: int) -> None:
    system = _system(svc, call, hid)
    doc = loads_document(configuration, call, "modify")
    if system.vm is not None and isinstance(doc, dict):
        svc.modify_vm(call, system, doc)
        call.complete(S_OK)
        return
    _modify_unsupported(call, configuration)


def _set_callback(svc: Service, call: Call, hid: int, kind: str) -> None:
    h = svc.handle(call, hid, kind)
    with svc.lock:
        if h.callback_set:
            raise Fail(HCS_E_CALLBACK_ALREADY_SET, "a callback is already set on this handle")
        h.callback_set = True


@api("computecore", "HcsSetComputeSystemCallback", "hu")
def hcs3_set_system_callback(svc: Service, call: Call, hid: int, options: int) -> None:
    _set_callback(svc, call, hid, "system")


@api("computecore", "HcsSetProcessCallback", "hu")
def hcs3_set_process_callback(svc: Service, call: Call, hid: int, options: int) -> None:
    _set_callback(svc, call, hid, "process")


@api("computecore", "HcsCreateProcess", "hsoxH")
def hcs3_create_process(svc: Service, call: Call, hid: int, params: Optional[str], op: int, sd: int) -> Reply:
    system = _system(svc, call, hid)
    proc, fds, mask = svc.create_process(call, system, params, _pipes_from(params, call), keep=True)
    h = svc.new_handle("process", proc, call.conn)
    call.complete(S_OK, None, procinfo=proc.pid | (mask << 32), fds=fds, process=h.id, system=hid)
    return Reply(outs=[h.id])


@api("computecore", "HcsOpenProcess", "huuH")
def hcs3_open_process(svc: Service, call: Call, hid: int, pid: int, access: int) -> Reply:
    proc = svc.find_process(call, _system(svc, call, hid), pid)
    return Reply(outs=[svc.new_handle("process", proc, call.conn).id])


@api("computecore", "HcsCloseProcess", "h")
def hcs3_close_process(svc: Service, call: Call, hid: int) -> None:
    svc.handle(call, hid, "process")
    svc.close_handle(hid)


@api("computecore", "HcsTerminateProcess", "hos")
def hcs3_terminate_process(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    svc.signal_process(call, _process(svc, call, hid), signal.SIGKILL, HCS_E_PROCESS_ALREADY_STOPPED)
    call.complete(S_OK)


@api("computecore", "HcsSignalProcess", "hos")
def hcs3_signal_process(svc: Service, call: Call, hid: int, op: int, options: Optional[str]) -> None:
    proc = _process(svc, call, hid)
    svc.signal_process(call, proc, _signal_from(call, options), HCS_E_PROCESS_ALREADY_STOPPED)
    call.complete(S_OK)


@api("computecore", "HcsGetProcessInfo", "ho")
def hcs3_process_info(svc: Service, call: Call, hid: int, op: int) -> None:
    proc = _process(svc, call, hid)
    fds, mask = svc.process_info(call, proc)
    call.complete(S_OK, None, procinfo=proc.pid | (mask << 32), fds=fds, process=hid)


@api("computecore", "HcsGetProcessProperties", "hos")
def hcs3_process_properties(svc: Service, call: Call, hid: int, op: int, query: Optional[str]) -> None:
    call.complete(S_OK, _process(svc, call, hid).status_json())


@api("computecore", "HcsModifyProcess", "hos")
def hcs3_modify_process(svc: Service, call: Call, hid: int, op: int, settings: Optional[str]) -> None:
    svc.modify_process(call, _process(svc, call, hid), settings)
    call.complete(S_OK)


@api("computecore", "HcsWaitForComputeSystemExit", "huS", blocking=True, doc=True)
def hcs3_wait_system_exit(svc: Service, call: Call, hid: int, timeout_ms: int) -> Reply:
    system = _system(svc, call, hid)
    if not system.stopped.wait(None if timeout_ms == 0xFFFFFFFF else timeout_ms / 1000):
        raise Fail(0x80370118, "the compute system is still running")
    return Reply(doc=dumps({"Status": 0, "ExitType": system.exit_type or "GracefulExit"}))


@api("computecore", "HcsWaitForProcessExit", "huS", blocking=True, doc=True)
def hcs3_wait_process_exit(svc: Service, call: Call, hid: int, timeout_ms: int) -> Reply:
    proc = _process(svc, call, hid)
    if not proc.exited.wait(None if timeout_ms == 0xFFFFFFFF else timeout_ms / 1000):
        raise Fail(0x80370118, "the process is still running")
    return Reply(doc=proc.status_json())


@api("computecore", "HcsGetServiceProperties", "sS", doc=True)
def hcs3_service_properties(svc: Service, call: Call, query: Optional[str]) -> Reply:
    return Reply(doc=svc.service_properties(call))


@api("computecore", "HcsModifyServiceSettings", "sS", doc=True)
def hcs3_modify_service(svc: Service, call: Call, settings: Optional[str]) -> None:
    loads_document(settings, call, "service settings")


for _name in ("HcsGrantVmAccess", "HcsRevokeVmAccess"):
    api("computecore", _name, "ss")(lambda svc, call, vm, path: None)
for _name in ("HcsGrantVmGroupAccess", "HcsRevokeVmGroupAccess"):
    api("computecore", _name, "s")(lambda svc, call, path: None)
for _name in ("HcsSubmitWerReport", "HcsCreateEmptyGuestStateFile", "HcsCreateEmptyRuntimeStateFile"):
    api("computecore", _name, "s")(_not_yet("virtual machines are not simulated"))
api("computecore", "HcsGetProcessorCompatibilityFromSavedState", "sS")(_not_yet("virtual machines are not simulated"))
api("computecore", "HcsEnumerateComputeSystemsInNamespace", "sso")(_not_yet("namespaces are not simulated"))
api("computecore", "HcsCreateComputeSystemInNamespace", "sssoxH")(_not_yet("namespaces are not simulated"))
api("computecore", "HcsOpenComputeSystemInNamespace", "ssuH")(_not_yet("namespaces are not simulated"))


# == computestorage ================================================================================


@api("computestorage", "HcsDestroyLayer", "s")
def hcs3_destroy_layer(svc: Service, call: Call, layer_path: Optional[str]) -> None:
    with svc.lock:
        svc.storage.destroy(svc.storage.layer_path([0, ""], layer_path), _running_volumes(svc))


def _layer_data_parents(svc: Service, call: Call, text: Optional[str]) -> list[Path]:
    doc = loads_document(text, call, "LayerData")
    layers = get_key(doc, "Layers", default=[]) or []
    descriptors = []
    for layer in layers if isinstance(layers, list) else []:
        path = get_key(layer, "Path")
        try:
            guid = Guid.parse(str(get_key(layer, "Id", default="")))
        except ValueError:
            raise Fail(E_INVALIDARG, f"LayerData has a bad layer Id {get_key(layer, 'Id')!r}") from None
        descriptors.append((guid, 0, path))
    return _parents(svc, descriptors)


@api("computestorage", "HcsImportLayer", "sss", blocking=True)
def hcs3_import_layer(svc: Service, call: Call, layer_path: Optional[str], folder: Optional[str],
                      layer_data: Optional[str]) -> None:
    _import(svc, svc.storage.layer_path([0, ""], layer_path), folder, _layer_data_parents(svc, call, layer_data))


@api("computestorage", "HcsExportLayer", "ssss", blocking=True)
def hcs3_export_layer(svc: Service, call: Call, layer_path: Optional[str], folder: Optional[str],
                      layer_data: Optional[str], options: Optional[str]) -> None:
    parents = _layer_data_parents(svc, call, layer_data)
    loads_document(options, call, "export options")
    _export(svc, svc.storage.layer_path([0, ""], layer_path), folder, parents)


@api("computestorage", "HcsSetupBaseOSLayer", "sxs", blocking=True)
def hcs3_setup_base_os_layer(svc: Service, call: Call, layer_path: Optional[str], vhd: int,
                             options: Optional[str]) -> None:
    loads_document(options, call, "OsLayerOptions")
    _process_base(layer_path)


for _name, _fmt in (
    ("HcsExportLegacyWritableLayer", "ssss"), ("HcsSetupBaseOSVolume", "sss"), ("HcsInitializeWritableLayer", "sss"),
    ("HcsInitializeLegacyWritableLayer", "ssss"), ("HcsAttachLayerStorageFilter", "ss"),
    ("HcsDetachLayerStorageFilter", "s"), ("HcsFormatWritableLayerVhd", "x"), ("HcsGetLayerVhdMountPath", "xS"),
):
    api("computestorage", _name, _fmt)(_not_yet("VHD-backed layer storage is not simulated; folder layers are"))


# == computenetwork ================================================================================

# Networks, endpoints and namespaces: see net_handlers.py. Load balancers are not simulated.
_later = _not_yet("HCN load balancers are not simulated (wincontainers does not use them)")
api("computenetwork", "HcnEnumerateLoadBalancers", "sSS", doc=True)(_later)
api("computenetwork", "HcnCreateLoadBalancer", "gsHS", doc=True)(_later)
api("computenetwork", "HcnOpenLoadBalancer", "gHS", doc=True)(_later)
api("computenetwork", "HcnModifyLoadBalancer", "hsS", doc=True)(_later)
api("computenetwork", "HcnQueryLoadBalancerProperties", "hsSS", doc=True)(_later)
api("computenetwork", "HcnDeleteLoadBalancer", "gS", doc=True)(_later)
api("computenetwork", "HcnCloseLoadBalancer", "h")(_later)
api("computenetwork", "HcnRegisterServiceCallback", "Q")(_not_yet("HCN service notifications are not simulated"))
api("computenetwork", "HcnUnregisterServiceCallback", "h")(_not_yet("HCN service notifications are not simulated"))


# == bookkeeping messages of the client library =====================================================


@api("any", "AllocatorMisuse", "s")
def allocator_misuse(svc: Service, call: Call, what: Optional[str]) -> None:
    with svc.lock:
        svc.misuse.setdefault(call.pid, []).append(f"{call.conn.dll}: {what}")
