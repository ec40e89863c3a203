"""What importing a part of the package loads: the pure-Python parts load no cffi and no driver."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import sys
import {module}
loaded = sorted(m for m in sys.modules if m == "cffi" or m.startswith(("wincontainers.driver", "wincontainers.host",
                                                                       "wincontainers._native", "wincontainers.container")))
print(",".join(loaded))
"""


@pytest.mark.parametrize("module", ["wincontainers", "wincontainers.layerfile", "wincontainers.build.dockerfile",
                                    "wincontainers.build.lexer", "wincontainers.images.reference"])
def test_pure_parts_load_no_cffi_and_no_driver(module: str) -> None:
    run = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert run.stdout.strip() == "", f"import {module} loaded {run.stdout.strip()}"


def test_the_public_names_load_on_first_use() -> None:
    import wincontainers
    import wincontainers.build

    assert wincontainers.Host.__module__ == "wincontainers.host"
    assert {"Host", "Container", "BadInput"} <= set(dir(wincontainers))
    assert wincontainers.build.parse_dockerfile.__module__ == "wincontainers.build.dockerfile"
    with pytest.raises(AttributeError):
        wincontainers.NoSuchThing  # noqa: B018
    assert wincontainers.errors.BadInput is wincontainers.BadInput  # submodules as attributes, as before
    from wincontainers import Host, errors  # the old spellings still work

    assert Host is wincontainers.Host and errors.BadInput is wincontainers.BadInput


def test_one_version() -> None:
    import importlib.metadata

    import wincontainers

    assert importlib.metadata.version("wincontainers") == wincontainers.__version__


def test_no_generation_checks_above_the_drivers() -> None:
    """Code above driver/ asks the driver's capabilities, never which API generation it is."""
    import re

    package = ROOT / "wincontainers"
    below = {"driver", "_native", "sim"}
    offenders = []
    for path in package.rglob("*.py"):
        if path.relative_to(package).parts[0] in below:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"generation\s*(==|!=|<|>|\bin\b)", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_drivers_state_their_capabilities() -> None:
    from wincontainers.driver.gen1 import Gen1Driver
    from wincontainers.driver.gen2 import Gen2Driver
    from wincontainers.driver.gen3 import Gen3Driver

    assert not Gen1Driver.capabilities.lists_systems and not Gen1Driver.capabilities.statistics
    assert Gen2Driver.capabilities.reports_state and Gen3Driver.capabilities.statistics


def test_a_public_function_is_not_hidden_by_a_submodule_of_its_name() -> None:
    """Loading a package's submodule sets an attribute of that name on the package: none of
    the lazily exported names may be a submodule's (``wincontainers.build.commit`` was)."""
    import importlib
    import pkgutil

    for package in ("wincontainers", "wincontainers.build", "wincontainers.images"):
        module = importlib.import_module(package)
        submodules = {m.name for m in pkgutil.iter_modules(module.__path__)}
        assert not set(module._LAZY) & submodules, package
    run = subprocess.run([sys.executable, "-c", "import wincontainers.build.builder\n"
                          "from wincontainers.build import commit\nassert callable(commit), commit"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr


def test_public_parameters_have_types_not_any() -> None:
    """The public API says what it takes (the aliases), not Any."""
    import typing

    from wincontainers.container import Container
    from wincontainers.containers import ContainerCollection
    from wincontainers.images.store import ImageStore

    checks = [(ContainerCollection.create, ("network", "ports")), (Container.connect, ("network", "ports")),
              (Container.disconnect, ("network",)), (ImageStore.load, ("progress", "return")),
              (ImageStore.save, ("progress",)), (ImageStore.add_layer, ("progress",))]
    from wincontainers.images.archive import LoadResult  # named under TYPE_CHECKING there

    for function, names in checks:
        hints = typing.get_type_hints(function, localns={"LoadResult": LoadResult})
        for name in names:
            assert hints[name] is not typing.Any, (function.__qualname__, name)


def test_the_parameter_types_are_public_names() -> None:
    """``from wincontainers import PortsLike`` etc.: the aliases the public signatures use."""
    import typing

    import wincontainers
    from wincontainers.containers import ContainerCollection
    from wincontainers.layers import LayerCollection

    for name in ("ImageLike", "NetworkLike", "AttachLike", "PortsLike", "ProgressLike"):
        assert name in wincontainers.__all__ and getattr(wincontainers, name) is not None, name
    create = typing.get_type_hints(ContainerCollection.create)
    assert create["ports"] == wincontainers.PortsLike
    assert create["network"] == typing.Optional[wincontainers.AttachLike]
    assert typing.get_type_hints(LayerCollection.import_tar)["progress"] == wincontainers.ProgressLike
