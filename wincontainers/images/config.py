"""Image configs: a child of a parent config, with one more layer (or none) and a history entry."""

from __future__ import annotations

import copy
import datetime
import re
from typing import Any, Optional

__all__ = ["derive_config", "now", "empty_config", "parse_time"]

_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?\Z")


def parse_time(text: Any) -> Optional[datetime.datetime]:
    """An RFC 3339 time (any number of fraction digits) as an aware datetime, or None."""
    match = _TIME.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    when = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    when += datetime.timedelta(seconds=float(match.group(2) or 0))
    zone = match.group(3) or "Z"
    if zone != "Z":
        minutes = int(zone[1:3]) * 60 + int(zone[4:6])
        when -= datetime.timedelta(minutes=minutes if zone[0] == "+" else -minutes)
    return when.replace(tzinfo=datetime.timezone.utc)

_LEGACY_KEYS = ("container", "container_config", "docker_version", "parent", "id")


def now() -> str:
    """RFC 3339 UTC, as image configs carry ``created``."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def empty_config(os_version: Optional[str] = None) -> dict[str, Any]:
    config: dict[str, Any] = {"architecture": "amd64", "os": "windows", "config": {},
                              "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    if os_version:
        config["os.version"] = os_version
    return config


def derive_config(
    parent: Optional[dict[str, Any]],
    *,
    diff_id: Optional[str],
    created_by: str,
    comment: str = "",
    author: str = "",
    config: Optional[dict[str, Any]] = None,
    created: Optional[str] = None,
) -> dict[str, Any]:
    """The parent's config plus one step: a layer (``diff_id``) or an empty layer (config only).

    Docker's legacy fields (``container_config``...) are dropped: they describe the parent's
    build, not this image.
    """
    doc = copy.deepcopy(parent) if parent is not None else empty_config()
    for key in _LEGACY_KEYS:
        doc.pop(key, None)
    when = created or now()
    doc["created"] = when
    if author:
        doc["author"] = author
    if config is not None:
        doc["config"] = config
    rootfs = doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["type"] = "layers"
    diff_ids = list(rootfs.get("diff_ids") or [])
    if diff_id is not None:
        diff_ids.append(diff_id)
    rootfs["diff_ids"] = diff_ids
    entry: dict[str, Any] = {"created": when, "created_by": created_by}
    if comment:
        entry["comment"] = comment
    if author:
        entry["author"] = author
    if diff_id is None:
        entry["empty_layer"] = True
    doc["history"] = list(doc.get("history") or []) + [entry]
    return doc
