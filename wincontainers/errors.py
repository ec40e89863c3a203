"""Errors that explain themselves.

Every failure that comes from the Host Compute Service is an :class:`HcsError` that carries the
operation, the objects involved, the HRESULT (hex and symbolic name), the system message, the
result document HCS returned (parsed) and, where one is known, a hint about what to do.
Subclasses exist for what callers branch on (not found, already stopped, timeout, ...), so
``except AlreadyStopped`` works whichever API generation produced the code.

This module is the bottom of the package: it imports nothing of ours.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import attrs

__all__ = [
    "WincontainersError",
    "BadInput",
    "Cancelled",
    "HcsUnavailable",
    "DamagedRecord",
    "StorageFull",
    "MonitorError",
    "to_document",
    "from_document",
    "HcsError",
    "NotFound",
    "AlreadyStopped",
    "ElementNotFound",
    "AlreadyExists",
    "AccessDenied",
    "InvalidArgument",
    "InvalidState",
    "HcsTimeout",
    "NotSupported",
    "ServiceDisconnected",
    "UnexpectedExit",
    "Unexpected",
    "HResultInfo",
    "HRESULTS",
    "describe",
    "during",
    "hresult_name",
    "normalize_hresult",
    "raise_for_hresult",
    "S_OK",
    "PENDING",
]

S_OK = 0x00000000
#: ERROR_VMCOMPUTE_OPERATION_PENDING: a gen2 call was accepted and completes asynchronously.
PENDING = 0xC0370103


class WincontainersError(Exception):
    """Base of every error this library raises on purpose.

    ``leftovers``: what a failed operation could not undo (see :mod:`wincontainers.rollback`),
    each named with why; empty when it left nothing behind.
    """

    leftovers: tuple[str, ...] = ()

    def __str__(self) -> str:
        return _with_leftovers(super().__str__(), self.leftovers)


def _with_leftovers(text: str, leftovers: Sequence[str]) -> str:
    return f"{text} Left behind (undoing failed): {'; '.join(leftovers)}." if leftovers else text


class BadInput(WincontainersError, ValueError):
    """The caller passed something invalid; raised before any side effect."""


class Cancelled(WincontainersError):
    """A long operation was cancelled (its asyncio task, or a ``cancel`` event); what it had
    made is removed, as for a failure."""


class HcsUnavailable(WincontainersError):
    """There is no Host Compute Service here (not Windows, or the DLLs are missing)."""


class StorageFull(WincontainersError, OSError):
    """The disk that holds the library's state (or a layer) is full."""


class DamagedRecord(WincontainersError):
    """A file of the library's state cannot be read (truncated, not UTF-8, not the JSON it
    should be): ``path``, ``reason`` and what repairs it (``hint``)."""

    def __init__(self, path: Any, reason: str, hint: str) -> None:
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        super().__init__(f"{self.path} is damaged ({reason}). Hint: {hint}")


class MonitorError(WincontainersError):
    """The monitor of a detached container could not start it, or is gone (``ps`` shows such a
    container as unmonitored; its log ends where the monitor stopped writing)."""


def normalize_hresult(hr: int) -> int:
    """HRESULTs come back from cffi as signed 32-bit ints; tables use the unsigned form."""
    return hr & 0xFFFFFFFF


@attrs.frozen
class HResultInfo:
    """One row of the HRESULT table."""

    value: int
    name: str
    message: str
    category: str = ""


