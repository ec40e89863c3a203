"""``wincontainers selftest``: what works on this host, step by step, for users and bug reports.

A ladder of steps, each building on the ones before it:

1. ``dlls`` - the HCS DLLs load from System32; the generation probe; the Windows build;
2. ``privileges`` - the process is elevated and holds the privileges layer work needs;
3. ``images`` - a base image (GetBaseImages, or Docker's image store) to run containers from;
4. ``container`` - create, start, exec, top, stop and remove a process-isolated container;
5. ``layer`` - a container's changes exported as a layer tar and imported as a layer;
6. ``network`` - a container on the NAT network with a port mapping;
7. ``build`` - a two-step Dockerfile build, and a commit of a container of the result.

A step that fails skips only the steps that need it. Whatever a step makes has a unique
``selftest-`` name and is removed at the end, whether the step passed or not, unless ``keep``
asks to leave it for inspection. (The build records the host's base image in the image store,
as any build from it does; that record stays.) The report says per step: pass, fail or skip, the seconds it
took and, for a failure, the typed error and its hint.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import attrs

from wincontainers import errors
from wincontainers.display import RichDisplay, Shown, badge
from wincontainers.layers.collection import LAYER_PRIVILEGES

if TYPE_CHECKING:
    from wincontainers.host import Host

__all__ = ["run", "SelftestReport", "StepResult", "STEPS", "SelftestFailure"]

log = logging.getLogger("wincontainers.selftest")

PASS, FAIL, SKIP = "pass", "fail", "skip"
#: the line a container prints in step 4 (and writes in steps 5 and 7)
MARK = "wincontainers-selftest"


class SelftestFailure(errors.WincontainersError):
    """A step ran without an error from Windows, yet what it saw is not what it should be."""

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.hint = hint


@attrs.frozen
class StepResult:
    """One step of the ladder."""

    name: str
    title: str
    status: str  # "pass" | "fail" | "skip"
    seconds: float
    error: Optional[str] = None  # the typed error (its class and message) of a failed step
    hint: Optional[str] = None  # what to try, for a failed step
    detail: str = ""  # what the step saw (passed) or why it was skipped

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3), "error": self.error,
                "hint": self.hint, "detail": self.detail}


@attrs.frozen
class SelftestReport(RichDisplay):
    """What :func:`run` found; ``ok`` when no step failed."""

    version: str
    windows_build: Optional[int]
    generation: Optional[int]
    steps: tuple[StepResult, ...]
    #: objects left on the host: kept on request, or ones whose removal failed (with why)
    left: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.status != FAIL for s in self.steps)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)

    def _shown_(self) -> Shown:
        rows = [(i, s.title, badge(s.status), "-" if s.status == SKIP else f"{s.seconds:.2f} s",
                 "; ".join(p for p in (s.detail, s.error and f"error: {s.error}", s.hint and f"hint: {s.hint}") if p))
                for i, s in enumerate(self.steps, 1)]
        return Shown.table("Selftest", ("#", "Step", "Result", "Took", "Detail"), rows,
                           title=f"wincontainers {self.version}",
                           fields=(("verdict", badge("pass" if self.ok else "fail")),
                                   ("Windows build", self.windows_build), ("API generation", self.generation),
                                   ("left on the host", ", ".join(self.left) or None)))

    def to_json(self) -> dict[str, Any]:
        """The document ``selftest --json`` prints, for a bug report."""
        return {"version": self.version, "windows_build": self.windows_build, "generation": self.generation,
                "steps": [s.to_json() for s in self.steps], "left": list(self.left)}

    def table(self) -> str:
        """The report as a table (what ``selftest`` prints)."""
        head = (f"wincontainers {self.version}, Windows build {self.windows_build or '?'}, "
                f"API generation {self.generation or '?'}")
        lines = [head, ""]
        width = max(len(s.title) for s in self.steps) if self.steps else 10
        for i, s in enumerate(self.steps, 1):
            seconds = f"{s.seconds:6.2f}s" if s.status != SKIP else "      -"
            lines.append(f"{i}. {s.title.ljust(width)}  {s.status.upper():4}  {seconds}  {s.detail}".rstrip())
            if s.error:
                lines.append(f"   error: {s.error}")
            if s.hint:
                lines.append(f"   hint:  {s.hint}")
        if self.left:
            lines += ["", "left on the host:"] + [f"   {item}" for item in self.left]
        failed = [s.name for s in self.steps if s.status == FAIL]
        lines += ["", "all steps passed" if not failed and all(s.status == PASS for s in self.steps) else
                  f"failed: {', '.join(failed)}" if failed else "no step failed (some were skipped)"]
        return "\n".join(lines)


class _Skipped(Exception):
    """A step that cannot run on this host: reported skipped, with why and what would make it run."""

    def __init__(self, reason: str, hint: Optional[str] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


@attrs.frozen
class _Step:
    name: str
    title: str
    needs: tuple[str, ...]
    run: Callable[["_Selftest"], str]


class _Selftest:
    """The state the steps share: the host, the image, the names, what to remove at the end."""

    def __init__(self, host: Optional["Host"], open_host: Callable[[], "Host"], keep: bool) -> None:
        self.host_given = host
        self.open_host = open_host
        self.keep = keep
        self.tag = secrets.token_hex(4)
        self.image: Optional[str] = None  # what containers are created from (a name the host resolves)
        self._host: Optional["Host"] = host
        self._opened = False
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self._containers: list[Any] = []  # Container objects made here: their handles are closed at the end
        self.left: list[str] = []

    @property
    def host(self) -> "Host":
        assert self._host is not None
        return self._host

    def name(self, what: str) -> str:
        return f"selftest-{self.tag}-{what}"

    def later(self, what: str, undo: Callable[[], object]) -> str:
        """Remove ``what`` at the end (unless kept); returns a token for :meth:`done`."""
        self._undo.append((what, undo))
        return what

    def done(self, what: str) -> None:
        """``what`` is gone already (the step removed it itself)."""
        self._undo = [(w, u) for w, u in self._undo if w != what]

    def new_container(self, what: str, image: str, command: Optional[str] = None, **options: Any) -> Any:
        """A container named ``selftest-...-<what>``, removed at the end (unless kept)."""
        name = self.name(what)
        container = self.host.containers.create(image, command, name=name, **options)
        self._containers.append(container)
        self.later(f"container {name}", lambda: _remove_container(self.host, name))
        return container

    def finish(self) -> None:
        """Remove what the steps made, newest first; what cannot be removed is reported."""
        for container in self._containers:
            with contextlib.suppress(errors.WincontainersError):
                container.close()
        while self._undo:
            what, undo = self._undo.pop()
            if self.keep:
                self.left.append(f"{what} (kept)")
                continue
            try:
                undo()
            except Exception as exc:  # a clean-up must go on; the report names what stayed
                log.warning("could not remove %s: %s", what, exc)
                self.left.append(f"{what}: {exc}")
        if self._opened and self._host is not None:
            self._host.close()

    # -- the steps ------------------------------------------------------------------------------------

    def dlls(self) -> str:
        if self._host is None:
            self._host = self.open_host()
            self._opened = True
        host = self.host
        loaded = ", ".join(sorted(host.binding.dlls)) or "no HCS DLL"
        return f"generation {host.generation}, Windows build {host.build}; {loaded} from {host.binding.system_dir}"

    def privileges(self) -> str:
        win32 = self.host.win32
        elevated = win32.is_elevated()
        win32.require_privileges(*LAYER_PRIVILEGES, task="layer import and export")
        if not elevated:
            raise SelftestFailure("the privileges are held, but the process is not elevated: HCS will refuse it",
                                  hint="run from an elevated prompt (Run as administrator)")
        return "elevated; " + ", ".join(LAYER_PRIVILEGES) + " enabled"

    def images(self) -> str:
        host = self.host
        bases = host.base_images()
        if bases:
            chosen = next((b for b in bases if b.name.lower() == "windowsservercore"), bases[0])
            self.image = chosen.name.lower()
            return f"GetBaseImages: {', '.join(f'{b.name} {b.version}' for b in bases)}; using {chosen.name}"
        from wincontainers.images import sources

        store = host.images
        docker = sources.DockerStore(store.docker_root) if store.docker_root is not None else None
        repositories = docker.repositories() if docker is not None and docker.exists() else {}
        if not repositories:
            raise errors.NotFound(
                "selftest", subject="base images",
                message="GetBaseImages lists none and there is no image in Docker's store",
                hint="pull a base image whose build matches the host's, e.g. docker pull "
                     "mcr.microsoft.com/windows/servercore:ltsc2019 on Server 2019")
        self.image = next((r for r in sorted(repositories) if "servercore" in r), sorted(repositories)[0])
        return f"Docker's store: {len(repositories)} image(s); using {self.image}"

    def container(self) -> str:
        assert self.image is not None
        c = self.new_container("container", self.image)
        c.start(timeout=120)
        out = c.run(f'cmd /S /C "echo {MARK}"', timeout=120)
        if out.returncode != 0 or MARK.encode() not in out.stdout:
            raise SelftestFailure(f"`cmd /S /C echo` in the container exited {out.returncode} and printed "
                                  f"{out.stdout[-200:]!r}", hint="the container's console output is lost; "
                                  "attach this report to a bug report")
        pinger = c.exec('cmd /S /C "ping -t localhost"')
        processes = c.top()
        if not processes:
            raise SelftestFailure("top() lists no process while one runs")
        stopped = c.stop(timeout=30)
        pinger.wait(30)
        if c.status != "exited":
            raise SelftestFailure(f"the container is {c.status} after stop()")
        c.remove()
        self.done(f"container {c.name}")
        return f"{len(processes)} processes in top; stopped ({stopped.outcome}, {stopped.elapsed:.1f}s)"

    def hyperv(self) -> str:
        """A Hyper-V container: hello from its utility VM, its processes (the VM's PIDs), a stop."""
        routes = self.host.driver.capabilities.hyperv_routes
        if not routes:
            raise _Skipped("this host's HCS has no Hyper-V containers (TP3)")
        assert self.image is not None
        try:
            c = self.new_container("hyperv", self.image, isolation="hyperv")
        except errors.HcsError as exc:
            if exc.hresult in (0xC0370102, 0x80370102):  # HCS_E_HYPERV_NOT_INSTALLED
                raise _Skipped("the Hyper-V role is not installed (HCS_E_HYPERV_NOT_INSTALLED)",
                               hint=exc.hint or "Install-WindowsFeature Hyper-V, then reboot") from exc
            raise
        c.start(timeout=300)
        out = c.run(f'cmd /S /C "echo {MARK}"', timeout=120)
        if out.returncode != 0 or MARK.encode() not in out.stdout:
            raise SelftestFailure(f"`cmd /S /C echo` in the Hyper-V container exited {out.returncode} and printed "
                                  f"{out.stdout[-200:]!r}")
        pinger = c.exec('cmd /S /C "ping -t localhost"')
        processes = c.top()
        if pinger.pid not in {p.pid for p in processes}:
            raise SelftestFailure(f"top() does not list the process just started (PID {pinger.pid} in the VM)")
        stopped = c.stop(timeout=30)
        pinger.wait(30)
        c.remove()
        self.done(f"container {c.name}")
        return (f"{c.record.hyperv_route}: echo ok, {len(processes)} processes in the utility VM; stopped "
                f"({stopped.outcome}, {stopped.elapsed:.1f}s)")

    def layer(self) -> str:
        host = self.host
        assert self.image is not None
        c = self.new_container("layer", self.image, f'cmd /S /C "echo {MARK}> selftest.txt"', workdir="C:\\")
        c.start(timeout=120)
        exit_status = c.wait(120)
        if exit_status.exit_code != 0:
            raise SelftestFailure(f"the command that writes a file exited {exit_status.exit_code}")
        with tempfile.TemporaryDirectory(prefix="wincontainers-selftest-") as work:
            tar = Path(work) / "changes.tar"
            result = host.layers.export_tar(c.id, str(tar))
            names = _tar_names(tar)
            if "Files/selftest.txt" not in names:
                raise SelftestFailure(f"the export lacks Files/selftest.txt ({len(names)} entries)")
            layer = host.layers.import_tar(str(tar), parents=list(c.record.layers))
        self.later(f"layer {layer.id}", lambda: host.layers.destroy(layer, force=True))
        return f"exported {result.entries} entries ({result.size} bytes), imported as layer {layer.short_id}"

    def network(self) -> str:
        host = self.host
        name = self.name("network")
        assert self.image is not None
        try:
            network = host.networks.get("nat")
        except errors.NotFound:
            network = host.networks.create(name, "nat", subnet=f"172.31.{random.randint(200, 250)}.0/24")
            self.later(f"network {name}", lambda: network.remove(force=True))
        port = random.randint(20000, 40000)
        c = self.new_container("network", self.image, network=network, ports={"80/tcp": port})
        c.start(timeout=120)
        settings = c.inspect()["NetworkSettings"]
        bound = [p.get("HostPort") for p in settings["Ports"].get("80/tcp", [])]
        if str(port) not in bound:
            raise SelftestFailure(f"port 80/tcp is bound to {bound or 'nothing'}, not {port}")
        c.stop(timeout=30)
        return f"{network.name}: port {port} -> 80/tcp" + (f", address {settings['IPAddress']}"
                                                          if settings.get("IPAddress") else "")

    def build(self) -> str:
        from wincontainers.build import build, commit

        host = self.host
        store = host.images
        assert self.image is not None
        repository = self.name("image")
        cache_before = set(store.cache_keys())
        with tempfile.TemporaryDirectory(prefix="wincontainers-selftest-") as work:
            context = Path(work)
            (context / "Dockerfile").write_text(
                "# escape=`\n"
                f"FROM {self.image}\n"
                "WORKDIR C:\\selftest\n"
                f"RUN echo {MARK}> built.txt\n"
                'CMD ["cmd", "/S", "/C", "echo built by wincontainers selftest"]\n', encoding="utf-8")
            self.later(f"image {repository}:built", lambda: _remove_image(store, f"{repository}:built"))
            try:
                built = build(host, context, tags=[f"{repository}:built"], no_cache=True,
                              output=lambda _t: None).image
            finally:  # forgotten before the image goes, so that its removal frees the layers
                self.later("build cache entries",
                           lambda: store.cache_remove(set(store.cache_keys()) - cache_before))
        c = self.new_container("commit", f"{repository}:built", f'cmd /S /C "echo {MARK}> committed.txt"')
        c.start(timeout=120)
        c.wait(120)
        self.later(f"image {repository}:committed", lambda: _remove_image(store, f"{repository}:committed"))
        committed = commit(c, f"{repository}:committed")
        base_layers = len(store.layer_chain(built)) - 1
        if len(store.layer_chain(committed)) != base_layers + 2:
            raise SelftestFailure(f"the committed image has {len(store.layer_chain(committed))} layers, "
                                  f"expected {base_layers + 2}")
        return f"built {built.short_id}, committed {committed.short_id}"


def _remove_container(host: "Host", name: str) -> None:
    try:
        container = host.containers.get(name)
    except errors.NotFound:
        return
    with container:
        container.remove(force=True)


def _remove_image(store: Any, ref: str) -> None:
    try:
        store.remove(ref, force=True)
    except errors.NotFound:
        pass


def _tar_names(path: Path) -> set[str]:
    from wincontainers.layerfile import LayerReader

    with open(path, "rb") as f:
        return {entry.name for entry, _data in LayerReader(io.BufferedReader(f))}


#: the ladder, in order: (name, title, the steps it needs)
STEPS: tuple[_Step, ...] = (
    _Step("dlls", "HCS DLLs, API generation and Windows build", (), _Selftest.dlls),
    _Step("privileges", "elevation and layer privileges", ("dlls",), _Selftest.privileges),
    _Step("images", "base images", ("dlls",), _Selftest.images),
    _Step("container", "container create/start/exec/top/stop/remove", ("images",), _Selftest.container),
    _Step("hyperv", "Hyper-V container: create/start/exec/top/stop/remove", ("container",), _Selftest.hyperv),
    _Step("layer", "export changes, import as a layer", ("privileges", "container"), _Selftest.layer),
    _Step("network", "NAT network with a port mapping", ("container",), _Selftest.network),
    _Step("build", "Dockerfile build and commit", ("privileges", "container"), _Selftest.build),
)


def run(
    host: Optional["Host"] = None,
    *,
    sim: Optional[str] = None,
    root: Union[str, Path, None] = None,
    generation: Optional[int] = None,
    keep: bool = False,
    only: Sequence[str] = (),
    on_step: Optional[Callable[[StepResult], None]] = None,
) -> SelftestReport:
    """Run the self-test on ``host``, or on the host :meth:`Host.open` gives for ``sim``,
    ``root`` and ``generation`` (this machine's HCS when ``sim`` is None).

    ``keep`` leaves what the steps made for inspection (the report lists it). ``only`` runs
    those steps (and reports the others skipped). ``on_step`` hears each result as it comes.
    """
    from wincontainers import __version__
    from wincontainers.host import Host

    unknown = [s for s in only if s not in {step.name for step in STEPS}]
    if unknown:
        raise errors.BadInput(f"unknown selftest step(s) {', '.join(unknown)}: the steps are "
                              f"{', '.join(s.name for s in STEPS)}")
    state = _Selftest(host, lambda: Host.open(sim=sim, root=root, generation=generation), keep)
    results: dict[str, StepResult] = {}
    try:
        for step in STEPS:
            result = _run_step(state, step, results, only)
            results[step.name] = result
            if on_step is not None:
                on_step(result)
    finally:
        state.finish()
    opened = state._host
    return SelftestReport(
        version=__version__,
        windows_build=opened.build if opened is not None else None,
        generation=opened.generation if opened is not None else None,
        steps=tuple(results[s.name] for s in STEPS),
        left=tuple(state.left),
    )


def _run_step(state: _Selftest, step: _Step, results: dict[str, StepResult], only: Sequence[str]) -> StepResult:
    if only and step.name not in only and step.name != "dlls":
        return StepResult(step.name, step.title, SKIP, 0.0, detail="not asked for")
    missing = [n for n in step.needs if results[n].status != PASS]
    if missing:
        why = ", ".join(f"{n} {'failed' if results[n].status == FAIL else 'was skipped'}" for n in missing)
        return StepResult(step.name, step.title, SKIP, 0.0, detail=f"needs {why}")
    log.info("selftest step %s", step.name)
    started = time.monotonic()
    try:
        detail = step.run(state)
    except _Skipped as skipped:
        return StepResult(step.name, step.title, SKIP, time.monotonic() - started, detail=skipped.reason,
                          hint=skipped.hint)
    except errors.WincontainersError as exc:
        return StepResult(step.name, step.title, FAIL, time.monotonic() - started,
                          error=f"{type(exc).__name__}: {exc}", hint=getattr(exc, "hint", None))
    except Exception as exc:  # a bug of ours: reported (this is a bug-report tool), not raised
        log.exception("selftest step %s crashed", step.name)
        return StepResult(step.name, step.title, FAIL, time.monotonic() - started,
                          error=f"{type(exc).__name__}: {exc}",
                          hint="this is a wincontainers bug: attach `wincontainers selftest --json` to a report")
    return StepResult(step.name, step.title, PASS, time.monotonic() - started, detail=detail)

