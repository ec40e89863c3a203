"""Simulated Windows builds: which DLLs exist and exactly which functions each exports.

A profile is what one Windows build looks like through its system directory. The client
libraries are linked with a version script written from these tables, so a function that the
build did not export is absent from the shared library, and the library's generation probe
(hcs-api.md section 0.1) runs for real against the simulated host.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import attrs

from wincontainers._native import cdefs

__all__ = ["Profile", "PROFILES", "get_profile", "profile_names"]


@attrs.frozen
class Profile:
    """One simulated Windows build."""

    name: str
    build: int
    description: str
    exports: Mapping[str, Sequence[str]]
    #: Schema versions HcsGetServiceProperties reports.
    schema_versions: Sequence[tuple[int, int]]
    #: How Hyper-V containers can be made: ``vmcompute`` (a schema v1 document with
    #: ``HvPartition``, Server 2016 on), ``computecore`` (a schema v2 utility VM hosting a
    #: container, 1809 on). TP3 had none.
    hyperv_routes: Sequence[str] = ()

    @property
    def version(self) -> str:
        return f"10.0.{self.build}.0"


_GEN2_OPTIONAL_LATER = ("HcsModifyServiceSettings", "HcsSaveComputeSystem", "HcsSignalProcess")
_GEN2_RTM = tuple(name for name in cdefs.GEN2_COMPUTE if name not in _GEN2_OPTIONAL_LATER)
_GEN2_LAYERS_RTM = (*cdefs.LAYER_API, "ExpandSandboxSize", "ProcessBaseImage", "ProcessUtilityImage")
# Functions Microsoft documents from 2004 / 2022 only: not in a 1809 computecore.
_COMPUTECORE_LATER = (
    "HcsEnumerateComputeSystemsInNamespace", "HcsCreateComputeSystemInNamespace", "HcsOpenComputeSystemInNamespace",
    "HcsWaitForComputeSystemExit", "HcsWaitForProcessExit", "HcsGetProcessorCompatibilityFromSavedState",
)
# Every build has the Win32 calls the library makes (files with backup semantics, tokens) and the
# allocators that free HCS strings.
_ALLOCATORS = {"ole32.dll": ("CoTaskMemFree",), **cdefs.WIN32_EXPORTS}

PROFILES: Mapping[str, Profile] = {
    "tp3": Profile(
        name="tp3",
        build=10514,
        description="Windows Server 2016 Technical Preview 3: gen1 string-id vmcompute API, no HNS",
        exports={
            "vmcompute.dll": (*cdefs.GEN1_COMPUTE, "CopyLayer", *cdefs.LAYER_API),
            **_ALLOCATORS,
        },
        schema_versions=((1, 0),),
    ),
    "2016": Profile(
        name="2016",
        build=14393,
        description="Windows Server 2016 RTM: gen2 handle + callback vmcompute API with HNSCall",
        exports={
            "vmcompute.dll": (*_GEN2_RTM, *_GEN2_LAYERS_RTM),
            **_ALLOCATORS,
        },
        schema_versions=((1, 0),),
        hyperv_routes=("vmcompute",),
    ),
    "ws2019": Profile(
        name="ws2019",
        build=17763,
        description="Windows Server 2019 (1809): gen3 computecore/computestorage/computenetwork, "
        "plus the gen2 vmcompute exports",
        exports={
            "vmcompute.dll": (
                *_GEN2_RTM, "HcsSignalProcess", "HcsModifyServiceSettings", *_GEN2_LAYERS_RTM, "GrantVmAccess",
            ),
            "computecore.dll": tuple(n for n in cdefs.COMPUTECORE if n not in _COMPUTECORE_LATER),
            "computestorage.dll": tuple(n for n in cdefs.COMPUTESTORAGE if n != "HcsSetupBaseOSVolume"),
            "computenetwork.dll": tuple(cdefs.COMPUTENETWORK),
            **_ALLOCATORS,
        },
        schema_versions=((1, 0), (2, 0), (2, 1)),
        hyperv_routes=("vmcompute", "computecore"),
    ),
}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (``tp3``, ``2016``, ``ws2019``)."""
    try:
        return PROFILES[str(name)]
    except KeyError:
        from wincontainers.errors import BadInput

        raise BadInput(f"unknown simulator profile {name!r}; choose one of {', '.join(PROFILES)}") from None
