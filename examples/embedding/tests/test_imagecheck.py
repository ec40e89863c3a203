"""imagecheck's tests: only the wincontainers.testing plugin's fixtures, on every profile."""

import pytest

from imagecheck import check_image

E_INVALID_STATE = 0x80370105  # HCS_E_INVALID_STATE


def test_a_command_that_works(sim_host, no_leaks):
    result = check_image(sim_host, "windowsservercore", "cmd /c echo hello")
    assert result.ok and result.exit_code == 0 and "hello" in result.output


def test_a_command_that_fails(sim_host, no_leaks):
    result = check_image(sim_host, "windowsservercore", "cmd /c exit 3")
    assert not result.ok and result.exit_code == 3


def test_an_unknown_image_is_reported_not_raised(sim_host, no_leaks):
    result = check_image(sim_host, "no-such-image")
    assert not result.ok and "no-such-image" in result.error


def test_a_failed_start_leaves_nothing(sim_host, fault_injection, no_leaks, sim_profile):
    start = "HcsStartComputeSystem" if sim_profile != "tp3" else "StartComputeSystem"
    with fault_injection.fail(start, E_INVALID_STATE):
        result = check_image(sim_host, "windowsservercore")
    assert not result.ok and "InvalidState" in result.error


@pytest.mark.sim_profiles("2016", "ws2019")  # TP3 has no process notifications to lose
def test_a_lost_exit_notification_does_not_hang_the_tool(sim_host, fault_injection, no_leaks):
    with fault_injection.drop("ProcessExited"):
        result = check_image(sim_host, "windowsservercore", "cmd /c echo still here", timeout=60)
    assert result.ok and "still here" in result.output
