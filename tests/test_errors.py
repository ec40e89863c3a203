"""The HRESULT table and the errors built from it."""

from __future__ import annotations

import logging
import pickle
import re
from typing import TYPE_CHECKING

import pytest

from wincontainers import errors
from tests.conftest import DATA

if TYPE_CHECKING:
    from wincontainers import Host
    from wincontainers.sim.control import SimulatedHost


def _reference_hresults() -> dict[int, str]:
    """Every ``| NAME | 0x........ |`` row of hcs-api.md section 8."""
    text = (DATA / "reference" / "hcs-api.md").read_text()
    section = text[text.index("## 8. Errors"): text.index("## 9. Pitfalls")]
    rows = {}
    for name, value in re.findall(r"^\| ([A-Za-z_()0-9 =]+?) \| (0x[0-9A-F]{8}) \|", section, re.M):
        rows[int(value, 16)] = name.split("=")[0].strip()
    return rows


def test_every_reference_hresult_is_in_the_table() -> None:
    reference = _reference_hresults()
    assert len(reference) >= 70
    missing = {hex(v): n for v, n in reference.items() if v not in errors.HRESULTS}
    assert not missing
    for value, name in reference.items():
        ours = errors.HRESULTS[value].name
        if not name.startswith("HRESULT_FROM_WIN32"):
            assert ours == name, (hex(value), ours, name)
        assert errors.HRESULTS[value].message


@pytest.mark.parametrize(
    "hr,cls",
    [
        (0xC037010E, errors.NotFound), (0x8037010E, errors.NotFound),
        (0xC0370110, errors.AlreadyStopped), (0x8037011F, errors.AlreadyStopped),
        (0x80070490, errors.ElementNotFound), (0xC037010F, errors.AlreadyExists),
        (0x80070005, errors.AccessDenied), (0x8037011B, errors.AccessDenied),
        (0x80070057, errors.InvalidArgument), (0x80370118, errors.HcsTimeout),
        (0x80070032, errors.NotSupported), (0xC037010B, errors.NotSupported),
        (0x8037011E, errors.ServiceDisconnected), (0x8000FFFF, errors.Unexpected),
        (0xC0370105, errors.InvalidState), (0x80004005, errors.HcsError),
    ],
)
def test_classes_follow_hcsshim_classification(hr: int, cls: type) -> None:
    err = errors.from_hresult("Op", hr)
    assert type(err) is cls
    assert err.hresult == hr
    # signed values from cffi are normalised
    assert errors.from_hresult("Op", hr - (1 << 32)).hresult == hr


def test_element_not_found_is_both_not_found_and_already_stopped() -> None:
    err = errors.from_hresult("HcsTerminateProcess", 0x80070490)
    assert isinstance(err, errors.NotFound) and isinstance(err, errors.AlreadyStopped)


def test_message_reads_like_the_blueprint() -> None:
    err = errors.from_hresult("ExportLayer", -2147418113, subject=errors.subject_for("layer", "27dc" + "0" * 60))
    assert str(err) == (
        "ExportLayer on layer 27dc... failed: E_UNEXPECTED (0x8000FFFF) Catastrophic failure. "
        "Hint: the layer is still mounted or its container is still running; stop the container first."
    )


def test_result_document_is_parsed_and_quoted() -> None:
    doc = '{"Error": -1070137087, "ErrorMessage": "Image and host do not match.", "ErrorEvents": []}'
    err = errors.from_hresult("HcsCreateComputeSystem", 0xC0370101, subject="container web", result=doc)
    assert err.result == {"Error": -1070137087, "ErrorMessage": "Image and host do not match.", "ErrorEvents": []}
    assert "HCS says: Image and host do not match." in str(err)
    assert "Hint: the image was built for another Windows build" in str(err)
    assert err.hresult_name == "ERROR_VMCOMPUTE_IMAGE_MISMATCH"


