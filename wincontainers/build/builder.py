"""Images from Dockerfiles, step by step, as Docker's classic builder does on Windows.

Each ``RUN`` runs in a container over the layers so far and its changes become a layer (the
container is stopped, exported, imported, removed); ``COPY``/``ADD`` write the files into a
prepared sandbox over those layers; the other instructions only change the config. Every step
is cached under a key made of the previous step's key, the instruction, the build arguments in
scope and, for ``COPY``/``ADD``, a digest of the files, so an unchanged rebuild runs no
container. A step that fails removes its container and sandbox and raises
:class:`BuildStepFailed` with the step, the command, its exit code and its last output lines.

Why one file: a build is one sequence (stages, the cache key chain, the lease held from the first
step to the image); the parts that stand alone already live beside it (context, volume,
instructions, commits).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import json
import os
import secrets
import tarfile
import time
from collections import deque
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import attrs

from wincontainers.progress import ProgressLike, operation_progress
from wincontainers import errors
from wincontainers.display import RichDisplay, Shown, short_id
from wincontainers.build.commits import commit_layer
from wincontainers.build.context import BuildContext, DockerIgnore, open_no_follow
from wincontainers.build.dockerfile import Dockerfile, Instruction, parse_dockerfile
from wincontainers.build.instructions import (
    DEFAULT_SHELL,
    Arg,
    Cmd,
    Copy,
    From,
    Run,
    Workdir,
    apply_to_config,
    command_line,
    normalize_workdir,
    typed,
)
from wincontainers.build.lexer import ShellLex
from wincontainers.build.volume import CopyEntry, Volume, context_entries
from wincontainers.images.config import derive_config
from wincontainers.images.model import ImageNotFound
from wincontainers.images.sources import published_build
from wincontainers.images.store import Image, ImageStore, LayerRecord, Lease, canonical_json, chain_id, digest_of
from wincontainers.process import Process, TimeoutExpired
from wincontainers.container_types import check_isolation
from wincontainers.records import ContainerRecord
from wincontainers.layerfile.validate import Report
from wincontainers.layers.checked import LayerRejected
from wincontainers import aio

if TYPE_CHECKING:
    from wincontainers.container import Container
    from wincontainers.host import Host

log = logging.getLogger("wincontainers.build")

__all__ = ["build", "build_async", "BuildResult", "BuildStep", "BuildStepFailed", "BuildCancelled"]

#: ARGs Docker predefines (usable without declaring them)
_PREDEFINED_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_TAIL_LINES = 10


class BuildStepFailed(errors.WincontainersError):
    """A build step failed: ``step`` (1-based), ``instruction``, ``command``, ``exit_code``,
    ``output_tail`` (its last lines); ``report``, when the step's layer was refused, the layer
    check's report (every file named). No container or partial layer is left."""

    def __init__(self, step: int, total: int, instruction: str, command: Optional[str], exit_code: Optional[int],
                 output_tail: Sequence[str], reason: str = "", report: Optional[Report] = None) -> None:
        self.step = step
        self.report = report
        self.instruction = instruction
        self.command = command
        self.exit_code = exit_code
        self.output_tail = list(output_tail)
        text = f"step {step}/{total} `{instruction}` failed"
        if command is not None and exit_code is not None:
            text += f": the command `{command}` returned a non-zero code: {exit_code}"
        if reason:
            text += f": {reason}"
        if self.output_tail:
            text += "\nLast lines of its output:\n" + "\n".join(f"  {line}" for line in self.output_tail)
        super().__init__(text)


class BuildCancelled(errors.Cancelled):
    """The build was cancelled (``build(cancel=...)`` set, or ``build_async`` cancelled); what
    it made is removed, as for a failed build."""

    def __init__(self, step: int, total: int) -> None:
        super().__init__(f"the build was cancelled at step {step}/{total}; what it made was removed")
        self.step = step


@attrs.frozen
class BuildStep:
    number: int
    instruction: str
    cached: bool
    seconds: float
    diff_id: Optional[str] = None


