"""Dockerfile builds on every simulator profile: the examples, the cache, failures, COPY/ADD rules."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers import Host, errors
from wincontainers.build.builder import BuildStepFailed, build
from wincontainers.build.context import DockerIgnore
from wincontainers.build.dockerfile import DockerfileParseError
from wincontainers.container import default_command
from tests.conftest import ROOT, cli

#: the example images that build (and whose CMD ends); examples/blog/broken fails on purpose
EXAMPLES = sorted(p.parent for p in (ROOT / "examples" / "dockerfiles").rglob("Dockerfile"))


@pytest.fixture
def builder_host(host: Host) -> Iterator[Host]:
    yield host
    assert list(host.records.all()) == [], "a build left a container"
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    host.images.cache_clear()
    host.images.gc()
    report = host.images.fsck()
    assert report.clean and report.garbage == (), report.summary()
    assert [p.name for p in host.layers_root.iterdir()] == []


def _quiet(_text: str) -> None:
    pass


def _files(host: Host, image: str, command: str = "dir /s /b /a-d") -> list[str]:
    """What ``command`` prints in a container of ``image``: for a ``dir /b``, the paths relative
    to C:\\ with ``/``, sorted; otherwise its words."""
    with host.containers.create(image, entrypoint="ping -t localhost") as c:  # not the image's: it would end
        c.start()
        out = c.run(f'cmd /S /C "{command}"').stdout.decode().split("\r\n" if command.startswith("dir") else None)
        c.stop()
    if command.startswith("dir"):
        return sorted(line[3:].replace("\\", "/") for line in out if line)
    return out


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_builds_runs_and_rebuilds_from_cache(builder_host: Host, example: Path) -> None:
    first = build(builder_host, example, tags=[f"{example.name}:test"], output=_quiet)
    assert first.containers_run >= 1 and first.cache_hits == 0
    command = default_command(first.image.container_config)
    assert command, "an example image has a default command"
    result = builder_host.containers.run(f"{example.name}:test", command)
    assert result.returncode == 0 and result.stdout.strip()
    again = build(builder_host, example, tags=[f"{example.name}:test"], output=_quiet)
    assert again.containers_run == 0 and again.cache_hits == len(again.steps) - sum(
        1 for s in again.steps if s.instruction.upper().startswith("FROM"))
    assert again.image.id == first.image.id


def test_the_hello_example_image(builder_host: Host) -> None:
    lines: list[str] = []
    result = build(builder_host, ROOT / "examples" / "dockerfiles" / "hello", tags=["hello:1"],
                   build_args={"GREETING": "bonjour"}, output=lines.append)
    text = "".join(lines)
    assert "Step 1/10 : FROM windowsservercore" in text and "Successfully tagged hello:1" in text
    config = result.image.container_config
    assert config["WorkingDir"] == "C:\\app" and "GREETING=bonjour" in config["Env"]
    assert "APP_HOME=C:\\app" in config["Env"] and config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Labels"]["org.opencontainers.image.title"] == "hello"
    files = _files(builder_host, "hello:1")
    assert files == ["app/app.txt", "app/config/app.ini", "app/config/debug.log", "app/data/built.txt"]  # secrets ignored
    history = builder_host.images.history("hello:1")
    assert history[0]["created_by"].startswith("CMD") and any("RUN" in h["created_by"] or "mkdir" in h["created_by"]
                                                             for h in history)
    no_cache = build(builder_host, ROOT / "examples" / "dockerfiles" / "hello", tags=["hello:2"], no_cache=True,
                     build_args={"GREETING": "bonjour"}, output=_quiet)
    assert no_cache.containers_run == 1 and no_cache.cache_hits == 0


def _context(tmp_path: Path, dockerfile: str, files: dict[str, bytes] | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return tmp_path


def test_a_failing_step_names_it_and_leaves_nothing(builder_host: Host, tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM windowsservercore\nRUN echo fine> ok.txt\n"
                                 "RUN echo line one && echo line two 1>&2 && exit 3\nRUN echo never\n")
    with pytest.raises(BuildStepFailed) as info:
        build(builder_host, context, tags=["broken:1"], output=_quiet)
    failed = info.value
    assert (failed.step, failed.exit_code) == (3, 3)
    assert failed.command is not None and "exit 3" in failed.command
    tail = [line.rstrip() for line in failed.output_tail]  # cmd's echo keeps the spaces before && and 1>&2
    assert tail[-2:] == ["line one", "line two"] or set(tail) >= {"line one", "line two"}
    assert "step 3/4" in str(failed) and "non-zero code: 3" in str(failed) and "line two" in str(failed)
    assert not builder_host.images.exists("broken:1")
    report = builder_host.images.fsck()
    assert report.clean and report.garbage == ()


def test_bad_dockerfiles_fail_before_running_anything(builder_host: Host, tmp_path: Path) -> None:
    with pytest.raises(DockerfileParseError):
        build(builder_host, _context(tmp_path, "FROM windowsservercore\nRUN <<EOF\nnever ends\n"), output=_quiet)
    with pytest.raises(errors.BadInput) as info:
        build(builder_host, _context(tmp_path, "FROM windowsservercore\nCOPY --chmod=777 a b\n", {"a": b"x"}),
              output=_quiet)
    assert "chmod" in str(info.value)
    with pytest.raises(errors.BadInput):
        build(builder_host, _context(tmp_path, "RUN echo no FROM\n"), output=_quiet)
    with pytest.raises(errors.BadInput):
        build(builder_host, _context(tmp_path, "FROM scratch\n"), output=_quiet)
    with pytest.raises(errors.BadInput):
        build(builder_host, _context(tmp_path, "FROM windowsservercore\nCOPY missing.txt C:/x\n"), output=_quiet)
    with pytest.raises(errors.BadInput):
        build(builder_host, _context(tmp_path, "FROM windowsservercore AS a\nFROM a\n"), target="nope", output=_quiet)
    assert list(builder_host.records.all()) == []


def test_copy_add_rules_heredocs_and_targets(builder_host: Host, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("pkg/a.txt", b"A"), ("pkg/sub/b.txt", b"B")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dockerfile = (
        "# escape=`\n"
        "FROM windowsservercore AS first\n"
        "ARG WHERE=C:\\dest\n"
        "COPY one.txt two.txt ${WHERE}\\\n"
        "COPY dir C:\\tree\n"
        "COPY *.md C:\\docs\\\n"
        "COPY one.txt C:\\renamed.txt\n"
        "ADD pkg.tar.gz C:\\unpacked\n"
        "COPY <<EOF C:\\inline.txt\n"
        "inline $WHERE\n"
        "EOF\n"
        "RUN <<EOF\n"
        "echo from-heredoc> heredoc.txt\n"
        "EOF\n"
        "FROM windowsservercore AS second\n"
        "COPY --from=first C:\\dest\\one.txt C:\\only.txt\n"
    )
    context = _context(tmp_path, dockerfile, {"one.txt": b"1", "two.txt": b"2", "dir/x/y.txt": b"y", "a.md": b"a",
                                              "b.md": b"b", "pkg.tar.gz": archive.getvalue()})
    first = build(builder_host, context, tags=["first:1"], target="first", output=_quiet)
    files = _files(builder_host, "first:1", "dir /s /b /a-d dest tree docs renamed.txt unpacked inline.txt heredoc.txt")
    assert files == ["dest/one.txt", "dest/two.txt", "docs/a.md", "docs/b.md", "heredoc.txt", "inline.txt",
                     "renamed.txt", "tree/x/y.txt", "unpacked/pkg/a.txt", "unpacked/pkg/sub/b.txt"]
    assert _files(builder_host, "first:1", "type inline.txt heredoc.txt") == ["inline", "C:\\dest", "from-heredoc"]
    assert first.containers_run == 1
    second = build(builder_host, context, tags=["second:1"], output=_quiet)
    assert _files(builder_host, "second:1", "type only.txt") == ["1"]
    assert second.image.diff_ids[:-1] == builder_host.images.resolve("windowsservercore").diff_ids


def test_dockerignore_rules() -> None:
    ignore = DockerIgnore(["# comment", "*.log", "!keep.log", "secrets", "**/tmp", "docs/*.md", "  spaced.txt  "])
    assert ignore.excluded("a.log") and not ignore.excluded("keep.log") and not ignore.excluded("sub/a.log")
    assert ignore.excluded("secrets") and ignore.excluded("secrets/deep/key")
    assert ignore.excluded("tmp") and ignore.excluded("x/y/tmp/z") and ignore.excluded("spaced.txt")
    assert ignore.excluded("docs/a.md") and not ignore.excluded("docs/sub/a.md") and not ignore.excluded("main.c")


def test_build_command_line(builder_host: Host) -> None:
    example = ROOT / "examples" / "dockerfiles" / "multistage"
    done = cli("build", "-q", "-t", "ms:cli", str(example), host=builder_host)
    assert done.returncode == 0, done.stderr
    image_id = done.stdout.decode().strip()
    assert image_id.startswith("sha256:") and builder_host.images.get("ms:cli").id == image_id
    ran = cli("run", "--rm", "ms:cli", host=builder_host)
    assert ran.returncode == 0 and ran.stdout == b"ready\r\n"
    bad = cli("build", str(example.parent / "does-not-exist"), host=builder_host)
    assert bad.returncode == 1 and b"cannot read the Dockerfile" in bad.stderr


def test_config_instructions(builder_host: Host, tmp_path: Path) -> None:
    dockerfile = (
        "FROM windowsservercore\n"
        "MAINTAINER someone@example.com\n"
        "SHELL [\"cmd\", \"/C\"]\n"
        "RUN echo shell-form> shell.txt\n"
        "USER ContainerUser\n"
        "VOLUME C:/data [\"C:/logs\"]\n"
        "STOPSIGNAL SIGINT\n"
        "HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f http://localhost/\n"
        "ONBUILD RUN echo triggered\n"
        "ENTRYPOINT run.cmd --flag\n"
        "LABEL a=1 b=\"two words\"\n"
    )
    result = build(builder_host, _context(tmp_path, dockerfile), tags=["config:1"], output=_quiet)
    config = result.image.container_config
    assert config["Shell"] == ["cmd", "/C"] and config["User"] == "ContainerUser"
    assert config["Volumes"] == {"C:/data": {}, "[\"C:/logs\"]": {}} or set(config["Volumes"]) >= {"C:/data"}
    assert config["StopSignal"] == "SIGINT" and config["OnBuild"] == ["RUN echo triggered"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 30_000_000_000,
                                     "Timeout": 90_000_000_000, "Retries": 3}
    assert config["Entrypoint"] == ["cmd", "/C", "run.cmd --flag"] and config["ArgsEscaped"] is True
    assert "Cmd" not in config  # ENTRYPOINT drops the CMD inherited from the base image
    assert config["Labels"] == {"a": "1", "b": "two words"}
    assert result.image.config["author"] == "someone@example.com"
    assert default_command(config) == "cmd /C run.cmd --flag"
    assert _files(builder_host, "config:1", "type shell.txt") == ["shell-form"]


def test_workdir_makes_its_folder_in_a_layer_when_missing(builder_host: Host, tmp_path: Path) -> None:
    context = _context(tmp_path, "# escape=`\nFROM windowsservercore\nWORKDIR C:\\app\\data\nWORKDIR ..\n"
                                 "WORKDIR data\nCMD cmd /c echo in-%CD%\n")
    result = build(builder_host, context, tags=["wd:1"], output=_quiet)
    base = builder_host.images.resolve("windowsservercore")
    assert len(result.image.diff_ids) == len(base.diff_ids) + 1  # one folder made, the others were there
    assert result.image.container_config["WorkingDir"] == "C:\\app\\data"
    run = builder_host.containers.run("wd:1", "cmd /c echo ok")
    assert run.returncode == 0 and run.stdout.strip() == b"ok"
    history = [h["created_by"] for h in builder_host.images.history("wd:1")]
    assert sum(1 for h in history if h.startswith("WORKDIR")) == 3


def test_onbuild_triggers_run_in_the_child_after_its_from(builder_host: Host, tmp_path: Path) -> None:
    parent = _context(tmp_path / "parent", "FROM windowsservercore\nONBUILD COPY . /app/\n"
                                           "ONBUILD RUN echo triggered> t.txt\n")
    build(builder_host, parent, tags=["onb-parent:1"], output=_quiet)
    assert len(builder_host.images.resolve("onb-parent:1").container_config["OnBuild"]) == 2
    lines: list[str] = []
    child = _context(tmp_path / "child", "FROM onb-parent:1\nCMD cmd /c type t.txt\n", {"hello.txt": b"hi"})
    result = build(builder_host, child, tags=["onb-child:1"], output=lines.append)
    assert "# Executing 2 build triggers" in "".join(lines)
    assert not result.image.container_config.get("OnBuild")  # not inherited by grandchildren
    files = _files(builder_host, "onb-child:1", "dir /s /b /a-d C:\\app C:\\t.txt")
    assert files == ["app/Dockerfile", "app/hello.txt", "t.txt"]
    assert _files(builder_host, "onb-child:1", "type t.txt") == ["triggered"]
    again = build(builder_host, child, tags=["onb-child:2"], output=_quiet)
    assert again.image.id == result.image.id and again.containers_run == 0  # the triggers' steps are cached


def test_a_run_whose_program_is_missing_fails_naming_the_step(builder_host: Host, tmp_path: Path) -> None:
    context = _context(tmp_path, 'FROM windowsservercore\nSHELL ["no-such-shell.exe", "-Command"]\n'
                                 "RUN Write-Host hi\n")
    with pytest.raises(BuildStepFailed) as info:
        build(builder_host, context, tags=["noshell:1"], output=_quiet)
    assert info.value.step == 3 and "no-such-shell.exe" in str(info.value) and "could not be started" in str(info.value)
    assert list(builder_host.records.all()) == []


def test_without_an_output_the_build_logs_and_never_prints(builder_host: Host, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    context = _context(tmp_path, "FROM windowsservercore\nRUN echo built-line\n")
    with caplog.at_level(logging.INFO, logger="wincontainers.build"):
        build(builder_host, context, tags=["logged:1"])
    lines = [r.getMessage() for r in caplog.records if r.name == "wincontainers.build"]
    assert "Step 1/2 : FROM windowsservercore" in lines and "built-line" in lines
    assert "Successfully tagged logged:1" in lines
    assert capsys.readouterr().out == ""
