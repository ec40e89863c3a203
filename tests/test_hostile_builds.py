"""Hostile build contexts: links, wildcards, ``..``, absolute sources and hostile tars.

Every case keeps a canary tree outside the context, which the context's links point into; after
the build (whether it succeeded or was refused) the canary must be byte-for-byte what it was, with
nothing added, and the image must hold none of its files.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from wincontainers import Host, errors
from wincontainers.build.builder import BuildStepFailed, build
from wincontainers.build.context import BuildContext


@pytest.fixture
def builder_host(host: Host) -> Iterator[Host]:
    yield host
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    host.images.cache_clear()
    host.images.gc()
    assert list(host.layers_root.iterdir()) == []


def _quiet(_text: str) -> None:
    pass


def _snapshot(root: Path) -> dict[str, str]:
    """Every name under ``root`` (links not followed) with a hash of what it is."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _tar(members: list[tuple[str, Optional[bytes], Optional[str]]]) -> bytes:
    """A tar of (name, data, link target): data for a file, a target for a symlink, neither for a folder."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, target in members:
            info = tarfile.TarInfo(name)
            if target is not None:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _image_files(host: Host, image: str) -> tuple[list[str], bytes]:
    """The names under ``C:\\x`` that are not folders (links included), and all their data."""
    with host.containers.create(image) as c:
        c.start()
        listing = c.run('cmd /S /C "dir /s /b /a-d x"').stdout.decode().split("\r\n")
        names = sorted(line[3:].replace("\\", "/") for line in listing if line)
        data = c.run('cmd /S /C "for /r x %f in (*) do @type "%f""').stdout
        c.stop()
    return names, data


# Each case: (Dockerfile lines after FROM, how to lay out the context given the canary folder,
# whether the build must be refused, files that must be in C:\x when it is not).
Layout = Callable[[Path, Path], None]


def _links_into_canary(ctx: Path, canary: Path) -> None:
    (ctx / "sub1").mkdir()
    (ctx / "sub2").mkdir()
    os.symlink(canary / "secret.txt", ctx / "sub1" / "link.txt")
    (ctx / "sub2" / "link.txt").write_bytes(b"overwrite the host")


def _dangling_link(ctx: Path, canary: Path) -> None:
    (ctx / "sub1").mkdir()
    (ctx / "sub2").mkdir()
    os.symlink(canary / "created-by-build.txt", ctx / "sub1" / "link.txt")
    (ctx / "sub2" / "link.txt").write_bytes(b"create on the host")


def _link_then_tar(ctx: Path, canary: Path) -> None:
    (ctx / "sub1").mkdir()
    os.symlink(canary / "secret.txt", ctx / "sub1" / "link.txt")
    (ctx / "evil.tar").write_bytes(_tar([("link.txt", b"overwrite through ADD", None)]))


def _dir_link(ctx: Path, canary: Path) -> None:
    os.symlink(canary, ctx / "evil")
    (ctx / "fine.txt").write_bytes(b"fine")


def _nested_dir_link(ctx: Path, canary: Path) -> None:
    (ctx / "sub").mkdir()
    (ctx / "sub" / "ok.txt").write_bytes(b"ok")
    os.symlink(canary, ctx / "sub" / "up")
    os.symlink("../..", ctx / "sub" / "dots")


def _file_links(ctx: Path, canary: Path) -> None:
    (ctx / "a").mkdir()
    os.symlink(canary / "secret.txt", ctx / "a" / "link.txt")


def _plain(ctx: Path, canary: Path) -> None:
    (ctx / "sub").mkdir()
    (ctx / "sub" / "ok.txt").write_bytes(b"ok")


def _hostile_tars(ctx: Path, canary: Path) -> None:
    (ctx / "dots.tar").write_bytes(_tar([("../../escape.txt", b"escape", None)]))
    (ctx / "abs.tar").write_bytes(_tar([(str(canary / "abs.txt"), b"absolute", None)]))
    (ctx / "via-link.tar").write_bytes(_tar([("l", None, str(canary)), ("l/through.txt", b"through", None)]))


def _link_in_destination(ctx: Path, canary: Path) -> None:
    (ctx / "links").mkdir()
    os.symlink(canary, ctx / "links" / "d")
    (ctx / "f.txt").write_bytes(b"into the link")


CASES: dict[str, tuple[str, Layout, bool, list[str]]] = {
    "copy-two-sources-through-a-link": ("COPY sub1 sub2 /x/", _links_into_canary, False, ["x/link.txt"]),
    "copy-through-a-dangling-link": ("COPY sub1 sub2 /x/", _dangling_link, False, ["x/link.txt"]),
    "add-tar-through-a-link": ("ADD sub1 evil.tar /x/", _link_then_tar, False, ["x/link.txt"]),
    "wildcard-matching-a-folder-link": ("COPY ev* fine.txt /x/", _dir_link, False, ["x/evil", "x/fine.txt"]),
    "named-folder-link-out": ("COPY evil /x/", _dir_link, False, ["x/evil"]),
    "links-inside-a-copied-folder": ("COPY sub /x/", _nested_dir_link, False, ["x/dots", "x/ok.txt", "x/up"]),
    "wildcard-file-links": ("COPY */link.txt /x/", _file_links, False, ["x/link.txt"]),
    # as BuildKit does, ".." stops at the context's root
    "dot-dot-source": ("COPY ../../ /x/", _plain, False, ["x/Dockerfile", "x/sub/ok.txt"]),
    "dot-dot-in-the-middle": ("COPY sub/../../../sub /x/", _plain, False, ["x/ok.txt"]),
    "absolute-source": ("COPY {canary}/secret.txt /x/", _plain, True, []),
    "add-hostile-tars": ("ADD dots.tar /x/", _hostile_tars, True, []),
    "add-absolute-member": ("ADD abs.tar /x/", _hostile_tars, True, []),
    "add-member-through-a-link": ("ADD via-link.tar /x/", _hostile_tars, False, ["x/l/through.txt"]),
    "link-in-the-destination": ("COPY links /x/\nCOPY f.txt /x/d/", _link_in_destination, True, []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_context_never_reaches_the_host(builder_host: Host, tmp_path: Path, case: str) -> None:
    lines, layout, refused, expected = CASES[case]
    canary = tmp_path / "canary"
    (canary / "inner").mkdir(parents=True)
    (canary / "secret.txt").write_bytes(b"host secret")
    (canary / "inner" / "deep.txt").write_bytes(b"deep host file")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    layout(ctx, canary)
    (ctx / "Dockerfile").write_text("FROM windowsservercore\n" + lines.format(canary=canary) + "\n")
    before = _snapshot(canary)
    if refused:
        with pytest.raises((BuildStepFailed, errors.BadInput)):
            build(builder_host, ctx, tags=["hostile:1"], output=_quiet)
    else:
        build(builder_host, ctx, tags=["hostile:1"], output=_quiet)
        names, data = _image_files(builder_host, "hostile:1")
        assert names == sorted(expected)
        assert b"host secret" not in data and b"deep host file" not in data
    assert _snapshot(canary) == before
    assert not (tmp_path / "escape.txt").exists()


def test_a_wildcard_never_walks_a_link_out_of_the_context(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "d" / "host.txt").write_bytes(b"host")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    os.symlink(outside, ctx / "evil")
    context = BuildContext(ctx)
    [found] = context.expand("ev*")
    sources = context.sources(found)
    assert [(s.target, s.directory) for s in sources] == [("evil", False)]
    assert all(outside not in s.path.resolve().parents for s in sources if not s.path.is_symlink())
