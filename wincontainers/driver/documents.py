"""Generation-neutral specs -> the JSON documents each generation takes."""

from __future__ import annotations

from typing import Sequence

from wincontainers.driver.base import LayerRef, ProcessSpec, SystemSpec
from wincontainers.schema import common, v1, v2

__all__ = ["container_v1", "container_v2", "process_v1", "process_v2", "layer_data"]


def container_v1(spec: SystemSpec) -> v1.ContainerConfig:
    """Schema v1 (TP3 and Server 2016): VolumePath without its trailing backslash."""
    return v1.ContainerConfig(
        system_type="Container",
        name=spec.name,
        owner=spec.owner,
        volume_path=spec.volume_path.rstrip("\\"),
        ignore_flushes_during_boot=True if spec.first_boot else None,
        layer_folder_path=spec.layer_folder,
        layers=[v1.Layer(id=str(layer.id), path=layer.path) for layer in spec.layers],
        host_name=spec.hostname,
        mapped_directories=[
            v1.MappedDirectory(host_path=m.host_path, container_path=m.container_path, read_only=m.read_only)
            for m in spec.mapped_directories
        ] or None,
        hv_partition=False,
        memory_maximum_in_mb=spec.memory_mb,
        processor_count=spec.cpu_count,
        terminate_on_last_handle_closed=spec.terminate_on_last_handle_close or None,
        endpoint_list=list(spec.endpoints) or None,
        allow_unqualified_dns_query=True if spec.endpoints else None,
        devices=list(spec.nat_devices) or None,
    )


def container_v2(spec: SystemSpec) -> v2.ComputeSystem:
    """Schema v2.1 (1809+): Storage.Path keeps the trailing backslash."""
    volume = spec.volume_path if spec.volume_path.endswith("\\") else spec.volume_path + "\\"
    return v2.ComputeSystem(
        owner=spec.owner,
        schema_version=v2.SCHEMA_2_1(),
        container=v2.Container(
            guest_os=v2.GuestOs(host_name=spec.hostname),
            storage=v2.Storage(
                layers=[v2.Layer(id=str(layer.id), path=layer.path) for layer in spec.layers],
                path=volume,
            ),
            mapped_directories=[
                v2.MappedDirectory(host_path=m.host_path, container_path=m.container_path, read_only=m.read_only)
                for m in spec.mapped_directories
            ] or None,
            memory=v2.Memory(size_in_mb=spec.memory_mb) if spec.memory_mb else None,
            processor=v2.Processor(count=spec.cpu_count) if spec.cpu_count else None,
            networking=v2.Networking(allow_unqualified_dns_query=True, namespace=spec.network_namespace)
            if spec.network_namespace else None,
        ),
        should_terminate_on_last_handle_closed=spec.terminate_on_last_handle_close or None,
    )


def process_v1(spec: ProcessSpec, *, pipe_flags: bool) -> v1.ProcessConfig:
    """v1 process parameters; gen1 (TP3) asks for pipes with out-parameters, not flags."""
    return v1.ProcessConfig(
        command_line=spec.command_line,
        working_directory=spec.working_directory,
        environment=dict(spec.environment) if spec.environment else None,
        emulate_console=spec.console,
        console_size=list(spec.console_size) if spec.console and spec.console_size else None,
        create_std_in_pipe=True if pipe_flags else None,
        create_std_out_pipe=True if pipe_flags else None,
        create_std_err_pipe=(not spec.console) if pipe_flags else None,
        user=spec.user,
    )


def process_v2(spec: ProcessSpec) -> v2.ProcessParameters:
    return v2.ProcessParameters(
        command_line=spec.command_line,
        working_directory=spec.working_directory,
        environment=dict(spec.environment) if spec.environment else None,
        emulate_console=spec.console,
        console_size=list(spec.console_size) if spec.console and spec.console_size else None,
        create_std_in_pipe=True,
        create_std_out_pipe=True,
        create_std_err_pipe=not spec.console,
        user=spec.user,
    )


def layer_data(parents: Sequence[LayerRef]) -> v2.LayerData:
    """computestorage's LayerData: the parent chain, nearest first."""
    return v2.LayerData(
        schema_version=v2.SCHEMA_2_1(),
        layers=[v2.Layer(id=str(layer.id), path=layer.path) for layer in parents],
    )


def console_size_request(height: int, width: int) -> common.ModifyProcessRequest:
    return common.ModifyProcessRequest(operation="ConsoleSize", console_size=common.ConsoleSize(height=height, width=width))


def close_stdin_request() -> common.ModifyProcessRequest:
    return common.ModifyProcessRequest(operation="CloseHandle", close_handle=common.CloseHandle(handle="StdIn"))
