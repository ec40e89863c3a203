"""Codecs and parsers: the simulator wire format, Windows command lines, tasklist output."""

from __future__ import annotations

import signal
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wincontainers.driver.gen1 import parse_tasklist_csv

from tests.conftest import skip_module_without_simulator

skip_module_without_simulator()
pytestmark = pytest.mark.simulator("the simulator's wire format and process codecs")

from wincontainers.sim import wire, winproc

# Any UTF-16 code unit sequence, lone surrogates included.
wide_text = st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=30).map("".join)
values = st.recursive(
    st.none() | st.integers(-(1 << 63), (1 << 63) - 1) | wide_text | st.binary(max_size=40)
    | st.binary(min_size=16, max_size=16).map(wire.Guid),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


def as_utf16(v: object) -> object:
    """What survives UTF-16: adjacent lone surrogates that form a pair read back as one character."""
    if isinstance(v, str):
        return v.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(v, list):
        return [as_utf16(x) for x in v]
    return v


@given(st.lists(values, max_size=6))
def test_wire_values_round_trip(items: list[object]) -> None:
    payload = b"".join(wire.encode_value(v) for v in items)
    decoded, end = wire.decode_values(payload, 0, len(items))
    assert decoded == as_utf16(items) and end == len(payload)


@given(st.integers(0, 1 << 40), st.integers(-(1 << 31), (1 << 32) - 1), st.lists(values, max_size=4))
def test_responses_parse(req_id: int, hr: int, outs: list[object]) -> None:
    msg = wire.encode_response(req_id, hr & 0xFFFFFFFF, outs)
    import struct

    rid, signed = struct.unpack_from("<Qq", msg, 1)
    (count,) = struct.unpack_from("<H", msg, 17)
    decoded, _ = wire.decode_values(msg, 19, count)
    assert rid == req_id and signed & 0xFFFFFFFF == hr & 0xFFFFFFFF and decoded == as_utf16(outs)


def test_guid_text_is_windows_field_order() -> None:
    raw = bytes.fromhex("78563412" "3412" "7856" "0102030405060708")
    assert str(wire.Guid(raw)) == "12345678-1234-5678-0102-030405060708"
    assert wire.Guid.parse("12345678-1234-5678-0102-030405060708").raw == raw


args = st.lists(st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12),
                min_size=1, max_size=6).filter(lambda a: a[0] != "" and '"' not in a[0] and not a[0].startswith((" ", "\t")))


@given(args)
def test_command_line_parsing_inverts_list2cmdline(argv: list[str]) -> None:
    line = subprocess.list2cmdline(argv)
    parsed = winproc.command_line_to_argv(line)
    # argv[0] follows the program-name rule (no backslash escapes); the rest round-trips exactly.
    assert parsed[1:] == argv[1:]


def test_exit_codes_look_like_windows() -> None:
    assert winproc.exit_code_from_status(3) == 3
    assert winproc.exit_code_from_status(-int(signal.SIGKILL)) == 1
    assert winproc.exit_code_from_status(-int(signal.SIGINT)) == 0xC000013A
    assert winproc.exit_code_from_status(-int(signal.SIGSEGV)) == 0xC0000005


def test_tasklist_csv() -> None:
    text = '"cmd.exe","4120","Services","0","1,064 K"\r\n"sleep.exe","4122","Services","0","12,345 K"\r\n'
    rows = parse_tasklist_csv(text)
    assert rows == [
        {"ProcessId": 4120, "ImageName": "cmd.exe", "MemoryWorkingSetPrivateBytes": 1064 * 1024},
        {"ProcessId": 4122, "ImageName": "sleep.exe", "MemoryWorkingSetPrivateBytes": 12345 * 1024},
    ]
