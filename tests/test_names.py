"""Every name and tag pattern matches the whole text: no trailing newline, no non-ASCII where
Docker's patterns are ASCII."""

from __future__ import annotations

import pytest

from wincontainers import Host, errors
from wincontainers.images.reference import ReferenceError_, parse_reference
from wincontainers.records import validate_name


@pytest.mark.parametrize("name", ["web\n", "web\r\n", "\nweb", "we b", "web\x00", "-web", "w" * 129, "wéb", ""])
def test_bad_container_names_are_refused(name: str) -> None:
    with pytest.raises(errors.BadInput):
        validate_name(name)


@pytest.mark.parametrize("ref", ["app:1\n", "app\n:1", "app:caf\u00e9", "app:\u0661\u0662", "App:1", "app:-1",
                                 "app:" + "1" * 129, "app@sha256:" + "a" * 64 + "\n"])
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises(ReferenceError_):
        parse_reference(ref)


def test_good_names_still_pass() -> None:
    validate_name("web_1.blue-2")
    assert str(parse_reference("registry:5000/team/app_x:v1.2-rc_3")) == "registry:5000/team/app_x:v1.2-rc_3"


def test_a_container_named_with_a_newline_is_refused_and_leaves_nothing(host: Host) -> None:
    with pytest.raises(errors.BadInput):
        host.containers.create("windowsservercore", name="web\n")
    assert list(host.records.all()) == [] and host.records.damaged() == []
    with pytest.raises(errors.BadInput):
        host.networks.create("net\n")
    for image in host.images.list():  # base images registered on the way
        host.images.remove(image.id, force=True, prune=False)
    host.images.gc()
    assert list(host.layers_root.iterdir()) == []
