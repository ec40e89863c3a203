"""A pytest plugin (``-p tests.fake_hcs``) that gives this Linux machine an "HCS" for the
tests of the real-host switch: ``Host.open()`` without ``sim`` opens the simulated Server 2019
host under ``$FAKE_MACHINE``, as ``Host.open()`` finds a real machine's service, and marks the
host ``opened_as_real``. The roots it was asked for are written to ``$OPENED`` at the end.

Only the switch is tested this way: what runs is still the simulator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import pytest

from wincontainers import Host

_opened: list[str] = []
_open = Host.open.__func__  # type: ignore[attr-defined]


def _open_machine(cls: type, *, sim: Optional[str] = None, root: Any = None, generation: Optional[int] = None) -> Host:
    assert sim is None and "WINCONTAINERS_SIM" not in os.environ, "the real lane asked for a simulated host"
    _opened.append(str(root))
    host: Host = _open(cls, sim="ws2019", root=os.environ["FAKE_MACHINE"], generation=generation)
    host.opened_as_real = True  # type: ignore[attr-defined]
    return host


Host.open = classmethod(_open_machine)  # type: ignore[method-assign,assignment]


def pytest_sessionfinish(session: pytest.Session) -> None:
    if os.environ.get("OPENED"):
        Path(os.environ["OPENED"]).write_text("\n".join(_opened))
