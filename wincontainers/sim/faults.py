"""Test controls of the simulated host: injected failures, delays and dropped notifications.

These live outside the HCS API, as a test harness would on a real host. A rule matches calls of
one exported function (optionally only from one client process or one DLL) and fires on the Nth
matching call, ``count`` times.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import threading
from typing import Any, Optional

import attrs

__all__ = ["Fail", "FaultRule", "DropRule", "Faults"]


class Fail(Exception):
    """Raised by a daemon handler: the call fails with ``hresult`` and this message."""

    def __init__(self, hresult: int, message: str = "") -> None:
        super().__init__(message)
        self.hresult = hresult & 0xFFFFFFFF
        self.message = message


@attrs.define
class FaultRule:
    id: int
    function: str
    hresult: Optional[int]
    delay: float
    nth: int
    count: int
    pid: Optional[int]
    dll: Optional[str]
    mode: str  # "return": the call fails; "async": a gen2 call is accepted, its completion fails
    seen: int = 0
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class DropRule:
    id: int
    notification: str
    nth: int
    count: int
    pid: Optional[int]
    seen: int = 0
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Faults:
    """Thread-safe rule table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 1
        self.rules: list[FaultRule] = []
        self.drops: list[DropRule] = []

    def add_fault(
        self,
        function: str,
        hresult: Optional[int],
        delay: float = 0.0,
        nth: int = 1,
        count: int = 1,
        pid: Optional[int] = None,
        dll: Optional[str] = None,
        mode: str = "return",
    ) -> int:
        if nth < 1 or count < 1:
            raise ValueError("nth and count must be at least 1")
        if mode not in ("return", "async"):
            raise ValueError("mode is 'return' or 'async'")
        with self._lock:
            rule = FaultRule(self._next, function, None if hresult is None else hresult & 0xFFFFFFFF,
                             float(delay), nth, count, pid, dll, mode)
            self._next += 1
            self.rules.append(rule)
            return rule.id

    def add_drop(self, notification: str, nth: int = 1, count: int = 1, pid: Optional[int] = None) -> int:
        if nth < 1 or count < 1:
            raise ValueError("nth and count must be at least 1")
        with self._lock:
            rule = DropRule(self._next, notification, nth, count, pid)
            self._next += 1
            self.drops.append(rule)
            return rule.id

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.drops.clear()

    def match_call(self, function: str, dll: str, pid: int) -> Optional[FaultRule]:
        with self._lock:
            fired = None
            for rule in self.rules:
                if rule.function != function or (rule.pid is not None and rule.pid != pid):
                    continue
                if rule.dll is not None and rule.dll.lower() != dll.lower():
                    continue
                rule.seen += 1
                if fired is None and rule.seen >= rule.nth and rule.fired < rule.count:
                    rule.fired += 1
                    fired = rule
            return fired

    def should_drop(self, notification: str, pid: int) -> bool:
        with self._lock:
            for rule in self.drops:
                if rule.notification != notification or (rule.pid is not None and rule.pid != pid):
                    continue
                rule.seen += 1
                if rule.seen >= rule.nth and rule.fired < rule.count:
                    rule.fired += 1
                    return True
            return False

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {"faults": [r.to_json() for r in self.rules], "drops": [d.to_json() for d in self.drops]}
