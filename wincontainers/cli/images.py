"""Image commands of the ``wincontainers`` CLI: images, rmi, tag, history, commit,
build, save, load, pull, push, login, logout, image gc / fsck (Docker CLI conventions)."""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any, Callable

from wincontainers import errors
from wincontainers.cli._common import duration, for_each, open_host, print_table, size

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    images = sub.add_parser("images", help="list images")
    images.add_argument("-q", "--quiet", action="store_true", help="print image IDs only")

    rmi = sub.add_parser("rmi", help="remove images (untag; the image goes with its last tag)")
    rmi.add_argument("-f", "--force", action="store_true", help="remove even when tagged twice or used")
    rmi.add_argument("images", nargs="+")

    tag = sub.add_parser("tag", help="give an image another name")
    tag.add_argument("source")
    tag.add_argument("target")

    history = sub.add_parser("history", help="show an image's steps")
    history.add_argument("--no-trunc", action="store_true", help="do not shorten the commands")
    history.add_argument("image")

    commit = sub.add_parser("commit", help="create an image from a stopped container's changes")
    commit.add_argument("--stop", action="store_true", help="stop a running container first")
    commit.add_argument("--restart", action="store_true", help="with --stop: start the container again afterwards")
    commit.add_argument("-m", "--message", default="", help="commit message")
    commit.add_argument("-a", "--author", default="", help="author")
    commit.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                        help='a Dockerfile instruction for the config, e.g. \'CMD ["app.exe"]\' (repeatable)')
    commit.add_argument("container")
    commit.add_argument("tag", nargs="?")

    build = sub.add_parser("build", help="build an image from a Dockerfile")
    build.add_argument("-t", "--tag", action="append", default=[], help="name:tag for the image (repeatable)")
    build.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile)")
    build.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="set a build argument")
    build.add_argument("--no-cache", action="store_true", help="run every step again")
    build.add_argument("--target", help="build up to this stage")
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    build.add_argument("--isolation", choices=("default", "process", "hyperv"), default="default",
                       help="how RUN steps run: process (the default) or hyperv (a base image of another Windows "
                            "build builds that way)")
    build.add_argument("--pull", action="store_true", help="pull every FROM image again first")
    build.add_argument("context", help="the build context folder")

    save = sub.add_parser("save", help="write images to a docker-save archive or an OCI layout")
    save.add_argument("-o", "--output", help="the file (an OCI folder with --format oci; default: standard output)")
    save.add_argument("--format", choices=("docker", "oci"), default="docker",
                      help="docker: a docker-save tar (default); oci: an OCI image layout (a folder, or a tar "
                           "when the name ends in .tar)")
    save.add_argument("-f", "--force", action="store_true",
                      help="replace an existing file (or OCI layout) that save did not write")
    save.add_argument("images", nargs="+")

    load = sub.add_parser("load", help="load images from a docker-save archive or an OCI layout")
    load.add_argument("-i", "--input", help="the archive or OCI folder (default: standard input)")
    load.add_argument("--repository", help="the repository for OCI images named by a tag alone")
    load.add_argument("-q", "--quiet", action="store_true", help="print nothing")

    pull = sub.add_parser("pull", help="download an image from a registry")
    pull.add_argument("--platform", metavar="OS_VERSION",
                      help="the os.version to take from a multi-platform image (default: the host's build)")
    pull.add_argument("--isolation", choices=("default", "process", "hyperv"), default="default",
                      help="hyperv: an older build may be taken (a utility VM runs it)")
    pull.add_argument("--allow-nondistributable", action="store_true",
                      help="fetch non-distributable (Windows base) layers from their URLs")
    pull.add_argument("-q", "--quiet", action="store_true", help="print only the image's name")
    pull.add_argument("name")

    push = sub.add_parser("push", help="upload an image to a registry")
    push.add_argument("--allow-nondistributable", action="store_true",
                      help="send the host's Windows OS layers too (the registry must allow them)")
    push.add_argument("-q", "--quiet", action="store_true", help="print only the manifest digest")
    push.add_argument("name")

    login = sub.add_parser("login", help="keep credentials for a registry (checked against it first)")
    login.add_argument("-u", "--username")
    login.add_argument("-p", "--password", help="the password (better: --password-stdin)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.add_argument("server", nargs="?", default="docker.io")

    logout = sub.add_parser("logout", help="forget the credentials of a registry")
    logout.add_argument("server", nargs="?", default="docker.io")

    image = sub.add_parser("image", help="image store maintenance")
    image_sub = image.add_subparsers(dest="image_command", metavar="COMMAND")
    image_sub.required = True
    image_sub.add_parser("gc", help="remove unreferenced layers and blobs")
    fsck = image_sub.add_parser("fsck", help="check the image store (exit 1 when broken)")
    fsck.add_argument("--deep", action="store_true", help="also verify every blob's digest")
    fsck.add_argument("--repair", action="store_true",
                      help="move unreadable files to the store's quarantine folder, remove containers whose "
                           "record is damaged, rebuild the index and layer records")


def _created(text: Any) -> str:
    from wincontainers.images.config import parse_time

    when = parse_time(text)
    if when is None:
        return str(text) if text else "-"
    return f"{duration((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())} ago"


def cmd_images(args: argparse.Namespace) -> int:
    store = open_host(args).images
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    for image in store.list():
        if args.quiet:
            print(image.short_id)
            continue
        total = sum(r.size for r in (store.find_layer(c) for c in image.chain_ids) if r is not None)
        for tag in image.tags or [None]:
            rows.append((tag.familiar_name if tag else "<none>", (tag.tag or "<none>") if tag else "<none>",
                         image.short_id, _created(image.created), size(total)))
    for base in store.unregistered_host_images():  # what FROM/run find by name, recorded on first use
        if args.quiet:
            continue
        rows.append((base.name.lower(), base.version, "<host image>", _created(getattr(base, "created", None) or ""),
                     "-"))
    if not args.quiet:
        print_table(rows)
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    store = open_host(args).images
    return for_each(args.images, lambda ref: store.remove(ref, force=args.force))


def cmd_tag(args: argparse.Namespace) -> int:
    open_host(args).images.tag(args.source, args.target)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    store = open_host(args).images
    image = store.get(args.image)
    sizes = {r.diff_id: r.size for r in (store.find_layer(c) for c in image.chain_ids) if r is not None}
    rows = [("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")]
    for i, step in enumerate(store.history(image)):
        created_by = str(step.get("created_by", ""))
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        shown = size(sizes.get(step.get("diff_id", ""), 0)) if step.get("diff_id") else "0B"
        rows.append((image.short_id if i == 0 else "<missing>", _created(step.get("created")), created_by, shown,
                     str(step.get("comment", ""))))
    print_table(rows)
    return 0


def cmd_commit(args: argparse.Namespace) -> int:
    from wincontainers.build.commits import commit

    host = open_host(args)
    container = host.containers.get(args.container)
    try:
        image = commit(container, args.tag, message=args.message, author=args.author, changes=args.change,
                       stop=args.stop, restart=args.restart)
    finally:
        container.close()
    print(image.id)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from wincontainers.build.builder import build

    build_args = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        if not key:
            raise errors.BadInput(f"--build-arg {item!r}: expected NAME=VALUE")
        if not sep:  # Docker: NAME alone takes the value from the environment
            import os

            if key not in os.environ:
                continue
            value = os.environ[key]
        build_args[key] = value
    host = open_host(args)
    def to_stdout(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    output = (lambda _text: None) if args.quiet else to_stdout
    result = build(host, args.context, dockerfile=args.file, tags=args.tag, build_args=build_args,
                   no_cache=args.no_cache, target=args.target, output=output,
                   isolation=None if args.isolation == "default" else args.isolation, pull=args.pull)
    if args.quiet:
        print(result.image.id)
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    import contextlib
    import os
    import shutil

    from wincontainers.images.archive import save

    store = open_host(args).images
    if args.output:
        save(store, args.images, args.output, format=args.format, overwrite=args.force)
        return 0
    if args.format == "oci":
        raise errors.BadInput("--format oci needs -o (a folder or a .tar file)")
    if sys.stdout.isatty():
        raise errors.BadInput("refusing to write an archive to a terminal: use -o FILE or redirect the output")
    temp = store.new_temp_file(".tar")
    try:
        save(store, args.images, temp, format="docker")
        with open(temp, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
        sys.stdout.buffer.flush()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    import contextlib
    import os
    import shutil

    from wincontainers.images.archive import load

    store = open_host(args).images
    source = args.input
    temp = None
    if source is None:
        if sys.stdin.isatty():
            raise errors.BadInput("give the archive with -i FILE, or on standard input")
        temp = store.new_temp_file(".tar")
        with open(temp, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        source = str(temp)
    try:
        result = load(store, source, repository=args.repository)
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
    if not args.quiet:
        for image in result.images:
            if image.tags:
                for tag in image.repo_tags:
                    print(f"Loaded image: {tag}")
            else:
                print(f"Loaded image ID: {image.id}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from wincontainers.images import transfer

    store = open_host(args).images
    result = transfer.pull(store, args.name, build=store.build, os_version=args.platform,
                           hyperv=args.isolation == "hyperv", allow_nondistributable=args.allow_nondistributable,
                           progress=sys.stderr.isatty() and not args.quiet)
    if args.quiet:
        print(args.name)
    else:
        print(f"{args.name}: {result.downloaded} layer(s) downloaded, {result.reused} already here")
        print(f"Digest: {result.manifest_digest}")
        print(f"Image ID: {result.image.id}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from wincontainers.images import transfer

    store = open_host(args).images
    result = transfer.push(store, args.name, allow_nondistributable=args.allow_nondistributable,
                           progress=sys.stderr.isatty() and not args.quiet)
    if args.quiet:
        print(result.manifest_digest)
        return 0
    print(f"{result.reference}: {result.uploaded} blob(s) uploaded, {result.mounted} mounted, "
          f"{result.present} already there" + (f", {len(result.skipped)} not distributable left out"
                                               if result.skipped else ""))
    print(f"Digest: {result.manifest_digest}")
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    import getpass

    from wincontainers.images import credentials
    from wincontainers.images.transfer import registry_host

    server = registry_host(args.server)
    if args.password_stdin:
        if args.password:
            raise errors.BadInput("--password and --password-stdin exclude each other")
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise errors.BadInput("give the password with --password-stdin (or -p)")
    username = args.username or (input("Username: ") if sys.stdin.isatty() else "")
    where = credentials.login(server, username, password)
    print(f"Login Succeeded (credentials kept in {where})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from wincontainers.images import credentials
    from wincontainers.images.transfer import registry_host

    server = registry_host(args.server)
    if credentials.logout(server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    store = open_host(args).images
    if args.image_command == "gc":
        report = store.gc()
        for item in report.layers:
            print(f"deleted layer {item}")
        for item in report.blobs:
            print(f"deleted blob {item}")
        for item in report.other:
            print(f"deleted {item}")
        print(f"Total reclaimed space: {report.bytes_freed} bytes")
        return 0
    fsck = store.fsck(deep=args.deep, repair=args.repair)
    print(fsck.summary())
    return 0 if fsck.clean else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "images": cmd_images,
    "rmi": cmd_rmi,
    "tag": cmd_tag,
    "history": cmd_history,
    "commit": cmd_commit,
    "build": cmd_build,
    "pull": cmd_pull,
    "push": cmd_push,
    "login": cmd_login,
    "logout": cmd_logout,
    "save": cmd_save,
    "load": cmd_load,
    "image": cmd_image,
}