# category -> error class is resolved after the classes are defined.
_TABLE: Sequence[HResultInfo] = (
    # Success and generic COM/Win32 codes (hcs-api.md section 8.2).
    HResultInfo(0x00000000, "S_OK", "The operation completed successfully."),
    HResultInfo(0x8000FFFF, "E_UNEXPECTED", "Catastrophic failure", "unexpected"),
    HResultInfo(0x80004001, "E_NOTIMPL", "Not implemented", "not_supported"),
    HResultInfo(0x80004003, "E_POINTER", "Invalid pointer", "invalid_argument"),
    HResultInfo(0x80004004, "E_ABORT", "Operation aborted", "service_disconnected"),
    HResultInfo(0x80004005, "E_FAIL", "Unspecified error"),
    HResultInfo(0x80070005, "E_ACCESSDENIED", "Access is denied.", "access_denied"),
    HResultInfo(0x80070006, "E_HANDLE", "The handle is invalid.", "invalid_argument"),
    HResultInfo(0x8007000E, "E_OUTOFMEMORY", "Not enough memory resources are available to complete this operation."),
    HResultInfo(0x80070057, "E_INVALIDARG", "The parameter is incorrect.", "invalid_argument"),
    HResultInfo(0x80070002, "ERROR_FILE_NOT_FOUND", "The system cannot find the file specified.", "not_found"),
    HResultInfo(0x80070003, "ERROR_PATH_NOT_FOUND", "The system cannot find the path specified.", "not_found"),
    HResultInfo(0x8007000D, "ERROR_INVALID_DATA", "The data is invalid.", "not_supported"),
    HResultInfo(0x80070012, "ERROR_NO_MORE_FILES", "There are no more files."),
    HResultInfo(0x8007001F, "ERROR_GEN_FAILURE", "A device attached to the system is not functioning."),
    HResultInfo(0x80070020, "ERROR_SHARING_VIOLATION", "The process cannot access the file because it is being used by another process.", "invalid_state"),
    HResultInfo(0x80070032, "ERROR_NOT_SUPPORTED", "The request is not supported.", "not_supported"),
    HResultInfo(0x80070034, "ERROR_DUP_NAME", "A duplicate name exists on the network.", "already_exists"),
    HResultInfo(0x80070050, "ERROR_FILE_EXISTS", "The file exists.", "already_exists"),
    HResultInfo(0x8007006D, "ERROR_BROKEN_PIPE", "The pipe has been ended."),
    HResultInfo(0x8007007A, "ERROR_INSUFFICIENT_BUFFER", "The data area passed to a system call is too small.", "invalid_argument"),
    HResultInfo(0x8007007F, "ERROR_PROC_NOT_FOUND", "The specified procedure could not be found.", "not_supported"),
    HResultInfo(0x800700A1, "ERROR_BAD_PATHNAME", "The specified path is invalid.", "invalid_argument"),
    HResultInfo(0x800700B7, "ERROR_ALREADY_EXISTS", "Cannot create a file when that file already exists.", "already_exists"),
    HResultInfo(0x8007010B, "ERROR_DIRECTORY", "The directory name is invalid.", "invalid_argument"),
    HResultInfo(0x80070102, "WAIT_TIMEOUT", "The wait operation timed out.", "timeout"),
    HResultInfo(0x8007045B, "ERROR_SHUTDOWN_IN_PROGRESS", "A system shutdown is in progress.", "invalid_state"),
    HResultInfo(0x80070490, "ERROR_NOT_FOUND", "Element not found.", "element_not_found"),
    HResultInfo(0x800704C6, "ERROR_NO_NETWORK", "The network is not present or not started."),
    HResultInfo(0x800705B4, "ERROR_TIMEOUT", "This operation returned because the timeout period expired.", "timeout"),
    HResultInfo(0x800706BA, "RPC_S_SERVER_UNAVAILABLE", "The RPC server is unavailable.", "service_disconnected"),
    HResultInfo(0x800706BE, "RPC_S_CALL_FAILED", "The remote procedure call failed.", "service_disconnected"),
    HResultInfo(0x800710D8, "ERROR_OBJECT_NOT_FOUND", "The object identifier does not represent a valid object.", "not_found"),
    HResultInfo(0x80072726, "WSAEINVAL", "An invalid argument was supplied.", "invalid_argument"),
    HResultInfo(0x800401F3, "CO_E_CLASSSTRING", "Invalid class string"),
    # vmcompute (gen2) Win32 codes returned unchanged as HRESULTs (hcs-api.md section 8.1).
    HResultInfo(0xC0370100, "ERROR_VMCOMPUTE_TERMINATED_DURING_START", "The virtual machine or container exited unexpectedly while starting.", "unexpected_exit"),
    HResultInfo(0xC0370101, "ERROR_VMCOMPUTE_IMAGE_MISMATCH", "The container operating system does not match the host operating system."),
    HResultInfo(0xC0370102, "ERROR_VMCOMPUTE_HYPERV_NOT_INSTALLED", "A virtual machine or container cannot be started because a required feature is not installed.", "not_supported"),
    HResultInfo(0xC0370103, "ERROR_VMCOMPUTE_OPERATION_PENDING", "The call to start an asynchronous operation succeeded and the operation is performed in the background."),
    HResultInfo(0xC0370104, "ERROR_VMCOMPUTE_TOO_MANY_NOTIFICATIONS", "The supported number of notification callbacks has been exceeded."),
    HResultInfo(0xC0370105, "ERROR_VMCOMPUTE_INVALID_STATE", "The requested virtual machine or container operation is not valid in the current state.", "invalid_state"),
    HResultInfo(0xC0370106, "ERROR_VMCOMPUTE_UNEXPECTED_EXIT", "The virtual machine or container exited unexpectedly.", "unexpected_exit"),
    HResultInfo(0xC0370107, "ERROR_VMCOMPUTE_TERMINATED", "The virtual machine or container was forcefully exited.", "unexpected_exit"),
    HResultInfo(0xC0370108, "ERROR_VMCOMPUTE_CONNECT_FAILED", "A connection could not be established with the container or virtual machine.", "service_disconnected"),
    HResultInfo(0xC0370109, "ERROR_VMCOMPUTE_TIMEOUT", "The operation timed out because a response was not received from the virtual machine or container.", "timeout"),
    HResultInfo(0xC037010A, "ERROR_VMCOMPUTE_CONNECTION_CLOSED", "The connection with the virtual machine or container was closed.", "service_disconnected"),
    HResultInfo(0xC037010B, "ERROR_VMCOMPUTE_UNKNOWN_MESSAGE", "An unknown internal message was received by the virtual machine or container.", "not_supported"),
    HResultInfo(0xC037010C, "ERROR_VMCOMPUTE_UNSUPPORTED_PROTOCOL_VERSION", "The virtual machine or container does not support an available version of the communication protocol with the host.", "not_supported"),
    HResultInfo(0xC037010D, "ERROR_VMCOMPUTE_INVALID_JSON", "The virtual machine or container JSON document is invalid.", "invalid_argument"),
    HResultInfo(0xC037010E, "ERROR_VMCOMPUTE_SYSTEM_NOT_FOUND", "A virtual machine or container with the specified identifier does not exist.", "not_found"),
    HResultInfo(0xC037010F, "ERROR_VMCOMPUTE_SYSTEM_ALREADY_EXISTS", "A virtual machine or container with the specified identifier already exists.", "already_exists"),
    HResultInfo(0xC0370110, "ERROR_VMCOMPUTE_SYSTEM_ALREADY_STOPPED", "The virtual machine or container with the specified identifier is not running.", "already_stopped"),
    HResultInfo(0xC0370111, "ERROR_VMCOMPUTE_PROTOCOL_ERROR", "A communication protocol error has occurred between the virtual machine or container and the host."),
    HResultInfo(0xC0370112, "ERROR_VMCOMPUTE_INVALID_LAYER", "The container image contains a layer with an unrecognized format.", "invalid_argument"),
    HResultInfo(0xC0370113, "ERROR_VMCOMPUTE_WINDOWS_INSIDER_REQUIRED", "To use this container image, you must join the Windows Insider Program.", "not_supported"),
    # HCS_E_* HRESULTs (gen3 and newer vmcompute).
    HResultInfo(0x80370100, "HCS_E_TERMINATED_DURING_START", "The virtual machine or container exited unexpectedly while starting.", "unexpected_exit"),
    HResultInfo(0x80370101, "HCS_E_IMAGE_MISMATCH", "The container operating system does not match the host operating system."),
    HResultInfo(0x80370102, "HCS_E_HYPERV_NOT_INSTALLED", "A virtual machine or container cannot be started because a required feature is not installed.", "not_supported"),
    HResultInfo(0x80370105, "HCS_E_INVALID_STATE", "The requested virtual machine or container operation is not valid in the current state.", "invalid_state"),
    HResultInfo(0x80370106, "HCS_E_UNEXPECTED_EXIT", "The virtual machine or container exited unexpectedly.", "unexpected_exit"),
    HResultInfo(0x80370107, "HCS_E_TERMINATED", "The virtual machine or container was forcefully exited.", "unexpected_exit"),
    HResultInfo(0x80370108, "HCS_E_CONNECT_FAILED", "A connection could not be established with the container or virtual machine.", "service_disconnected"),
    HResultInfo(0x80370109, "HCS_E_CONNECTION_TIMEOUT", "The operation timed out because a response was not received from the virtual machine or container.", "timeout"),
    HResultInfo(0x8037010A, "HCS_E_CONNECTION_CLOSED", "The connection with the virtual machine or container was closed.", "service_disconnected"),
    HResultInfo(0x8037010B, "HCS_E_UNKNOWN_MESSAGE", "An unknown internal message was received by the virtual machine or container.", "not_supported"),
    HResultInfo(0x8037010C, "HCS_E_UNSUPPORTED_PROTOCOL_VERSION", "The virtual machine or container does not support an available version of the communication protocol with the host.", "not_supported"),
    HResultInfo(0x8037010D, "HCS_E_INVALID_JSON", "The virtual machine or container JSON document is invalid.", "invalid_argument"),
    HResultInfo(0x8037010E, "HCS_E_SYSTEM_NOT_FOUND", "A virtual machine or container with the specified identifier does not exist.", "not_found"),
    HResultInfo(0x8037010F, "HCS_E_SYSTEM_ALREADY_EXISTS", "A virtual machine or container with the specified identifier already exists.", "already_exists"),
    HResultInfo(0x80370110, "HCS_E_SYSTEM_ALREADY_STOPPED", "The virtual machine or container with the specified identifier is not running.", "already_stopped"),
    HResultInfo(0x80370111, "HCS_E_PROTOCOL_ERROR", "A communication protocol error has occurred between the virtual machine or container and the host."),
    HResultInfo(0x80370112, "HCS_E_INVALID_LAYER", "The container image contains a layer with an unrecognized format.", "invalid_argument"),
    HResultInfo(0x80370113, "HCS_E_WINDOWS_INSIDER_REQUIRED", "To use this container image, you must join the Windows Insider Program.", "not_supported"),
    HResultInfo(0x80370114, "HCS_E_SERVICE_NOT_AVAILABLE", "The operation could not be started because a required feature is not installed.", "not_supported"),
    HResultInfo(0x80370115, "HCS_E_OPERATION_NOT_STARTED", "The operation has not started.", "invalid_state"),
    HResultInfo(0x80370116, "HCS_E_OPERATION_ALREADY_STARTED", "The operation is already running.", "invalid_state"),
    HResultInfo(0x80370117, "HCS_E_OPERATION_PENDING", "The operation is still running."),
    HResultInfo(0x80370118, "HCS_E_OPERATION_TIMEOUT", "The operation did not complete in time.", "timeout"),
    HResultInfo(0x80370119, "HCS_E_OPERATION_SYSTEM_CALLBACK_ALREADY_SET", "An event callback has already been registered on this handle.", "already_exists"),
    HResultInfo(0x8037011A, "HCS_E_OPERATION_RESULT_ALLOCATION_FAILED", "Not enough memory available to return the result of the operation."),
    HResultInfo(0x8037011B, "HCS_E_ACCESS_DENIED", "Insufficient privileges. Only administrators or users that are members of the Hyper-V Administrators user group are permitted to access virtual machines or containers.", "access_denied"),
    HResultInfo(0x8037011C, "HCS_E_GUEST_CRITICAL_ERROR", "The virtual machine or container reported a critical error and was stopped or restarted.", "unexpected_exit"),
    HResultInfo(0x8037011D, "HCS_E_PROCESS_INFO_NOT_AVAILABLE", "The process information is not available.", "invalid_state"),
    HResultInfo(0x8037011E, "HCS_E_SERVICE_DISCONNECT", "The host compute system service has disconnected unexpectedly.", "service_disconnected"),
    HResultInfo(0x8037011F, "HCS_E_PROCESS_ALREADY_STOPPED", "The process has already exited.", "already_stopped"),
    # HCN (computenetwork.dll) codes named in hcs-api.md section 8.2.
    HResultInfo(0x803B0001, "HCN_E_NETWORK_NOT_FOUND", "The network was not found.", "not_found"),
    HResultInfo(0x803B0002, "HCN_E_ENDPOINT_NOT_FOUND", "The endpoint was not found.", "not_found"),
    HResultInfo(0x803B0013, "HCN_E_PORT_ALREADY_EXISTS", "A port mapping with this port already exists.", "already_exists"),
    HResultInfo(0x803B0014, "HCN_E_ENDPOINT_ALREADY_ATTACHED", "The endpoint is already attached.", "already_exists"),
    HResultInfo(0x803B001B, "HCN_E_INVALID_JSON", "The JSON document is invalid.", "invalid_argument"),
    HResultInfo(0x803B0020, "HCN_E_MANAGER_STOPPED", "The network service is stopped.", "service_disconnected"),
)