@attrs.frozen
class BuildResult(RichDisplay):
    """What :func:`build` made: the image, each step (cached or run, how long), and how many
    containers ran."""

    image: Image
    steps: tuple[BuildStep, ...]
    containers_run: int

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.steps if s.cached)

    def _shown_(self) -> Shown:
        rows = [(s.number, s.instruction if len(s.instruction) <= 80 else s.instruction[:77] + "...",
                 "cached" if s.cached else f"{s.seconds:.2f} s", short_id(s.diff_id)) for s in self.steps]
        return Shown.table("Build", ("Step", "Instruction", "Took", "Layer"), rows,
                           title=self.image.repo_tags[0] if self.image.tags else short_id(self.image.id),
                           fields=(("image", short_id(self.image.id)), ("tags", ", ".join(self.image.repo_tags) or None),
                                   ("steps", f"{len(self.steps)} ({self.cache_hits} cached)"),
                                   ("containers run", self.containers_run)))


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@attrs.define
class _Stage:
    index: int
    name: Optional[str]
    nodes: list[Instruction]
    config: dict[str, Any] = attrs.field(factory=dict)
    layers: list[LayerRecord] = attrs.field(factory=list)
    args: dict[str, str] = attrs.field(factory=dict)
    key: str = ""
    cmd_set: bool = False
    image: Optional[Image] = None


