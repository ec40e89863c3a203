"""A simulated host's folders are its user's own: no link, no other owner, no other writer."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wincontainers import errors
from tests.conftest import SimulatedHost, skip_module_without_simulator

skip_module_without_simulator()
pytestmark = pytest.mark.simulator("the simulated host's own folders")

from wincontainers.sim.private import open_private, private_folder


def _another_users_folder(tmp_path: Path) -> Path:
    if os.getuid() == 0:
        folder = tmp_path / "theirs"
        folder.mkdir()
        os.chown(folder, 65534, 65534)
        return folder
    return Path("/usr")  # root's


def test_a_root_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = _another_users_folder(tmp_path)
    with pytest.raises(errors.BadInput, match="belongs to another user"):
        SimulatedHost("ws2019", theirs).start()


def test_a_root_others_may_write_is_refused_and_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(errors.BadInput, match="written by other users"):
        SimulatedHost("ws2019", shared).start()
    assert list(shared.iterdir()) == [] and stat.S_IMODE(shared.stat().st_mode) == 0o777


def test_a_root_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    with pytest.raises(errors.BadInput, match="symbolic link"):
        private_folder(tmp_path / "link", "root")


def test_a_planted_log_link_is_not_followed(tmp_path: Path) -> None:
    """Another user's link where the daemon's log goes: the start fails, the target is untouched."""
    root = tmp_path / "root"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    private_folder(root, "root")
    private_folder(root / "daemon", "daemon folder")
    os.symlink(victim, root / "daemon" / "daemon.log")
    with pytest.raises(errors.BadInput, match="link"):
        SimulatedHost("ws2019", root).start()
    assert victim.read_bytes() == b"precious"
    with pytest.raises(errors.BadInput):
        open_private(root / "daemon" / "daemon.log")


def test_a_new_root_and_what_it_holds_are_private(tmp_path: Path) -> None:
    from wincontainers import Host

    root = tmp_path / "fresh"
    sim = SimulatedHost("ws2019", root).start()
    try:
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert stat.S_IMODE((root / "daemon").stat().st_mode) == 0o700
        assert stat.S_IMODE(sim.socket_path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE((root / "daemon" / "daemon.log").stat().st_mode) == 0o600
        host = Host.open(sim="ws2019", root=root)
        try:
            assert host.layers_root.resolve().is_relative_to(root.resolve())  # nobody else may even reach it
        finally:
            host.close()
    finally:
        sim.stop()