def test_unknown_hresults_still_format() -> None:
    assert errors.hresult_name(0x80071234) == "HRESULT_FROM_WIN32(4660)"
    assert errors.hresult_name(0xC0DE0001) == "HRESULT_0xC0DE0001"
    assert "0xC0DE0001" in str(errors.from_hresult("X", 0xC0DE0001))


def test_not_supported_names_generation_and_alternative() -> None:
    err = errors.NotSupported("pause", subject="container web", generation=1, alternative="stop() it instead")
    assert str(err) == ("pause on container web failed: not supported by API generation 1 (TP3 string-id API). "
                        "Hint: stop() it instead")


def test_errors_pickle_and_timeouts_are_timeouterrors() -> None:
    err = errors.from_hresult("HcsStartComputeSystem", 0x80370118, subject="container x", ids=["abc"], result="{}")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is errors.HcsTimeout and str(again) == str(err) and again.ids == ("abc",)
    assert isinstance(err, TimeoutError)


def test_raise_for_hresult_passes_success_and_pending_is_not_a_failure_check() -> None:
    errors.raise_for_hresult("Op", 0)
    errors.raise_for_hresult("Op", 1)  # S_FALSE
    with pytest.raises(errors.NotFound):
        errors.raise_for_hresult("Op", 0xC037010E)


@pytest.mark.simulator("the simulator's call log")
def test_every_hcs_call_is_one_debug_record_with_its_result(host: "Host", sim: "SimulatedHost",
                                                           caplog: pytest.LogCaptureFixture) -> None:
    import os
    from collections import Counter

    with caplog.at_level(logging.DEBUG, logger="wincontainers.hcs"):
        sim.calls(clear=True)  # inside the window: a call the service sees from now on is logged
        with host.containers.create("windowsservercore") as container:
            container.start()
            assert container.run("cmd /c echo logged").returncode == 0
        called = sim.calls(os.getpid())  # what reached the service (waits on an operation stay in the DLL)
    records = [r for r in caplog.records if r.name == "wincontainers.hcs"]
    logged = Counter(getattr(r, "hcs_operation") for r in records)
    # Other threads of this process (finalizers of earlier tests) may call too, and finish in
    # another order than the service saw them: the log holds every call the service saw.
    missing = {name: n for name, n in Counter(called).items() if logged[name] < n}
    assert called and missing == {}, missing
    assert all(r.levelno == logging.DEBUG and getattr(r, "hcs_operation") in r.getMessage() for r in records)
    hresults = [r for r in records if getattr(r, "hresult") is not None]
    assert hresults and all(f"0x{getattr(r, 'hresult'):08X}" in r.getMessage() for r in hresults)


def test_an_error_from_another_process_keeps_its_call_path_and_hint() -> None:
    """The monitor reports why it could not start a container as a document; a kernel32 error
    (a class the public module does not name) must still say which call failed on which path."""
    from wincontainers._native.win32 import win32_error

    path = "C:\\ProgramData\\wc\\" + "x" * 250 + "-json.log"
    back = errors.from_document(errors.to_document(win32_error("CreateFileW", 206, path)))
    assert isinstance(back, errors.HcsError)
    assert back.operation == "CreateFileW" and back.subject == path and back.hresult == 0x800700CE
    assert "CreateFileW" in str(back) and path in str(back) and "MAX_PATH" in str(back)
    denied = errors.from_document(errors.to_document(win32_error("CreateFileW", 5, path)))
    assert isinstance(denied, errors.AccessDenied) and path in str(denied)

    public = errors.from_document(errors.to_document(errors.from_hresult("HcsStartComputeSystem", 0x8037011F,
                                                                         subject="container 27dc")))
    assert type(public) is errors.error_class(0x8037011F) and public.subject == "container 27dc"
    other = errors.from_document(errors.to_document(RuntimeError("boom")))
    assert isinstance(other, errors.MonitorError) and str(other) == "RuntimeError: boom"
    assert isinstance(errors.from_document({"class": "Nonsense", "operation": "x", "hresult": "bad"}),
                      errors.MonitorError)