HRESULTS: Mapping[int, HResultInfo] = {row.value: row for row in _TABLE}


def hresult_name(hr: int) -> str:
    """Symbolic name of an HRESULT, or ``HRESULT_0x...`` when it is not in the table."""
    hr = normalize_hresult(hr)
    row = HRESULTS.get(hr)
    if row is not None:
        return row.name
    if hr & 0xFFFF0000 == 0x80070000:
        return f"HRESULT_FROM_WIN32({hr & 0xFFFF})"
    return f"HRESULT_0x{hr:08X}"


def describe(hr: int) -> str:
    """The system message for an HRESULT (the table's text; Windows would print the same)."""
    row = HRESULTS.get(normalize_hresult(hr))
    return row.message if row is not None else "Unknown error."


# -- hints ---------------------------------------------------------------------------------------

_LAYER_EXPORT_OPS = frozenset({"ExportLayer", "HcsExportLayer", "HcsExportLegacyWritableLayer"})
_LAYER_IMPORT_OPS = frozenset({"ImportLayer", "HcsImportLayer"})

_HINTS_BY_OPERATION: Mapping[tuple[str, int], str] = {
    **{
        (op, 0x8000FFFF): "the layer is still mounted or its container is still running; stop the container first."
        for op in _LAYER_EXPORT_OPS
    },
    **{
        (op, 0x8000FFFF): "vmcompute could not import one of the layer's files (WSL/LX symlinks, hard links out of "
                          "the layer chain and names that do not convert break it); `wincontainers layer check FILE` "
                          "names them."
        for op in _LAYER_IMPORT_OPS
    },
    ("DestroyLayer", 0x80070020): "the layer is still activated or in use by a container; stop and remove the container first.",
}