def _env_map(config: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (config.get("config") or {}).get("Env") or []:
        if isinstance(item, str) and "=" in item:
            key, value = item.split("=", 1)
            out[key] = value
    return out


def _key(*parts: str) -> str:
    return digest_of("\n".join(parts).encode("utf-8", "surrogatepass"))


class _Builder:
    def __init__(self, host: "Host", context: BuildContext, dockerfile: Dockerfile, *, build_args: Mapping[str, str],
                 no_cache: bool, output: Callable[[str], None], progress: ProgressLike,
                 isolation: Optional[str] = None, pull: bool = False) -> None:
        self.host = host
        self.isolation = isolation
        self.pull = pull
        self.store: ImageStore = host.images
        self.context = context
        self.dockerfile = dockerfile
        self.build_args = dict(build_args)
        self.no_cache = no_cache
        self.output = output
        self.progress = progress
        self.steps: list[BuildStep] = []
        self.containers_run = 0
        #: set by the caller (build's ``cancel``): the build stops at its next step or check
        self.cancel: Optional[threading.Event] = None
        self.total = 0
        self.step_number = 0
        #: held from the first step until the image is in the index: every layer the build
        #: uses or makes, every folder it creates (a concurrent gc keeps them)
        self.lease: Optional[Lease] = None
        self.used_args: set[str] = set()

    # -- stages ------------------------------------------------------------------------------------

    def stages(self) -> tuple[dict[str, str], list[_Stage]]:
        global_args: dict[str, str] = {}
        stages: list[_Stage] = []
        for node in self.dockerfile.instructions:
            if node.name == "from":
                stages.append(_Stage(len(stages), None, [node]))
            elif not stages:
                if node.name != "arg":
                    raise errors.BadInput(f"Dockerfile line {node.start_line}: {node.keyword.upper()} before the "
                                          "first FROM (only ARG may come first)")
                command = typed(node, global_args, escape=self.dockerfile.escape)
                assert isinstance(command, Arg)
                for name, default in command.args:
                    value = self.build_args.get(name, default)
                    if value is not None:
                        global_args[name] = value
                    if name in self.build_args:
                        self.used_args.add(name)
            else:
                stages[-1].nodes.append(node)
        if not stages:
            raise errors.BadInput("the Dockerfile has no FROM instruction")
        for stage in stages:
            first = typed(stage.nodes[0], global_args, escape=self.dockerfile.escape)
            assert isinstance(first, From)
            stage.name = first.stage_name
        return global_args, stages

    def needed(self, stages: list[_Stage], target: Optional[str], global_args: Mapping[str, str]) -> list[_Stage]:
        by_name = {s.name: s for s in stages if s.name}
        if target is not None:
            if target.lower() not in by_name:
                raise errors.BadInput(f"target stage {target!r} is not in the Dockerfile "
                                      f"(stages: {', '.join(n for n in by_name if n) or 'none named'})")
            last = by_name[target.lower()]
        else:
            last = stages[-1]
        wanted = {last.index}
        for stage in reversed(stages[:last.index + 1]):
            if stage.index not in wanted:
                continue
            for node in stage.nodes:
                refs = []
                if node.name == "from":
                    refs.append(typed(node, global_args, escape=self.dockerfile.escape).image)  # type: ignore[union-attr]
                for flag in node.flags:
                    if flag.startswith("--from="):
                        refs.append(flag[len("--from="):])
                for ref in refs:
                    dep = by_name.get(ref.lower()) or (stages[int(ref)] if ref.isdigit() and int(ref) < len(stages)
                                                       else None)
                    if dep is not None:
                        if dep.index >= stage.index:
                            raise errors.BadInput(f"Dockerfile line {node.start_line}: stage {ref!r} is not "
                                                  "defined before it is used")
                        wanted.add(dep.index)
        return [s for s in stages if s.index in wanted]

    # -- running -----------------------------------------------------------------------------------

    def check_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BuildCancelled(self.step_number, self.total)

    def wait_step(self, proc: Process) -> int:
        """A RUN command's exit code; cancelled meanwhile, the command is killed."""
        if self.cancel is None:
            return proc.wait()
        while True:
            try:
                return proc.wait(0.2)
            except TimeoutExpired:
                if self.cancel.is_set():
                    proc.kill()
                    with contextlib.suppress(TimeoutExpired):
                        proc.wait(30)
                    self.check_cancelled()

    def run(self, target: Optional[str]) -> _Stage:
        global_args, stages = self.stages()
        todo = self.needed(stages, target, global_args)
        for stage in todo:  # every instruction checked before anything runs
            for node in stage.nodes:
                typed(node, global_args, escape=self.dockerfile.escape, check_only=True)
        self.total = sum(len(s.nodes) for s in todo)
        done: dict[int, _Stage] = {}
        for stage in todo:
            self.build_stage(stage, global_args, stages, done)
            done[stage.index] = stage
        unused = set(self.build_args) - self.used_args - set(_PREDEFINED_ARGS)
        if unused:
            self.output(f"[Warning] One or more build-args {sorted(unused)} were not consumed\n")
        return done[todo[-1].index]

    def build_stage(self, stage: _Stage, global_args: Mapping[str, str], stages: list[_Stage],
                    done: Mapping[int, _Stage]) -> None:
        escape = self.dockerfile.escape
        for node in stage.nodes:
            self.check_cancelled()
            self.step_number += 1
            started = time.monotonic()
            text = " ".join(node.original.split()) if node.original else node.dump()
            self.output(f"Step {self.step_number}/{self.total} : {text}\n")
            scope = {**global_args} if node.name == "from" else {**stage.args, **_env_map(stage.config)}
            command = typed(node, scope, escape=escape)
            cached = False
            diff_id = None
            if isinstance(command, From):
                self.start_stage(stage, command, stages, done)
                self.output(f" ---> {stage.key[7:19]}\n")
                self.run_triggers(stage, global_args, done)
            else:
                cached, diff_id = self.run_instruction(stage, node, command, text, global_args, done)
            self.steps.append(BuildStep(self.step_number, text, cached, time.monotonic() - started, diff_id))

    def run_instruction(self, stage: _Stage, node: Instruction, command: Any, text: str,
                        global_args: Mapping[str, str], done: Mapping[int, _Stage]) -> tuple[bool, Optional[str]]:
        """One instruction after FROM, from the build cache or run; (cached, the layer's diff ID)."""
        cached = False
        diff_id = None
        extra = self.key_extra(stage, command, done)
        key = _key(stage.key, text, extra)
        hit = None if self.no_cache else self.store.cache_get(key)
        if isinstance(command, Arg):
            for name, default in command.args:
                value = self.build_args.get(name, global_args.get(name, default))
                if name in self.build_args:
                    self.used_args.add(name)
                if value is not None:
                    stage.args[name] = value
        if isinstance(command, Cmd):
            stage.cmd_set = True
        if hit is not None and self.adopt(stage, hit, key):
            cached = True
            self.output(" ---> Using cache\n")
        else:
            before = len(stage.layers)
            self.execute(stage, node, command, text, done)
            diff_id = stage.layers[-1].diff_id if len(stage.layers) > before else None
            stage.key = key
            self.store.cache_put(key, stage.config)
        self.output(f" ---> {digest_of(canonical_json(stage.config))[7:19]}\n")
        return cached, diff_id

    def run_triggers(self, stage: _Stage, global_args: Mapping[str, str], done: Mapping[int, _Stage]) -> None:
        """The ONBUILD triggers of the image a stage starts from, right after its FROM, as Docker
        runs them; the stage's own config then has none (they are not inherited further)."""
        container_config = (stage.config.get("config") or {})
        triggers = [t for t in container_config.get("OnBuild") or [] if isinstance(t, str)]
        if stage.image is None or not triggers:
            return
        stage.config = {**stage.config, "config": {**container_config, "OnBuild": None}}
        self.output(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        for trigger in triggers:
            try:
                parsed = parse_dockerfile(trigger.encode("utf-8", "surrogatepass"))
                if len(parsed.instructions) != 1:
                    raise errors.BadInput("a trigger is one instruction")
                node = parsed.instructions[0]
                if node.name in ("onbuild", "from", "maintainer"):
                    raise errors.BadInput(f"{node.name.upper()} is not allowed as a trigger")
                command = typed(node, {**stage.args, **_env_map(stage.config)}, escape=self.dockerfile.escape)
            except errors.BadInput as exc:
                raise BuildStepFailed(self.step_number, self.total, f"ONBUILD {trigger}", None, None, [],
                                      f"the trigger of image {stage.image.short_id} is not valid: {exc}") from None
            self.output(f" ---> Running trigger: {trigger}\n")
            self.run_instruction(stage, node, command, " ".join(trigger.split()), global_args, done)

    def start_stage(self, stage: _Stage, command: From, stages: list[_Stage], done: Mapping[int, _Stage]) -> None:
        ref = command.image
        source = next((s for i, s in done.items() if s.name == ref.lower() or str(i) == ref), None)
        if ref.lower() == "scratch":
            raise errors.BadInput("FROM scratch is not supported for Windows images: start from a base image "
                                  "(windowsservercore, nanoserver) or an image of the store")
        if command.platform and not command.platform.lower().startswith("windows"):
            raise errors.BadInput(f"--platform={command.platform}: this builder makes Windows images only")
        if source is not None:
            stage.config = json.loads(json.dumps(source.config))
            stage.layers = list(source.layers)
            stage.key = source.key
        else:
            image = self.base_image(ref)
            stage.image = image
            stage.config = json.loads(image.config_bytes)
            stage.layers = self.store.layer_chain(image)
            stage.key = image.id
            if not self.store.hold_layers(self._lease(), stage.layers):
                raise errors.NotFound("build", subject=f"image {ref}", message="its layers were removed meanwhile",
                                      hint="pull or load it again")
        stage.config.setdefault("config", {})

    def base_image(self, ref: str) -> Image:
        """A FROM image: the store's (or the host's); pulled when it has none of that name, and
        always with ``pull``, as Docker does."""
        if not self.pull:
            try:
                return self.store.resolve(ref)
            except ImageNotFound as missing:
                not_here: Optional[ImageNotFound] = missing
        else:
            not_here = None
        build = published_build(ref)
        if build is not None and self.store.build is not None and build != self.store.build \
                and self.isolation != "hyperv":  # a process-isolated RUN could not run on it: said now
            raise errors.NotSupported(
                "build", subject=f"image {ref}",
                message=f"{ref} is Windows build {build}, this host is build {self.store.build}: process isolation "
                        f"runs only images of the host's build",
                alternative="build with --isolation hyperv (isolation=\"hyperv\"), which pulls it and runs its "
                            "steps in a utility VM, or FROM the image of this host's build")
        self.output(f" ---> Pulling {ref}\n")
        try:
            return self.store.pull(ref, progress=self.progress)
        except errors.WincontainersError as exc:
            if not_here is None:
                raise
            raise errors.NotFound("build", subject=f"image {ref}",
                                  message=f"the store has no such image, and pulling it failed: {exc}",
                                  hint=not_here.hint or "build or load it first, or check its name") from exc

    def _lease(self) -> Lease:
        assert self.lease is not None, "a build runs inside its lease"
        return self.lease

    def adopt(self, stage: _Stage, config: dict[str, Any], key: str) -> bool:
        """Use a cached step's result; False (run the step) when its layers are gone or were
        being collected as the build took them."""
        diff_ids = list(config["rootfs"]["diff_ids"])
        layers = []
        for i in range(len(diff_ids)):
            record = self.store.get_layer(chain_id(diff_ids[:i + 1]))
            if record is None:
                return False
            layers.append(record)
        if not self.store.hold_layers(self._lease(), layers):
            return False
        stage.config = config
        stage.layers = layers
        stage.key = key
        return True

    def key_extra(self, stage: _Stage, command: Any, done: Mapping[int, _Stage]) -> str:
        if isinstance(command, Run):
            return canonical_json(sorted(stage.args.items())).decode()
        if isinstance(command, Copy):
            if command.from_stage is not None:
                source = self.copy_source_stage(command.from_stage, done)
                origin = source.key if isinstance(source, _Stage) else source.id
                return f"from {origin} " + canonical_json(list(command.sources)).decode()
            paths = [p for s in command.sources for p in self.context.expand(s)]
            inline = [self.inline_text(stage, h) for h in command.heredocs]
            return self.context.digest(paths) + canonical_json(inline).decode()
        return ""

    def inline_text(self, stage: _Stage, doc: Any) -> str:
        """A heredoc's body, with variables expanded unless its name was quoted (<<'EOF')."""
        if not doc.expand:
            return str(doc.text)
        lex = ShellLex("\\", skip_process_quotes=True, case_insensitive=True)
        return lex.process_word(doc.text, {**stage.args, **_env_map(stage.config)})

    def copy_source_stage(self, ref: str, done: Mapping[int, _Stage]) -> Union[_Stage, Image]:
        for index, stage in done.items():
            if stage.name == ref.lower() or str(index) == ref:
                return stage
        return self.store.resolve(ref)

    # -- one step ----------------------------------------------------------------------------------

    def execute(self, stage: _Stage, node: Instruction, command: Any, text: str, done: Mapping[int, _Stage]) -> None:
        if isinstance(command, Run):
            self.run_step(stage, command, text)
        elif isinstance(command, Copy):
            self.copy_step(stage, command, text, done)
        elif isinstance(command, Arg):
            stage.config = derive_config(stage.config, diff_id=None, created_by=text)
        else:
            container_config = dict(stage.config.get("config") or {})
            authors: list[str] = []
            try:
                apply_to_config(container_config, command, cmd_set=stage.cmd_set, author=authors)
            except errors.BadInput as exc:
                raise BuildStepFailed(self.step_number, self.total, text, None, None, [], str(exc)) from None
            if isinstance(command, Workdir):
                container_config["WorkingDir"] = normalize_workdir((stage.config.get("config") or {}).get(
                    "WorkingDir"), command.path)
                stage.config = {**stage.config, "config": container_config}
                if self.workdir_step(stage, text):
                    return  # the folder was made: its layer carries the history entry
            stage.config = derive_config(stage.config, diff_id=None, created_by=text,
                                         config=container_config, author=authors[-1] if authors else "")

    def run_step(self, stage: _Stage, command: Run, text: str) -> None:
        config = stage.config.get("config") or {}
        shell = list(config.get("Shell") or DEFAULT_SHELL)
        stdin_data: Optional[bytes] = None
        if command.shell_form:
            line = command.command if isinstance(command.command, str) else ""
            if command.heredocs:
                # The heredoc feeds the command's standard input; alone, it is the script.
                stdin_data = self.inline_text(stage, command.heredocs[0]).encode("utf-8")
                line = " ".join(w for w in line.split() if not w.lstrip("0123456789").startswith("<<")).strip()
            cmdline = command_line(shell + [line], args_escaped=True) if line else command_line(shell[:1])
        else:
            cmdline = command_line(list(command.command))
        env = {**_env_map(stage.config), **stage.args}
        workdir = config.get("WorkingDir") or None
        user = config.get("User") or None
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        partial = [b""]

        def sink(data: bytes) -> None:
            self.output(data.decode("utf-8", "replace"))
            text_so_far = partial[0] + data
            *lines, partial[0] = text_so_far.split(b"\n")
            for line_bytes in lines:
                tail.append(line_bytes.decode("utf-8", "replace").rstrip("\r"))

        folders = [r.folder for r in reversed(stage.layers)]
        container = self.host.containers.create(folders, name=f"build-{secrets.token_hex(6)}",  # type: ignore[arg-type]
                                                isolation=self.isolation)
        self.containers_run += 1
        self.output(f" ---> Running in {container.short_id}\n")
        proc = None
        try:
            # the step's container and layer are held by the build's lease
            lease = self._lease()
            hyperv = container.record.isolation == "hyperv"
            if workdir and not hyperv:
                self.ensure_dir(container.record, workdir)
            container.start()
            if workdir and hyperv:
                self.ensure_dir_inside(container, workdir)
            try:
                proc = container.exec(cmdline, env=env, workdir=workdir, user=user, stdin=stdin_data is not None,
                                      stdout_sink=sink, stderr_sink=sink)
            except errors.HcsError as exc:  # the program is missing (a SHELL naming powershell on nanoserver...)
                raise BuildStepFailed(self.step_number, self.total, text, cmdline, None, [],
                                      f"the command `{cmdline}` could not be started: {exc}") from None
            if stdin_data is not None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.write(stdin_data)
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            code = self.wait_step(proc)
            if partial[0]:
                tail.append(partial[0].decode("utf-8", "replace"))
            if code != 0:
                raise BuildStepFailed(self.step_number, self.total, text, cmdline, code, list(tail))
            container.stop(10)
            parent = stage.layers[-1] if stage.layers else None
            try:
                layer = commit_layer(self.store, container, parent, lease=lease, progress=self.progress)
            except LayerRejected as refused:
                raise BuildStepFailed(
                    self.step_number, self.total, text, cmdline, None, list(tail),
                    f"the command succeeded, but the files it left cannot be imported as a layer "
                    f"(ImportLayer would fail with 'Catastrophic failure'): {refused.report.summary()}",
                    report=attrs.evolve(refused.report, source=f"the changes of step {self.step_number}")) from None
            stage.layers.append(layer)
            stage.config = derive_config(stage.config, diff_id=layer.diff_id, created_by=cmdline)
        finally:
            if proc is not None:  # its handle now, not when a traceback that holds it is collected
                proc.close()
            with contextlib.suppress(errors.WincontainersError):
                container.remove(force=True)
            container.close()

    def ensure_dir(self, record: ContainerRecord, windows_path: str) -> None:
        """The RUN step's working folder, made in its (process-isolated) container's volume
        before it starts."""
        target = _inside(windows_path)
        if str(target) != ".":
            Volume(self.host.win32, self.host.driver.layer_mount_path(record.sandbox)).makedirs(target)

    def ensure_dir_inside(self, container: "Container", windows_path: str) -> None:
        """The same for a Hyper-V container, whose disk is its utility VM's: made from inside,
        once it runs (``mkdir`` makes the folders on the way)."""
        target = _inside(windows_path)
        if str(target) == ".":
            return
        path = _windows(target)
        if any(c in path for c in '"%^&|<>!') or any(ord(c) < 32 for c in path):
            raise errors.BadInput(f"WORKDIR {windows_path!r}: a Hyper-V build cannot make a folder with "
                                  f"such characters in its name")
        made = container.run(f'cmd /S /C "if not exist "{path}\\" mkdir "{path}""', workdir="C:\\")
        if made.returncode != 0:
            raise errors.BadInput(f"WORKDIR {windows_path!r} could not be made in the container: "
                                  f"{(made.stderr or made.stdout or b'').decode('utf-8', 'replace').strip()}")

    def copy_step(self, stage: _Stage, command: Copy, text: str, done: Mapping[int, _Stage]) -> None:
        workdir = (stage.config.get("config") or {}).get("WorkingDir")
        dest = command.dest.replace("\\", "/")
        dest_is_dir = dest.endswith("/") or len(command.sources) + len(command.heredocs) > 1 or any(
            any(c in s for c in "*?[") for s in command.sources)
        target = _inside(normalize_workdir(workdir, command.dest) if command.dest not in ("", ".") else
                         (workdir or "C:\\"))
        if command.dest.rstrip() in (".", "./", ".\\"):
            dest_is_dir = True
        what = "ADD" if command.add else "COPY"

        def change(volume: Volume) -> bool:
            with self.sources(command, done, stage) as sources:
                self.copy_into(volume, target, dest_is_dir, sources, add=command.add)
            return True

        self.file_step(stage, text, change, f"{what} {self.key_extra(stage, command, done)[:71]} in {_windows(target)}")

    def workdir_step(self, stage: _Stage, text: str) -> bool:
        """WORKDIR makes its folder when the image lacks it, as Docker does (in a layer);
        whether it did."""
        target = _inside((stage.config.get("config") or {}).get("WorkingDir") or "C:\\")
        if str(target) == ".":
            return False

        def change(volume: Volume) -> bool:
            if volume.kind(target) == "dir":
                return False
            volume.makedirs(target)
            return True

        return self.file_step(stage, text, change, text)

    def file_step(self, stage: _Stage, text: str, change: Callable[[Volume], bool], created_by: str) -> bool:
        """A step that changes files through a sandbox over the stage's layers: ``change`` gets
        its volume and says whether it changed anything; a change becomes the stage's next
        layer. Returns whether there was one."""
        layers = self.host.layers
        folders = [r.folder for r in reversed(stage.layers)]
        sandbox = None
        try:
            lease = self._lease()
            sandbox = layers.create_sandbox(folders, on_folder=lease.hold_folder)  # type: ignore[arg-type]
            with layers.prepared(sandbox) as mount:
                changed = change(Volume(self.host.win32, mount))
            if not changed:
                return False
            tar = self.store.new_temp_file(".tar")
            try:
                layers.export_tar(sandbox, tar, progress=self.progress)
                parent = stage.layers[-1] if stage.layers else None
                layer = self.store.add_layer(tar, parent, lease=lease, progress=self.progress)
            finally:
                with contextlib.suppress(OSError):
                    tar.unlink()
            stage.layers.append(layer)
            stage.config = derive_config(stage.config, diff_id=layer.diff_id, created_by=created_by)
            return True
        except errors.BadInput as exc:
            raise BuildStepFailed(self.step_number, self.total, text, None, None, [], str(exc)) from None
        finally:
            if sandbox is not None:
                with contextlib.suppress(errors.WincontainersError):
                    layers.destroy(sandbox, force=True)

    @contextlib.contextmanager
    def sources(self, command: Copy, done: Mapping[int, _Stage], stage: _Stage) -> Iterator[list["_Source"]]:
        """The sources of a COPY/ADD: inline heredocs, files and folders of the context, or of
        another stage's (or image's) files, seen through a prepared sandbox."""
        out: list[_Source] = [_Source("inline", doc.name, data=self.inline_text(stage, doc).encode("utf-8"))
                              for doc in command.heredocs]
        if command.from_stage is None:
            for source in command.sources:
                for path in self.context.expand(source):
                    # ADD unpacks an archive it reaches inside the context, never through a link out
                    local = path.resolve() if self.context.follows(path) else None
                    out.append(_Source("dir" if self.context.is_folder(path) else "file", path.name, path=local,
                                       entries=context_entries(self.context.sources(path))))
            yield out
            return
        origin = self.copy_source_stage(command.from_stage, done)
        if not isinstance(origin, _Stage) and not self.store.hold_layers(self._lease(), self.store.layer_chain(origin)):
            raise errors.NotFound("build", subject=f"image {command.from_stage}",
                                  message="its layers were removed meanwhile", hint="pull or load it again")
        folders = ([r.folder for r in reversed(origin.layers)] if isinstance(origin, _Stage)
                   else self.store.layer_folders(origin))
        layers = self.host.layers
        # the build's lease holds the view: a killed build's view is found
        view = layers.create_sandbox(folders, on_folder=self._lease().hold_folder)  # type: ignore[arg-type]
        try:
            with layers.prepared(view) as mount:
                other = Volume(self.host.win32, mount)
                for source in command.sources:
                    rel = _inside(source)
                    kind = other.kind(rel)
                    if kind is None:
                        raise errors.BadInput(f"COPY --from={command.from_stage}: {source!r} does not exist "
                                              "there")
                    out.append(_Source(kind, rel.name, entries=other.entries(rel)))
                yield out
        finally:
            with contextlib.suppress(errors.WincontainersError):
                layers.destroy(view, force=True)

    def copy_into(self, volume: Volume, target: PurePosixPath, dest_is_dir: bool, sources: list["_Source"], *,
                  add: bool) -> None:
        """Docker's rules: a folder's contents go into the destination; a file goes to
        ``<dest>/<name>`` when the destination is a folder, else to ``<dest>``; ADD unpacks a
        local tar archive into the destination folder."""
        for source in sources:
            if source.kind == "dir":
                volume.makedirs(target)
                for entry in source.entries:
                    volume.write(target / entry.target, entry)
                continue
            if add and source.kind == "file" and source.path is not None and _is_archive(source.path):
                volume.extract(source.path, target)
                continue
            where = target / source.name if dest_is_dir else target
            if source.kind == "inline":
                volume.write_bytes(where, source.data)
            else:
                volume.write(where, source.entries[0])


@attrs.frozen
class _Source:
    kind: str  # "file", "dir" or "inline"
    name: str
    path: Optional[Path] = None  # a file of the build context (ADD may unpack it)
    entries: list[CopyEntry] = attrs.field(factory=list)
    data: bytes = b""


def _inside(windows_path: str) -> PurePosixPath:
    """``C:\\app\\x`` -> ``app/x`` (relative to the volume root)."""
    path = windows_path.replace("\\", "/")
    if len(path) >= 2 and path[1] == ":":
        path = path[2:]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise errors.BadInput(f"{windows_path!r} leaves the container's drive")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _windows(path: PurePosixPath) -> str:
    return "C:\\" + "\\".join(path.parts) if path.parts and str(path) != "." else "C:\\"


def _is_archive(path: Path) -> bool:
    try:
        with open_no_follow(path) as f:
            return tarfile.is_tarfile(f)
    except (OSError, errors.BadInput):
        return False


class _LoggedOutput:
    """Where the build's text goes when the caller gives no ``output``: the ``wincontainers.build``
    logger, a line per record (the library never prints; the CLI gives its own output)."""

    def __init__(self) -> None:
        self.partial = ""

    def __call__(self, text: str) -> None:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            log.info("%s", line.rstrip("\r"))


def build(
    host: "Host",
    context: Union[str, "os.PathLike[str]"],
    *,
    dockerfile: Union[None, str, "os.PathLike[str]"] = None,
    tags: Sequence[str] = (),
    build_args: Optional[Mapping[str, str]] = None,
    no_cache: bool = False,
    target: Optional[str] = None,
    output: Union[None, bool, Callable[[str], None]] = None,
    progress: ProgressLike = None,
    cancel: Optional[threading.Event] = None,
    isolation: Optional[str] = None,
    pull: bool = False,
) -> BuildResult:
    """Build the Dockerfile (``<context>/Dockerfile`` unless given) into an image tagged ``tags``.

    ``isolation="hyperv"`` runs the RUN steps in Hyper-V containers (a base image of another
    Windows build than the host's builds that way); COPY, ADD and the other steps write layers
    from the host either way. A FROM image the store lacks is pulled from its registry, and with
    ``pull=True`` every FROM image is pulled again (``docker build --pull``).

    ``output`` receives the step lines and the commands' output as they come (by default they are
    INFO records of the ``wincontainers.build`` logger); ``output=True`` writes them to
    ``sys.stdout`` (live in a Jupyter cell). Setting ``cancel`` (from another thread) stops
    the build at its next step, killing a RUN command under way: :class:`BuildCancelled`.
    Raises ``DockerfileParseError``/``BadInput`` for a bad Dockerfile before running anything, and
    :class:`BuildStepFailed` when a step fails.
    """
    from wincontainers.images.reference import parse_reference

    for tag in tags:
        parse_reference(tag)
    if output is True:
        output = _write_stdout
    elif output is False or output is None:
        output = None
    elif not callable(output):
        raise errors.BadInput(f"output is True, a callable taking each piece of text, or None; not {output!r}")
    root = Path(context)
    path = Path(dockerfile) if dockerfile is not None else root / "Dockerfile"
    if not path.is_absolute() and dockerfile is not None and not path.exists():
        path = root / path
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise errors.BadInput(f"cannot read the Dockerfile {path}: {exc.strerror}") from None
    isolation = check_isolation(isolation)
    parsed = parse_dockerfile(source)
    ignore_file = path.with_name(path.name + ".dockerignore")
    ignore = DockerIgnore.load(ignore_file) if ignore_file.exists() else None
    try:
        with operation_progress(progress, desc=f"build {root.name or root}") as shared, \
                host.images.lease() as lease:
            builder = _Builder(host, BuildContext(root, ignore), parsed, build_args=build_args or {},
                               no_cache=no_cache, output=output or _LoggedOutput(), progress=shared,
                               isolation=isolation, pull=pull)
            builder.lease = lease
            builder.cancel = cancel
            stage = builder.run(target)
            final = host.images.add(stage.config, stage.layers, tags=list(tags))
    except BaseException:
        try:  # what the failed build made and nothing references
            host.images.gc()
        except Exception as exc:  # noqa: BLE001 - the build's own error is the one to raise
            log.warning("after the failed build, collecting what it left failed (wincontainers image gc "
                        "removes it later): %s", exc)
        raise
    builder.output(f"Successfully built {final.short_id}\n")
    for tag in tags:
        builder.output(f"Successfully tagged {parse_reference(tag).familiar}\n")
    return BuildResult(final, tuple(builder.steps), builder.containers_run)


async def build_async(host: "Host", context: Union[str, "os.PathLike[str]"], **options: Any) -> BuildResult:
    """:func:`build`, awaited (same arguments; it runs on the shared pool of
    :mod:`wincontainers.aio`). Cancelling the awaiting task cancels the build: it stops at its
    next step (a RUN command under way is killed) and removes what it made; the task's
    cancellation completes once that is done, so nothing is left half made.
    """
    if "cancel" in options:
        raise errors.BadInput("build_async is cancelled by cancelling its task, not with cancel=")
    return await aio.call_cancellable(lambda cancel: build(host, context, cancel=cancel, **options))
