"""Loading the HCS DLLs and calling them with Python values.

:class:`NativeDll` wraps one DLL loaded by full path. ``dll.call(name, *inputs)`` converts the
inputs (``str`` -> UTF-16 with surrogates passed through, GUIDs, handles), allocates every out
parameter, calls, and returns ``(return value, *outs)`` with out strings copied and freed with
the allocator that DLL requires (hcs-api.md pitfall 9). The plan for each function is derived
once from its cffi type, so a call costs little more than the raw cffi call (see ``bench/``).

:func:`load` opens a system directory and picks the API generation from the exports present
(hcs-api.md section 0.1), or the one the caller forces.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, cast

import attrs
from cffi import FFI

from wincontainers import errors
from wincontainers._native import cdefs
from wincontainers._native.guids import guid_cdata, guid_reader

#: one DEBUG record per HCS call: the function, its inputs (shortened), the result, the time
hcs_log = logging.getLogger("wincontainers.hcs")

if TYPE_CHECKING:
    from wincontainers._native.win32 import Win32

__all__ = [
    "NativeDll",
    "Binding",
    "ProcessInformation",
    "load",
    "probe_generations",
    "TYPES_FFI",
    "NULL",
    "handle_value",
]

TYPES_FFI = FFI()
TYPES_FFI.cdef(cdefs.TYPES)
NULL = TYPES_FFI.NULL

# Out parameters whose pointer type alone does not say it (const is lost in cffi's types).
_OUT_OVERRIDES: Mapping[str, Sequence[int]] = {
    "NameToGuid": (1,),
    "ExportLayerNext": (1, 2, 3, 4),
    "HcsGetProcessorCompatibilityFromSavedState": (1,),
}
_IN_OVERRIDES: Mapping[str, Sequence[int]] = {
    "GetLayerMountPath": (2, 3),  # in/out length and caller buffer: driven by hand
    "ImportLayerNext": (2,),
    "ExportLayerRead": (1,),
}


@attrs.frozen
class ProcessInformation:
    """HCS_PROCESS_INFORMATION with the std handles as ints (``None`` when not created)."""

    process_id: int
    stdin: Optional[int]
    stdout: Optional[int]
    stderr: Optional[int]


def _handle_int(ffi: FFI, h: Any) -> Optional[int]:
    value = int(ffi.cast("uintptr_t", h))
    return value or None


def wide_string(ffi: FFI, p: Any) -> str:
    """A NUL-terminated UTF-16 string (lone surrogates kept) as ``str``."""
    return cast(str, ffi.string(p))


def handle_value(h: Any) -> Optional[int]:
    """A HANDLE cdata (or None) as an int, ``None`` for NULL: for stdio handles."""
    if h is None:
        return None
    return _handle_int(TYPES_FFI, h)


class _Plan:
    """How to call one function, worked out once from its cffi type: where each input goes and
    how it converts, which arguments are outs, and the reader that turns each out cell into its
    Python value. A call then only follows the plan (the binding's cost per call is measured
    in ``bench/bench_call_overhead.py``)."""

    __slots__ = ("name", "func", "n_args", "outs", "in_kinds", "ret", "inputs_first", "out_places")

    def __init__(self, ffi: FFI, name: str, func: Any, reader: Callable[[str], Callable[[Any], Any]]) -> None:
        self.name = name
        self.func = func
        ctype = ffi.typeof(func)
        args = ctype.args
        self.n_args = len(args)
        out_idx = set(_OUT_OVERRIDES.get(name, ()))
        forced_in = set(_IN_OVERRIDES.get(name, ()))
        #: (position, out kind, cffi type of its cell, the reader of its value)
        self.outs: list[tuple[int, str, Any, Callable[[Any], Any]]] = []
        self.in_kinds: list[tuple[int, str]] = []
        for i, t in enumerate(args):
            kind = _classify(t)
            is_out = i in out_idx or (i not in forced_in and kind.startswith("out:"))
            if is_out:
                out_kind = kind if kind.startswith("out:") else "out:" + kind.split(":", 1)[-1]
                self.outs.append((i, out_kind, t, reader(out_kind)))
            elif kind in ("wstr", "guid"):
                self.in_kinds.append((i, kind))
            else:
                self.in_kinds.append((i, "ptr" if t.kind in ("pointer", "function") else "int"))
        self.ret = _return_kind(ctype.result)
        #: inputs in the first places and none a GUID (most functions): a call's arguments are
        #: its inputs as given (unless one is None or kept alive), then ``out_places``
        self.inputs_first = [i for i, _kind in self.in_kinds] == list(range(len(self.in_kinds))) and \
            all(kind != "guid" for _i, kind in self.in_kinds)
        self.out_places = [None] * (self.n_args - len(self.in_kinds))


def _classify(t: Any) -> str:
    if t.kind == "pointer":
        item = t.item
        if item.kind == "primitive" and item.cname == "char16_t":
            return "wstr"
        if item.kind == "pointer":
            inner = item.item
            if inner.kind == "primitive" and inner.cname == "char16_t":
                return "out:wstr"
            return "out:handle"
        if item.kind == "primitive":
            return "out:" + str(item.cname)
        if item.kind == "struct":
            if item.cname == "HCS_PROCESS_INFORMATION":
                return "out:procinfo"
            if item.cname == "GUID":
                return "guid"
            if item.cname == "FILE_BASIC_INFO":
                return "struct:FILE_BASIC_INFO"
            return "raw"
        return "raw"
    return "raw"


def _return_kind(t: Any) -> str:
    if t.kind == "void":
        return "void"
    if t.kind == "pointer":
        return "handle"
    if t.kind == "primitive" and t.cname == "int32_t":
        return "hresult"
    return "int"


_LOADED: dict[tuple[str, int], tuple[FFI, Any]] = {}
_LOADED_LOCK = threading.Lock()


def _open_library(name: str, path: Path, generation: int) -> tuple[FFI, Any]:
    """Load a DLL once per process and keep it: HCS may call back into it at any time, so it
    must never be unloaded (cffi unloads a library when its lib object is collected)."""
    key = (str(path), generation)
    with _LOADED_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            ffi = FFI()
            ffi.include(TYPES_FFI)
            ffi.cdef(cdefs.prototypes(name, generation))
            loaded = _LOADED[key] = (ffi, ffi.dlopen(str(path)))
        return loaded


class NativeDll:
    """One HCS DLL loaded by full path, with Python-friendly calls."""

    def __init__(self, name: str, path: Path, generation: int, free: Callable[[Any], None]) -> None:
        self.name = name
        self.path = path
        self.generation = generation
        self.ffi, self.lib = _open_library(name, path, generation)
        self._free = free
        self._plans: dict[str, Optional[_Plan]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<NativeDll {self.name} gen{self.generation} from {self.path}>"

    def has(self, name: str) -> bool:
        """Whether this build exports ``name`` (optional exports must be probed)."""
        return self._plan(name) is not None

    def raw(self, name: str) -> Any:
        """The bare cffi function (for benchmarks and special cases)."""
        plan = self._plan(name)
        if plan is None:
            raise errors.NotSupported(
                name, 0x8007007F, message=f"{self.name} on this host does not export {name}",
                generation=None,
            )
        return plan.func

    def logged(self, name: str) -> Callable[..., Any]:
        """The bare cffi function, each call logged as :meth:`call` logs (for the calls that
        need their own argument handling, such as GetLayerMountPath's two calls)."""
        func = self.raw(name)

        def logged_call(*args: Any) -> Any:
            if not hcs_log.isEnabledFor(logging.DEBUG):
                return func(*args)
            started = time.perf_counter()
            ret = func(*args)
            hresult = int(ret) & 0xFFFFFFFF
            hcs_log.debug("%s(%s) -> 0x%08X in %.3f ms", name, ", ".join(_shown_input(a) for a in args), hresult,
                          (time.perf_counter() - started) * 1e3, extra={"hcs_operation": name, "hresult": hresult})
            return ret

        return logged_call

    def _plan(self, name: str) -> Optional[_Plan]:
        try:
            return self._plans[name]
        except KeyError:
            pass
        with self._lock:
            try:
                func = getattr(self.lib, name)
            except (AttributeError, NotImplementedError):
                plan = None
            else:
                plan = _Plan(self.ffi, name, func, self._reader)
            self._plans[name] = plan
            return plan

    def call(self, name: str, *inputs: Any, null_outs: Sequence[int] = ()) -> tuple[Any, ...]:
        """Call ``name`` with its input arguments; returns ``(result, *outs)``.

        HRESULTs come back unsigned. Out strings are ``str`` (or ``None``), out handles cdata
        pointers (or ``None``), out GUIDs :class:`uuid.UUID`, out process information a
        :class:`ProcessInformation`. ``null_outs`` lists parameter positions whose out pointer
        is passed as NULL (gen1 asks for a std pipe by passing a non-NULL HANDLE*); those outs
        come back as ``None``.
        """
        plan = self._plans.get(name) or self._plan(name)
        if plan is None:
            raise errors.NotSupported(name, 0x8007007F, message=f"{self.name} on this host does not export {name}")
        in_kinds = plan.in_kinds
        if len(inputs) != len(in_kinds):
            raise TypeError(f"{name} takes {len(in_kinds)} input arguments, got {len(inputs)}")
        ffi_null = self.ffi.NULL
        args: list[Any]
        if plan.inputs_first and None not in inputs and _KeepAlive not in map(type, inputs):
            args = [*inputs, *plan.out_places]  # the usual shape: inputs as they are, outs after them
        else:
            args = [None] * plan.n_args
            for (i, kind), value in zip(in_kinds, inputs):
                if value is None:  # cffi passes a str as a temporary char16_t array, for this call only
                    args[i] = 0 if kind == "int" else ffi_null
                elif kind == "guid":
                    args[i] = guid_cdata(self.ffi, value)
                elif type(value) is _KeepAlive:
                    args[i] = value.ptr
                else:
                    args[i] = value
        cells: list[tuple[Any, Callable[[Any], Any]]] = []
        for i, _kind, t, read in plan.outs:
            args[i] = cell = ffi_null if null_outs and i in null_outs else self.ffi.new(t)
            cells.append((cell, read))
        if hcs_log.isEnabledFor(logging.DEBUG):
            return self._logged_call(plan, args, inputs, cells)
        return self._finish(plan, args, cells)

    def _finish(self, plan: _Plan, args: list[Any], cells: list[tuple[Any, Callable[[Any], Any]]]) -> tuple[Any, ...]:
        """The call itself, its result as :meth:`call` returns it, and each out read (an out
        passed as NULL is None)."""
        ret = plan.func(*args)
        null = self.ffi.NULL
        if plan.ret == "hresult":
            ret &= 0xFFFFFFFF
        elif plan.ret == "handle" and ret == null:
            ret = None
        if len(cells) == 1:  # the usual shape, one out: no list made for it
            cell, read = cells[0]
            return (ret, None if cell == null else read(cell))
        return (ret, *[None if cell == null else read(cell) for cell, read in cells])

    def _logged_call(self, plan: _Plan, args: list[Any], inputs: Sequence[Any],
                     cells: list[tuple[Any, Callable[[Any], Any]]]) -> tuple[Any, ...]:
        """:meth:`_finish` with a DEBUG record: the inputs, the result, the time."""
        started = time.perf_counter()
        returned = self._finish(plan, args, cells)
        ret = returned[0]
        shown = ", ".join(_shown_input(v) for v in inputs)
        result = (f"0x{ret:08X}" if plan.ret == "hresult" else
                  ("NULL" if ret is None else "a handle") if plan.ret == "handle" else "done")
        hcs_log.debug("%s(%s) -> %s in %.3f ms", plan.name, shown, result, (time.perf_counter() - started) * 1e3,
                      extra={"hcs_operation": plan.name, "hresult": ret if plan.ret == "hresult" else None})
        return returned

    def _reader(self, kind: str) -> Callable[[Any], Any]:
        """The function that turns an out cell of ``kind`` into its Python value."""
        ffi = self.ffi
        null = ffi.NULL
        if kind == "out:wstr":
            def read_string(cell: Any) -> Optional[str]:
                p = cell[0]
                if p == null:
                    return None
                try:
                    return wide_string(ffi, p)
                finally:
                    self._free(p)
            return read_string
        if kind == "out:handle":
            return lambda cell: None if cell[0] == null else cell[0]
        if kind == "out:procinfo":
            def read_process(cell: Any) -> ProcessInformation:
                pi = cell[0]
                return ProcessInformation(int(pi.ProcessId), _handle_int(ffi, pi.StdInput),
                                          _handle_int(ffi, pi.StdOutput), _handle_int(ffi, pi.StdError))
            return read_process
        if kind == "out:guid":
            return guid_reader(ffi)
        if kind == "out:int":
            return lambda cell: bool(cell[0])
        if kind.startswith("out:struct"):
            return lambda cell: cell
        return lambda cell: int(cell[0])

    def free_string(self, p: Any) -> None:
        self._free(p)


def _shown_input(value: Any) -> str:
    """An input argument for the log: strings (ids, paths, documents) shortened, handles as such."""
    if isinstance(value, str):
        return repr(value if len(value) <= 120 else value[:117] + "...")
    if isinstance(value, (int, uuid.UUID)) or value is None:
        return str(value)
    return "<handle>"


# -- generation probe -----------------------------------------------------------------------------


def _exports(path: Path, names: Sequence[str]) -> set[str]:
    if not path.is_file():
        return set()
    ffi = FFI()
    ffi.cdef("\n".join(f"void {n}(void);" for n in names))
    try:
        lib = ffi.dlopen(str(path))
    except OSError:
        return set()
    found = set()
    for n in names:
        try:
            getattr(lib, n)
            found.add(n)
        except (AttributeError, NotImplementedError):
            pass
    return found


def probe_generations(system_dir: Path) -> list[int]:
    """API generations this system directory offers, best first (hcs-api.md section 0.1)."""
    gens = []
    if "HcsCreateOperation" in _exports(system_dir / "computecore.dll", ["HcsCreateOperation"]):
        gens.append(3)
    vm = _exports(
        system_dir / "vmcompute.dll",
        ["HcsRegisterComputeSystemCallback", "HcsCreateComputeSystem", "CreateComputeSystem"],
    )
    if "HcsRegisterComputeSystemCallback" in vm:
        gens.append(2)
    if "CreateComputeSystem" in vm:
        gens.append(1)
    if not gens and "HcsCreateComputeSystem" in vm:
        raise errors.HcsUnavailable(
            f"{system_dir / 'vmcompute.dll'} is the Windows Server 2016 TP5 pre-release API "
            "(HcsCreateComputeSystem without callbacks), which wincontainers does not support"
        )
    return gens


def _open_allocator(dll: str, path: Path, func: str) -> tuple[FFI, Any]:
    key = (str(path), 0)
    with _LOADED_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            ffi = FFI()
            ffi.include(TYPES_FFI)
            ffi.cdef(cdefs.PROTOTYPES[dll][func])
            loaded = _LOADED[key] = (ffi, ffi.dlopen(str(path)))
        return loaded


class Binding:
    """The DLLs of one generation, loaded from one system directory."""

    def __init__(self, system_dir: Path, generation: int) -> None:
        self.system_dir = system_dir
        self.generation = generation
        self._win32: Optional["Win32"] = None
        dlls = cdefs.GENERATION_EXPORTS[generation]
        allocators: dict[str, Callable[[Any], None]] = {}
        for alloc_dll, func in (("ole32.dll", "CoTaskMemFree"), ("kernel32.dll", "LocalFree")):
            path = system_dir / alloc_dll
            if not path.is_file():
                continue
            _ffi, lib = _open_allocator(alloc_dll, path, func)
            allocators[func] = getattr(lib, func)
        self.dlls: dict[str, NativeDll] = {}
        for dll in dlls:
            if dll in ("ole32.dll", "kernel32.dll"):
                continue
            path = system_dir / dll
            if not path.is_file():
                continue
            free_name = cdefs.STRING_ALLOCATOR[dll]
            if free_name not in allocators:
                raise errors.HcsUnavailable(f"{free_name} is missing from {system_dir}; cannot free HCS strings")
            self.dlls[dll] = NativeDll(dll, path, generation, allocators[free_name])

    def __repr__(self) -> str:
        return f"<Binding gen{self.generation} {self.system_dir}>"

    @property
    def win32(self) -> "Win32":
        """kernel32 and advapi32 of the same system directory (loaded on first use)."""
        if self._win32 is None:
            from wincontainers._native.win32 import Win32

            self._win32 = Win32(self.system_dir)
        return self._win32

    def dll(self, name: str) -> NativeDll:
        try:
            return self.dlls[name]
        except KeyError:
            raise errors.HcsUnavailable(f"{name} is not present in {self.system_dir}") from None

    @property
    def vmcompute(self) -> NativeDll:
        return self.dll("vmcompute.dll")

    @property
    def computecore(self) -> NativeDll:
        return self.dll("computecore.dll")

    @property
    def computestorage(self) -> NativeDll:
        return self.dll("computestorage.dll")

    @property
    def computenetwork(self) -> NativeDll:
        return self.dll("computenetwork.dll")

    # -- structures the layer API takes ----------------------------------------------------

    def driver_info(self, home_dir: str = "") -> Any:
        """A DriverInfo for the filter driver; ``HomeDir`` points to a string, never NULL."""
        info: Any = TYPES_FFI.new("DriverInfo *")
        home = TYPES_FFI.new("char16_t[]", home_dir)
        info.Flavour = 1
        info.HomeDir = home
        return _KeepAlive(info, home)

    def layer_descriptors(self, layers: Sequence[tuple[uuid.UUID, str]]) -> tuple[Any, int]:
        """A WC_LAYER_DESCRIPTOR array (nearest parent first) and its count; ``(NULL, 0)`` when empty."""
        if not layers:
            return NULL, 0
        arr = TYPES_FFI.new("WC_LAYER_DESCRIPTOR[]", len(layers))
        keep = [arr]
        for i, (guid, path) in enumerate(layers):
            TYPES_FFI.memmove(TYPES_FFI.addressof(arr[i], "LayerId"), guid.bytes_le, 16)
            arr[i].Flags = 0
            p = TYPES_FFI.new("char16_t[]", path)
            keep.append(p)
            arr[i].Path = p
        return _KeepAlive(arr, keep), len(layers)

    # -- callbacks ---------------------------------------------------------------------------

    @staticmethod
    def context(token: int) -> Any:
        """A callback context carrying a small integer token (never a Python object pointer)."""
        return TYPES_FFI.cast("void *", token)


class _KeepAlive:
    """A cdata pointer plus the buffers it points into (cffi frees memory with its owner)."""

    __slots__ = ("ptr", "keep")

    def __init__(self, ptr: Any, keep: Any) -> None:
        self.ptr = ptr
        self.keep = keep


def unwrap(value: Any) -> Any:
    return value.ptr if isinstance(value, _KeepAlive) else value


def load(system_dir: Path, generation: Optional[int] = None) -> Binding:
    """Open ``system_dir`` with ``generation`` (default: the best one it offers)."""
    if not system_dir.is_dir():
        raise errors.HcsUnavailable(f"system directory {system_dir} does not exist")
    available = probe_generations(system_dir)
    if not available:
        raise errors.HcsUnavailable(f"{system_dir} has no Host Compute Service DLLs (vmcompute.dll / computecore.dll)")
    if generation is None:
        generation = available[0]
    elif generation not in available:
        raise errors.NotSupported(
            "load",
            message=f"API generation {generation} ({errors.GENERATION_NAMES.get(generation, '?')}) "
            f"is not offered by {system_dir}",
            hint=f"this host offers generation(s) {', '.join(map(str, available))}",
        )
    return Binding(system_dir, generation)


# -- callback factories: the only place native callbacks are created ---------------------------


def notification_callback(handler: Callable[[int, int, int, Optional[str]], None]) -> Any:
    """An HCS_NOTIFICATION_CALLBACK (gen2) calling ``handler(type, token, status, data)``.

    Keep the returned object alive for as long as native code may call it.
    """
    ffi = TYPES_FFI

    def trampoline(ntype: int, context: Any, status: int, data: Any) -> None:
        text = None if data == ffi.NULL else wide_string(ffi, data)
        handler(int(ntype), int(ffi.cast("uintptr_t", context)), int(status) & 0xFFFFFFFF, text)

    return ffi.callback("HCS_NOTIFICATION_CALLBACK", trampoline)


def event_callback(handler: Callable[[int, int, Optional[str]], None]) -> Any:
    """An HCS_EVENT_CALLBACK (gen3) calling ``handler(type, token, event_data)``."""
    ffi = TYPES_FFI

    def trampoline(event: Any, context: Any) -> None:
        data = None if event.EventData == ffi.NULL else wide_string(ffi, event.EventData)
        handler(int(event.Type), int(ffi.cast("uintptr_t", context)), data)

    return ffi.callback("HCS_EVENT_CALLBACK", trampoline)
