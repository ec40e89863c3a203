"""The ``*_async`` methods: many containers in one loop on a few threads, callbacks waking
awaiting tasks, and cancellation that leaves nothing behind."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path
from typing import Any, Callable, Coroutine

import pytest

from wincontainers import Host, aio
from wincontainers.build.builder import BuildCancelled, build_async
from tests.conftest import SimulatedHost
from tests.conftest import ROOT
from tests.test_layers import base_layer

EXAMPLE = ROOT / "examples" / "dockerfiles" / "multistage"
N = 50


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())


def os_threads() -> int:
    """Threads of this process as the OS counts them (native callback threads included)."""
    return len(os.listdir("/proc/self/task"))


def test_fifty_containers_in_one_loop_on_a_few_threads(host: Host, clean: SimulatedHost) -> None:
    aio.shared_pool()  # the pool's threads are the constant: made on demand, counted in the peak
    peak = {"python": 0, "os": 0}
    before = {"python": threading.active_count(), "os": os_threads()}

    async def one(i: int) -> tuple[str, Any]:
        c = await host.containers.create_async("windowsservercore", name=f"many-{i}", image_command=False)
        try:
            await c.start_async()
            waiter = asyncio.ensure_future(c.wait_async(60))
            await asyncio.sleep(0.05)
            assert not waiter.done()  # it waits on the exit signal, not a thread
            stopped = await c.stop_async(10)
            exited = await waiter
            return stopped.outcome, exited
        finally:
            c.remove(force=True)

    async def sample(done: asyncio.Event) -> None:
        while not done.is_set():
            if threading.active_count() > peak["python"]:
                peak["names"] = sorted(t.name for t in threading.enumerate())  # type: ignore[assignment]
            peak["python"] = max(peak["python"], threading.active_count())
            peak["os"] = max(peak["os"], os_threads())
            await asyncio.sleep(0.005)

    async def main() -> list[tuple[str, Any]]:
        done = asyncio.Event()
        sampler = asyncio.ensure_future(sample(done))
        try:
            return await asyncio.gather(*(one(i) for i in range(N)))
        finally:
            done.set()
            await sampler

    results = run(main)
    assert len(results) == N and all(outcome in ("graceful", "forced") for outcome, _ in results)
    grown = {k: peak[k] - before[k] for k in before}
    # the pool (and on TP3 the timeout thread of each pooled call), not a thread per container
    assert grown["python"] <= 2 * aio.POOL_SIZE < 10, (before, peak)
    assert grown["os"] < 10 + 2, (before, peak)  # native callback threads too


def test_process_awaitables(host: Host, clean: SimulatedHost) -> None:
    async def main() -> None:
        with host.containers.create("windowsservercore", image_command=False) as c:
            await c.start_async()
            proc = c.exec("cmd /c echo one & echo two & echo three", text=True)
            lines = [line async for line in proc.stdout_lines()]
            assert lines == ["one \n", "two \n", "three\n"] or lines == ["one\n", "two\n", "three\n"], lines
            assert await proc.wait_async(30) == 0
            proc.close()
            talk = c.exec("cmd /c findstr x")
            out, err = await talk.communicate_async(b"a x\r\nno\r\nx b\r\n", timeout=30)
            assert out.replace(b"\r\n", b"\n") == b"a x\nx b\n" and talk.returncode == 0
            talk.close()
            slow = c.exec("cmd /c ping -n 30 127.0.0.1")
            with pytest.raises(Exception, match="timed out"):
                await slow.wait_async(0.2)
            slow.kill()
            assert await slow.wait_async(30) != 0 or slow.returncode is not None
            slow.close()
            await c.stop_async(5)

    run(main)


def test_a_cancelled_wait_leaves_no_handle_system_or_sandbox(host: Host, clean: SimulatedHost) -> None:
    layers_before = {layer.id for layer in host.layers.list()}

    async def main() -> None:
        c = await host.containers.create_async("windowsservercore", "cmd /c ping -n 300 127.0.0.1")
        try:
            await c.start_async()
            waits = [asyncio.ensure_future(c.wait_async()), asyncio.ensure_future(c.process.wait_async())]  # type: ignore[union-attr]
            await asyncio.sleep(0.1)
            for w in waits:
                w.cancel()
            for w in waits:
                with pytest.raises(asyncio.CancelledError):
                    await w
            assert c.status == "running"  # cancelling a wait leaves the container as it is
            await c.stop_async(5)
        finally:
            c.remove(force=True)

    run(main)
    assert {layer.id for layer in host.layers.list()} == layers_before


@pytest.mark.simulator("fault injection")
def test_a_cancelled_start_is_stopped_and_a_cancelled_create_removed(host: Host, sim: SimulatedHost,
                                                                    clean: SimulatedHost, profile: str) -> None:
    start = "StartComputeSystem" if profile == "tp3" else "HcsStartComputeSystem"
    create = "CreateComputeSystem" if profile == "tp3" else "HcsCreateComputeSystem"
    layers_before = {layer.id for layer in host.layers.list()}

    async def main() -> None:
        c = await host.containers.create_async("windowsservercore", image_command=False)
        try:
            sim.inject(start, None, delay=0.5)
            task = asyncio.ensure_future(c.start_async())
            await asyncio.sleep(0.15)  # the start is under way in HCS
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert c.status == "exited"  # the cancellation completed after the undo (a stop)
        finally:
            c.remove(force=True)
        sim.inject(create, None, delay=0.5)
        task = asyncio.ensure_future(host.containers.create_async("windowsservercore", image_command=False))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert host.containers.list(all=True) == []  # made, then removed before the cancellation completed

    run(main)
    assert {layer.id for layer in host.layers.list()} == layers_before


def test_layer_import_and_build_awaited_and_cancelled(host: Host, tmp_path: Path, clean: SimulatedHost) -> None:
    before = {layer.id for layer in host.layers.list()}

    async def main() -> None:
        seen: list[int] = []
        layer = await host.layers.import_tar_async(io.BytesIO(base_layer()), progress=lambda d, f: seen.append(d))
        assert seen and layer.kind == "base"
        host.layers.destroy(layer)

        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow_progress(done: int, files: int) -> None:
            loop.call_soon_threadsafe(started.set)
            threading.Event().wait(0.05)  # a slow disk: the import is under way when cancelled

        big = _many_files_tar(400)
        task = asyncio.ensure_future(host.layers.import_tar_async(io.BytesIO(big), progress=slow_progress))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert {layer.id for layer in host.layers.list()} == before  # nothing of it kept

        result = await build_async(host, EXAMPLE, tags=["aio:1"], output=lambda _t: None)
        assert result.image.repo_tags == ["aio:1"]
        lines: list[str] = []
        task = asyncio.ensure_future(build_async(host, EXAMPLE, tags=["aio:2"], no_cache=True,
                                                 output=lambda t: (lines.append(t), loop.call_soon_threadsafe(started.clear))))
        while not any("Step 2/" in line for line in lines):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not host.images.exists("aio:2") and host.containers.list(all=True) == []

    try:
        run(main)
    finally:
        for image in host.images.list():
            host.images.remove(image.id, force=True, prune=False)
        host.images.cache_clear()
        host.images.gc()
    assert {layer.id for layer in host.layers.list()} == before


def test_a_cancelled_build_raises_build_cancelled_for_the_sync_caller(host: Host) -> None:
    from wincontainers.build.builder import build

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(BuildCancelled, match="cancelled at step 0/"):
        build(host, EXAMPLE, tags=["never:1"], output=lambda _t: None, cancel=cancel)
    assert not host.images.exists("never:1")
    host.images.gc()


def _many_files_tar(count: int) -> bytes:
    """A base layer with ``count`` more small files (enough entries to cancel part-way)."""
    from wincontainers.layerfile import EntryKind, LayerEntry, LayerReader
    from tests.test_layers import tar_of

    d = dict(creation_time=130_000_000_000_000_000, last_access_time=130_000_000_000_000_000,
             last_write_time=130_000_000_000_000_000, change_time=130_000_000_000_000_000)
    entries = [(e, data.read() if data is not None else None) for e, data in LayerReader(io.BytesIO(base_layer()))]
    entries.append((LayerEntry("Files/many", EntryKind.DIRECTORY, attributes=0x10, **d), None))
    entries += [(LayerEntry(f"Files/many/f{i}.txt", EntryKind.FILE, size=5, attributes=0x20, **d), b"hello")
                for i in range(count)]
    return tar_of(entries)