#: Process isolation shares the host's kernel; Hyper-V isolation runs the image's own.
_MISMATCH_HINT = ("the image was built for another Windows build than the host's: run it with Hyper-V isolation "
                  "(isolation=\"hyperv\", --isolation hyperv), or use an image whose os.version matches the host "
                  "build.")

_HINTS: Mapping[int, str] = {
    0xC0370101: _MISMATCH_HINT,
    0x80370101: _MISMATCH_HINT,
    0x80070005: "HCS needs an elevated administrator (or a member of Hyper-V Administrators); run the tool elevated.",
    0x8037011B: "HCS needs an elevated administrator (or a member of Hyper-V Administrators); run the tool elevated.",
    0xC037010E: "the compute system no longer exists (removed, or the host restarted); `wincontainers ps -a` lists what exists.",
    0x8037010E: "the compute system no longer exists (removed, or the host restarted); `wincontainers ps -a` lists what exists.",
    0xC037010F: "a compute system with this id already exists; remove it or choose another id.",
    0x8037010F: "a compute system with this id already exists; remove it or choose another id.",
    0xC0370110: "the container is not running; start it first.",
    0x80370110: "the container is not running; start it first.",
    0xC0370105: "the container is not in a state that allows this (not started, paused, or stopping).",
    0x80370105: "the container is not in a state that allows this (not started, paused, or stopping).",
    0xC0370109: "the container did not answer in time; retry with a longer timeout or force it with kill().",
    0x80370118: "the operation did not finish in time; retry with a longer timeout or force it with kill().",
    0x8037011E: "the vmcompute service is not reachable; check `sc query vmcompute` (simulator: `wincontainers sim status`).",
    0x800706BA: "the vmcompute service is not running; start it (`sc start vmcompute`; simulator: `wincontainers sim start`).",
    0xC0370102: "enable the Containers feature (and Hyper-V for Hyper-V isolation), then reboot.",
    0x80370102: "enable the Containers feature (and Hyper-V for Hyper-V isolation), then reboot.",
    0xC0370112: "the layer folder is not a valid Windows layer; import it again from its tar.",
    0x80370112: "the layer folder is not a valid Windows layer; import it again from its tar.",
    0x80070034: "a NAT port mapping for this port already exists; remove the stale mapping (Get-NetNatStaticMapping | Remove-NetNatStaticMapping).",
    0x80070002: "a path or executable does not exist (for processes: inside the container).",
    0x8007010B: "the working directory does not exist inside the container.",
    0x8007007F: "this Windows build does not export the function; a newer build or another API generation is needed.",
    0x80070020: "the file or layer is in use; stop the container that uses it first.",
}


