"""What a handler of the simulated service works with: the HRESULTs it answers, a call
(:class:`Call`: its connection, which outs it wants, its gen3 operation), its :class:`Reply`, and
the registry of handlers (:func:`api`: per DLL and export, with the marshalling format string
the C client uses, see native/wcsim.h).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
import os
import signal
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import attrs

from wincontainers.sim.faults import Fail
from wincontainers.sim.wire import Guid

if TYPE_CHECKING:
    from wincontainers.sim.daemon import Connection

__all__ = ["S_OK", "PENDING", "Reply", "Call", "Api", "HANDLERS", "api", "close_fd", "loads_document", "get_key", "SIGNALS", "signed32", "guid_of"]


S_OK = 0
PENDING = 0xC0370103
E_NOTIMPL = 0x80004001
E_INVALIDARG = 0x80070057
E_HANDLE = 0x80070006
E_ABORT = 0x80004004
ERROR_FILE_NOT_FOUND = 0x80070002
ERROR_NOT_FOUND = 0x80070490
ERROR_PATH_NOT_FOUND = 0x80070003
ERROR_NOT_SUPPORTED = 0x80070032
ERROR_SHARING_VIOLATION = 0x80070020
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
    "IMAGE_MISMATCH": (0xC0370101, 0x80370101),
    "TERMINATED_DURING_START": (0xC0370100, 0x80370100),
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
                close_fd(fd)
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


def close_fd(fd: int) -> None:
    """Close a descriptor that may be closed already."""
    try:
        os.close(fd)
    except OSError:
        pass


def loads_document(text: Optional[str], call: Call, what: str) -> Any:
    """A JSON document a client sent; INVALID_JSON as HCS answers when it is not one."""
    if text is None or not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise call.fail("INVALID_JSON", f"the {what} document is not valid JSON: {exc}") from None


def get_key(doc: Any, *keys: str, default: Any = None) -> Any:
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


#: Signals for HcsSignalProcess' {"Signal": ...}
SIGNALS = {
    "ctrlc": signal.SIGINT,
    "ctrlbreak": signal.SIGQUIT,
    "ctrlclose": signal.SIGHUP,
    "ctrllogoff": signal.SIGHUP,
    "ctrlshutdown": signal.SIGTERM,
}




def signed32(v: int) -> int:
    """An HRESULT as the signed 32-bit value a notification carries."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def guid_of(value: Any) -> str:
    """A GUID argument as text (empty for none)."""
    return str(value) if isinstance(value, Guid) else ""
