"""Documents shared by the generations: queries, statuses, results (hcs-api.md 6.3-6.6, 4.3)."""

from __future__ import annotations

from typing import Optional

import attrs

from wincontainers.schema._document import Document, json_field

__all__ = [
    "PropertyQuery", "EnumerationQuery", "ProcessListEntry", "ContainerProperties", "ProcessStatus",
    "SystemExitStatus", "ResultError", "ErrorEvent", "ConsoleSize", "CloseHandle", "ModifyProcessRequest",
    "SignalProcessOptions", "BaseImage", "BaseImages",
]


@attrs.define
class PropertyQuery(Document):
    property_types: Optional[list[str]] = json_field()


@attrs.define
class EnumerationQuery(Document):
    ids: Optional[list[str]] = json_field()
    names: Optional[list[str]] = json_field()
    owners: Optional[list[str]] = json_field()
    types: Optional[list[str]] = json_field()


@attrs.define
class ProcessListEntry(Document):
    process_id: Optional[int] = json_field()
    image_name: Optional[str] = json_field()
    create_timestamp: Optional[str] = json_field()
    user_time100ns: Optional[int] = json_field("UserTime100ns")
    kernel_time100ns: Optional[int] = json_field("KernelTime100ns")
    memory_commit_bytes: Optional[int] = json_field()
    memory_working_set_private_bytes: Optional[int] = json_field()
    memory_working_set_shared_bytes: Optional[int] = json_field()


@attrs.define
class ContainerProperties(Document):
    id: Optional[str] = json_field()
    name: Optional[str] = json_field()
    system_type: Optional[str] = json_field()
    runtime_os_type: Optional[str] = json_field()
    owner: Optional[str] = json_field()
    state: Optional[str] = json_field()
    stopped: Optional[bool] = json_field()
    exit_type: Optional[str] = json_field()
    are_updates_pending: Optional[bool] = json_field()
    process_list: Optional[list[ProcessListEntry]] = json_field()
    statistics: Optional[dict[str, object]] = json_field()


@attrs.define
class ProcessStatus(Document):
    process_id: Optional[int] = json_field()
    exited: Optional[bool] = json_field()
    exit_code: Optional[int] = json_field()
    last_wait_result: Optional[int] = json_field()


@attrs.define
class SystemExitStatus(Document):
    status: Optional[int] = json_field()
    exit_type: Optional[str] = json_field()


@attrs.define
class ErrorEvent(Document):
    message: Optional[str] = json_field()
    stack_trace: Optional[str] = json_field()
    provider: Optional[str] = json_field()
    event_id: Optional[int] = json_field()
    flags: Optional[int] = json_field()
    source: Optional[str] = json_field()


@attrs.define
class ResultError(Document):
    error: Optional[int] = json_field()
    error_message: Optional[str] = json_field()
    error_events: Optional[list[ErrorEvent]] = json_field()


@attrs.define
class ConsoleSize(Document):
    height: Optional[int] = json_field()
    width: Optional[int] = json_field()


@attrs.define
class CloseHandle(Document):
    handle: Optional[str] = json_field()


@attrs.define
class ModifyProcessRequest(Document):
    operation: Optional[str] = json_field()
    console_size: Optional[ConsoleSize] = json_field()
    close_handle: Optional[CloseHandle] = json_field()


@attrs.define
class SignalProcessOptions(Document):
    signal: Optional[str] = json_field()


@attrs.define
class BaseImage(Document):
    name: Optional[str] = json_field()
    version: Optional[str] = json_field()
    path: Optional[str] = json_field()
    size: Optional[int] = json_field()
    created_time: Optional[str] = json_field()


@attrs.define
class BaseImages(Document):
    images: Optional[list[BaseImage]] = json_field()