def _hint(operation: str, hr: int) -> Optional[str]:
    return _HINTS_BY_OPERATION.get((operation, hr)) or _HINTS.get(hr)


# -- the error classes -----------------------------------------------------------------------------


def _short(identifier: str) -> str:
    """Long ids (Docker-style 64 hex) read better shortened, as `docker ps` does."""
    if len(identifier) > 16 and "/" not in identifier and "\\" not in identifier:
        return identifier[:4] + "..."
    return identifier


class HcsError(WincontainersError):
    """A call into the Host Compute Service (or its simulator) failed.

    Attributes:
        operation: the HCS function or library step that failed (``"HcsStartComputeSystem"``).
        subject: what it was done to, e.g. ``"container 27dc..."`` (may be ``None``).
        ids: every id or path involved, in full.
        hresult: the HRESULT as an unsigned 32-bit int, or ``None`` for library-level errors.
        hresult_name: its symbolic name (``"E_UNEXPECTED"``).
        system_message: the system's text for the HRESULT.
        result: HCS's result/error document, parsed (``{"Error": ..., "ErrorMessage": ...}``).
        hint: what to do about it, when known.
        context: the library task the call was a step of (``"importing layer.tar as layer 27dc..."``),
            set by :func:`during`.
    """

    context: Optional[str] = None

    def __init__(
        self,
        operation: str,
        hresult: Optional[int] = None,
        *,
        subject: Optional[str] = None,
        ids: Iterable[str] = (),
        result: Any = None,
        message: Optional[str] = None,
        hint: Optional[str] = None,
    ) -> None:
        self.operation = operation
        self.hresult = None if hresult is None else normalize_hresult(hresult)
        self.hresult_name = None if self.hresult is None else hresult_name(self.hresult)
        self.subject = subject
        self.ids = tuple(ids)
        self.result = _parse_result(result)
        self.system_message = message if message is not None else (
            describe(self.hresult) if self.hresult is not None else ""
        )
        self.hint = hint if hint is not None else (
            _hint(operation, self.hresult) if self.hresult is not None else None
        )
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.operation} on {self.subject}" if self.subject else self.operation
        text = f"{self.context}: {where} failed:" if self.context else f"{where} failed:"
        if self.hresult is not None:
            text += f" {self.hresult_name} (0x{self.hresult:08X})"
        message = self.system_message.rstrip(".")
        if message:
            text += f" {message}."
        detail = self.detail
        if detail and detail.rstrip(".") != message:
            text += f" HCS says: {detail.rstrip('.')}."
        if self.hint:
            text += f" Hint: {self.hint}"
        return _with_leftovers(text, self.leftovers)

    @property
    def detail(self) -> Optional[str]:
        """The ErrorMessage (or first ErrorEvent message) of HCS's result document."""
        doc = self.result
        if isinstance(doc, Mapping):
            msg = doc.get("ErrorMessage")
            if msg:
                return str(msg)
            for event in doc.get("ErrorEvents") or ():
                if isinstance(event, Mapping) and event.get("Message"):
                    return str(event["Message"])
        return None

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.__dict__.copy()))


