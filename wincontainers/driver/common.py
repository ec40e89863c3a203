"""Small helpers every generation's driver uses."""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Iterable, Optional, TypeVar

from wincontainers import errors

__all__ = ["check", "failed", "parse_json", "run_with_timeout", "ALREADY_STOPPED", "GONE", "TIMEOUTS"]

T = TypeVar("T")

#: "already stopped" in every spelling (hcsshim IsAlreadyStopped + gen1 shutdown of a vanished system).
ALREADY_STOPPED = frozenset({0xC0370110, 0x80370110, 0x8037011F, 0x80070490})
#: the object is gone (hcsshim IsNotExist, plus gen1's path errors for a vanished container).
GONE = frozenset({0xC037010E, 0x8037010E, 0x80070490, 0x80070003, 0x800700A1, 0x8007045B})
#: gen1 timeouts: the TP3 code for an elapsed timeout is not documented, accept each candidate.
TIMEOUTS = frozenset({0x80070102, 0x800705B4, 0xC0370109, 0x80370109, 0x80370118})


def failed(hr: int) -> bool:
    return bool(hr & 0x80000000)


def check(operation: str, hr: int, *, subject: Optional[str] = None, ids: Iterable[str] = (),
          result: Any = None) -> None:
    """Raise the typed error for a failed HRESULT, with HCS's result document attached."""
    if failed(hr):
        raise errors.from_hresult(operation, hr, subject=subject, ids=ids, result=result)


def parse_json(text: Optional[str], what: str) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise errors.HcsError(what, message=f"HCS returned a document that is not JSON: {exc}") from None


def run_with_timeout(fn: Callable[[], T], timeout: Optional[float], operation: str, subject: Optional[str]) -> T:
    """Run a blocking native call (gen1 calls block) on a worker thread, bounded by ``timeout``.

    On timeout the call keeps running in the background (native calls cannot be interrupted) and
    the caller gets an HcsTimeout.
    """
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name=f"hcs-{operation}", daemon=True).start()
    if not done.wait(timeout):
        raise errors.HcsTimeout(operation, 0x80070102, subject=subject,
                                message=f"the call did not return within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
