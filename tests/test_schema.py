"""JSON documents: round trips, and the example documents of hcs-api.md."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wincontainers.driver import documents
from wincontainers.driver.base import LayerRef, MappedDirectory, ProcessSpec, SystemSpec
from wincontainers.schema import Document, common, v1, v2
from tests.conftest import DATA


def _examples() -> list[dict[str, Any]]:
    text = (DATA / "reference" / "hcs-api.md").read_text()
    docs = []
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        try:
            docs.append(json.loads(block))
        except ValueError:
            continue  # HTTP-style HNS examples ("POST /endpoints/ ...")
    return docs


def _model_for(doc: dict[str, Any]) -> type[Document] | None:
    if "ProcessList" in doc:
        return common.ContainerProperties
    if "SystemType" in doc:
        return v1.ContainerConfig
    if "SchemaVersion" in doc and "Container" in doc:
        return v2.ComputeSystem
    if "CommandLine" in doc:
        return v1.ProcessConfig if "CreateStdErrPipe" in doc and doc.get("WorkingDirectory") == "C:\\" and \
            "GREETING" in json.dumps(doc) else v2.ProcessParameters
    if set(doc) == {"PropertyTypes"}:
        return common.PropertyQuery
    if "ErrorMessage" in doc:
        return common.ResultError
    if "Images" in doc:
        return common.BaseImages
    return None


EXAMPLES = [d for d in _examples() if _model_for(d) is not None]


def test_reference_has_the_examples_we_check() -> None:
    kinds = {_model_for(d) for d in EXAMPLES}
    assert {v1.ContainerConfig, v2.ComputeSystem, common.ContainerProperties, common.ResultError,
            common.PropertyQuery, common.BaseImages} <= kinds
    assert len(EXAMPLES) >= 9


@pytest.mark.parametrize("doc", EXAMPLES, ids=lambda d: ",".join(list(d)[:2]))
def test_reference_examples_round_trip_field_for_field(doc: dict[str, Any]) -> None:
    model = _model_for(doc)
    assert model is not None
    parsed = model.from_json(doc)
    assert parsed.to_json() == doc
    if model is not common.ContainerProperties:  # Statistics is kept as a plain mapping
        assert not _extras(parsed), f"keys the model does not know: {_extras(parsed)}"


def _extras(doc: Any) -> list[str]:
    found = []
    if isinstance(doc, Document):
        found += list(doc.extra)
        for value in vars(doc).values() if hasattr(doc, "__dict__") else [getattr(doc, a) for a in doc.__slots__]:
            found += _extras(value)
    elif isinstance(doc, list):
        for item in doc:
            found += _extras(item)
    return found


def _example(pred: Any) -> dict[str, Any]:
    return next(d for d in EXAMPLES if pred(d))


LAYER = LayerRef(uuid.UUID("9a8b7c6d-5e4f-5a3b-9c2d-1e0f9a8b7c6d"), "C:\\wc\\layers\\windowsservercore")


def test_gen2_container_document_matches_the_reference_for_the_same_inputs() -> None:
    example = _example(lambda d: d.get("Name") == "wc-5b20e911")
    spec = SystemSpec(
        id="wc-5b20e911", name="wc-5b20e911", hostname="web01",
        volume_path="\\\\?\\Volume{1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5}\\",
        layer_folder="C:\\wc\\layers\\wc-5b20e911", layers=(LAYER,),
        mapped_directories=(MappedDirectory("C:\\data\\site", "C:\\inetpub\\wwwroot", True),),
        memory_mb=2048, cpu_count=2, terminate_on_last_handle_close=True,
        endpoints=("3e5c7a91-0b2d-4f6e-8a1c-9d7b5e3f1a20",),
    )
    ours = documents.container_v1(spec).to_json()
    assert ours == example
    # Without a network: no EndpointList, and no DNS setting for it either.
    bare = documents.container_v1(attrs.evolve(spec, endpoints=())).to_json()
    assert bare == {k: v for k, v in example.items() if k not in ("EndpointList", "AllowUnqualifiedDNSQuery")}


def test_gen3_container_document_matches_the_reference_for_the_same_inputs() -> None:
    example = _example(lambda d: "SchemaVersion" in d and "Container" in d)
    spec = SystemSpec(
        id="x", name="x", hostname="web01", volume_path="\\\\?\\Volume{1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5}",
        layer_folder="C:\\wc\\layers\\x", layers=(LAYER,),
        mapped_directories=(MappedDirectory("C:\\data\\site", "C:\\inetpub\\wwwroot", True),),
        memory_mb=2048, cpu_count=2, terminate_on_last_handle_close=True,
        network_namespace="b7d64e2c-0f1a-4c3b-9e8d-7a6b5c4d3e2f",
    )
    ours = documents.container_v2(spec).to_json()
    assert ours == example
    expected = json.loads(json.dumps(example))
    del expected["Container"]["Networking"]
    assert documents.container_v2(attrs.evolve(spec, network_namespace=None)).to_json() == expected


def test_process_document_matches_the_reference() -> None:
    example = _example(lambda d: d.get("CommandLine", "").startswith("cmd.exe"))
    spec = ProcessSpec(example["CommandLine"], "C:\\", example["Environment"])
    assert documents.process_v1(spec, pipe_flags=True).to_json() == example
    gen1 = documents.process_v1(spec, pipe_flags=False).to_json()
    assert not any(k.startswith("CreateStd") for k in gen1)


names = st.text(min_size=1, max_size=12)


@given(
    name=names, memory=st.none() | st.integers(1, 1 << 20),
    layers=st.lists(st.tuples(st.uuids(), names), max_size=3),
    env=st.dictionaries(names, st.text(max_size=20), max_size=4),
)
def test_documents_round_trip(name: str, memory: int | None, layers: list[tuple[uuid.UUID, str]],
                              env: dict[str, str]) -> None:
    config = v1.ContainerConfig(name=name, memory_maximum_in_mb=memory,
                                layers=[v1.Layer(id=str(u), path=p) for u, p in layers])
    assert v1.ContainerConfig.loads(config.dumps()) == config
    process = v2.ProcessParameters(command_line=name, environment=env, console_size=[24, 80])
    assert v2.ProcessParameters.loads(process.dumps()) == process


def test_keys_match_case_insensitively_and_unknown_keys_survive() -> None:
    doc = v1.ContainerConfig.from_json({"name": "a", "LAYERS": [{"id": "x", "Path": "p"}], "FutureKey": 1})
    assert doc.name == "a" and doc.layers == [v1.Layer(id="x", path="p")]
    assert doc.to_json() == {"SystemType": "Container", "Name": "a", "Layers": [{"ID": "x", "Path": "p"}],
                             "FutureKey": 1}