@contextlib.contextmanager
def during(task: str) -> Iterator[None]:
    """Name the library task in any :class:`HcsError` raised inside (the innermost task wins):
    ``ImportLayer failed`` becomes ``importing base.tar as layer 27dc...: ImportLayer ... failed``."""
    try:
        yield
    except HcsError as exc:
        if exc.context is None:
            exc.context = task
            exc.args = (str(exc),)
        raise


def _rebuild(cls: "type[HcsError]", state: dict[str, Any]) -> "HcsError":
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


def _parse_result(result: Any) -> Any:
    if isinstance(result, str):
        text = result.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {"ErrorMessage": text}
    return result


class NotFound(HcsError):
    """The compute system, process, layer or file does not exist."""


class AlreadyStopped(HcsError):
    """The compute system or process is not running (already exited)."""


class ElementNotFound(NotFound, AlreadyStopped):
    """ERROR_NOT_FOUND: HCS uses it both for 'gone' and 'already stopped' (as hcsshim does)."""


class AlreadyExists(HcsError):
    """An object with this id or name already exists."""


class AccessDenied(HcsError):
    """The caller lacks the rights HCS requires (not elevated)."""


class InvalidArgument(HcsError):
    """HCS rejected an argument or a JSON document."""


class InvalidState(HcsError):
    """The operation is not valid in the object's current state."""


class HcsTimeout(HcsError, TimeoutError):
    """An HCS operation did not complete within its timeout."""

    def __str__(self) -> str:  # TimeoutError (OSError) would otherwise format errno/strerror
        return HcsError.__str__(self)


class NotSupported(HcsError):
    """This host, build or API generation cannot do what was asked.

    Library-level instances name the generation and the alternative, e.g.
    ``pause on container web failed: not supported by API generation 1 (TP3 string-id API).
    Hint: use stop() and start() instead``.
    """

    def __init__(
        self,
        operation: str,
        hresult: Optional[int] = None,
        *,
        generation: Optional[int] = None,
        alternative: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        self.generation = generation
        if generation is not None and "message" not in kwargs:
            kwargs["message"] = f"not supported by API generation {generation} ({GENERATION_NAMES.get(generation, '?')})"
        if alternative is not None and "hint" not in kwargs:
            kwargs["hint"] = alternative
        super().__init__(operation, hresult, **kwargs)


class ServiceDisconnected(HcsError):
    """The vmcompute service (or the simulator daemon) is unreachable or went away."""


class UnexpectedExit(HcsError):
    """The compute system exited (or was terminated) while an operation was waiting on it."""


class Unexpected(HcsError):
    """E_UNEXPECTED, "Catastrophic failure": HCS gives no reason; the hint says what usually causes it."""


GENERATION_NAMES: Mapping[int, str] = {
    1: "TP3 string-id API",
    2: "Server 2016 handle + callback API",
    3: "1809+ operation API",
}

_CATEGORY_CLASS: Mapping[str, type[HcsError]] = {
    "not_found": NotFound,
    "already_stopped": AlreadyStopped,
    "element_not_found": ElementNotFound,
    "already_exists": AlreadyExists,
    "access_denied": AccessDenied,
    "invalid_argument": InvalidArgument,
    "invalid_state": InvalidState,
    "timeout": HcsTimeout,
    "not_supported": NotSupported,
    "service_disconnected": ServiceDisconnected,
    "unexpected_exit": UnexpectedExit,
    "unexpected": Unexpected,
}


def error_class(hr: int) -> type[HcsError]:
    """The most specific error class for an HRESULT."""
    row = HRESULTS.get(normalize_hresult(hr))
    if row is None or not row.category:
        return HcsError
    return _CATEGORY_CLASS[row.category]


def from_hresult(
    operation: str,
    hr: int,
    *,
    subject: Optional[str] = None,
    ids: Iterable[str] = (),
    result: Any = None,
    hint: Optional[str] = None,
) -> HcsError:
    """Build the typed error for ``hr`` (does not raise it)."""
    cls = error_class(hr)
    return cls(operation, hr, subject=subject, ids=ids, result=result, hint=hint)


def raise_for_hresult(
    operation: str,
    hr: int,
    *,
    subject: Optional[str] = None,
    ids: Iterable[str] = (),
    result: Any = None,
) -> None:
    """Raise the typed error when ``hr`` is a failure; return quietly on success."""
    hr = normalize_hresult(hr)
    if hr & 0x80000000:
        raise from_hresult(operation, hr, subject=subject, ids=ids, result=result)


def subject_for(kind: str, identifier: str) -> str:
    """``subject_for("layer", "27dc...full")`` -> ``"layer 27dc..."`` as used in messages."""
    return f"{kind} {_short(identifier)}"


def to_document(exc: BaseException) -> dict[str, Any]:
    """An error as JSON-safe fields, to cross a process boundary (the monitor reports why it
    could not start a container this way); :func:`from_document` rebuilds it."""
    if isinstance(exc, HcsError):
        return {"class": type(exc).__name__, "operation": exc.operation, "hresult": exc.hresult,
                "subject": exc.subject, "ids": list(exc.ids), "result": exc.result,
                "message": exc.system_message, "hint": exc.hint, "context": exc.context}
    if isinstance(exc, BadInput):
        return {"class": "BadInput", "message": str(exc)}
    return {"class": "MonitorError", "message": f"{type(exc).__name__}: {exc}"}


def from_document(doc: Mapping[str, Any]) -> WincontainersError:
    """The typed error :func:`to_document` described; an unknown class becomes a MonitorError.

    An :class:`HcsError` of a class not public here (a kernel32 call's ``Win32Error``, say)
    comes back as the most specific public class for its HRESULT, with its call, path and hint:
    "The filename or extension is too long" alone would not say which file."""
    name = str(doc.get("class", ""))
    message = str(doc.get("message") or "")
    found = globals().get(name) if name in __all__ else None
    hresult = doc.get("hresult")
    if not (isinstance(found, type) and issubclass(found, HcsError)) and isinstance(doc.get("operation"), str) \
            and isinstance(hresult, int) and hresult & 0x80000000:
        found = error_class(hresult)
    if isinstance(found, type) and issubclass(found, HcsError):
        err = found(str(doc.get("operation") or "monitor"), hresult if isinstance(hresult, int) else None,
                    subject=doc.get("subject") if isinstance(doc.get("subject"), str) else None,
                    ids=[str(i) for i in doc.get("ids") or () if isinstance(i, str)], result=doc.get("result"),
                    message=message, hint=doc.get("hint") if isinstance(doc.get("hint"), str) else None)
        if isinstance(doc.get("context"), str):
            err.context = doc["context"]
            err.args = (str(err),)
        return err
    if name == "BadInput":
        return BadInput(message)
    return MonitorError(message or "the monitor failed")
