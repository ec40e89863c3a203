"""Container commands of the ``wincontainers`` CLI that list and control containers: ``ps``,
``top``, ``stop``, ``kill``, ``rm``, ``pause``, ``unpause``, ``rename`` and ``inspect`` (which
also finds images and networks, as ``docker inspect`` does). Starting containers and their
streams are in :mod:`wincontainers.cli.running`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Optional

from wincontainers import errors
from wincontainers.cli._common import (
    ago,
    duration,
    each_container,
    opened_container,
    open_host,
    print_table,
    size,
)
from wincontainers.cli.networks import network_document
from wincontainers.container import Container
from wincontainers.host import Host
from wincontainers.records import NAME_PATTERN
from wincontainers.container_types import ContainerInfo
from wincontainers.monitors import MonitorFiles
from wincontainers.cli.templates import render, render_rows

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    ps = sub.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    ps.add_argument("-q", "--quiet", action="store_true", help="print ids only")
    ps.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="name=, status=, label=KEY[=VALUE], ancestor=, id= (repeatable)")
    ps.add_argument("--format", metavar="TEMPLATE", help="Go-template subset: {{.ID}}, {{.Names}}, {{json .}}, table")
    ps.add_argument("--no-trunc", action="store_true", help="full IDs and commands")
    ps.add_argument("-n", "--last", type=int, metavar="N", help="the N last created containers (any state)")
    ps.add_argument("-l", "--latest", action="store_true", help="the last created container (any state)")

    top = sub.add_parser("top", help="list a container's processes")
    top.add_argument("container")

    stop = sub.add_parser("stop", help="stop containers (graceful, then forced after the timeout)")
    stop.add_argument("-t", "--time", type=float, default=10.0, metavar="S", help="seconds of grace (default 10)")
    stop.add_argument("containers", nargs="+")

    kill = sub.add_parser("kill", help="terminate containers at once")
    kill.add_argument("containers", nargs="+")

    rm = sub.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("containers", nargs="+")

    pause = sub.add_parser("pause", help="pause containers")
    pause.add_argument("containers", nargs="+")
    unpause = sub.add_parser("unpause", help="resume paused containers")
    unpause.add_argument("containers", nargs="+")
    rename = sub.add_parser("rename", help="rename a container")
    rename.add_argument("container")
    rename.add_argument("new_name", metavar="NEW_NAME")

    stats = sub.add_parser("stats", help="memory and CPU of running containers")
    stats.add_argument("--no-stream", action="store_true", help="print once instead of every second")
    stats.add_argument("containers", nargs="*", help="default: every running container")
    port = sub.add_parser("port", help="a container's port mappings")
    port.add_argument("container")
    port.add_argument("private_port", nargs="?", metavar="PORT[/PROTO]")

    cp = sub.add_parser("cp", help="copy files between a container and the host (keeps Windows metadata)")
    cp.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a host path, or - (a tar on stdin)")
    cp.add_argument("dest", metavar="DEST", help="CONTAINER:PATH, a host path, or - (a tar on stdout)")
    diff = sub.add_parser("diff", help="what changed in a stopped container's file system")
    diff.add_argument("container")
    export = sub.add_parser("export", help="a container's whole file system as a tar")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    export.add_argument("container")

    inspect = sub.add_parser("inspect", help="show containers (IPs, port mappings), images or networks as JSON")
    inspect.add_argument("-f", "--format", metavar="TEMPLATE", help="Go-template subset: {{.State.Status}}, "
                         "{{json .Config}}")
    inspect.add_argument("--type", choices=("container", "image", "network"),
                         help="look only for this kind of object (default: a container, else an image, else a network)")
    inspect.add_argument("objects", nargs="+", metavar="NAME")


def _status_text(host: Host, row: ContainerInfo, record: Any) -> str:
    code = "" if row.exit_code is None else f" ({row.exit_code})"
    if row.state == "damaged":
        return "Damaged record (rm -f)"
    if row.state == "running":
        status = f"Up {ago(record.started)}"
        if record.detached and MonitorFiles(host.files, host.state_dir, row.id).status() == "dead":
            status += " (unmonitored)"
    elif row.state == "paused":
        status = f"Up {ago(record.started)} (Paused)"
    elif row.state == "exited":
        status = f"Exited{code} {ago(record.finished)} ago".rstrip()
    elif row.state == "restarting":
        status = f"Restarting{code} {ago(record.finished)} ago".rstrip()
    else:
        status = "Created"
    if record is not None and record.restart_count:
        status += f", {record.restart_count} restart{'s' if record.restart_count != 1 else ''}"
    return status


def _ps_row(host: Host, row: ContainerInfo, record: Any, no_trunc: bool) -> dict[str, Any]:
    """One container as ``docker ps --format`` names its fields (``record``: None when damaged)."""
    command = row.command or ""
    if not no_trunc and len(command) > 20:
        command = command[:20] + "…"
    return {
        "ID": row.id if no_trunc else row.short_id, "Image": row.image, "Command": f'"{command}"',
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(row.created)),
        "RunningFor": f"{ago(row.created)} ago", "State": row.state, "Status": _status_text(host, row, record),
        "Names": row.name, "Labels": ",".join(f"{k}={v}" for k, v in (record.labels if record else {}).items()),
        "Mounts": ",".join((record.volumes if record else {}).values()),
        "RestartCount": record.restart_count if record else 0,
    }


_FILTERS = ("name", "status", "label", "ancestor", "id")


def _matches(row: ContainerInfo, record: Any, filters: list[tuple[str, str]]) -> bool:
    """Docker's rule: values of one key are alternatives, different keys must all match."""
    by_key: dict[str, list[str]] = {}
    for key, value in filters:
        by_key.setdefault(key, []).append(value)

    def one(key: str, value: str) -> bool:
        if key == "name":
            return value.lstrip("/") in row.name
        if key == "id":
            return row.id.startswith(value.lower())
        if key == "status":
            return row.state == value
        if key == "ancestor":
            return record is not None and value in (record.image, record.image.split(":")[0], record.image_id or "")
        name, sep, wanted = value.partition("=")
        labels = record.labels if record else {}
        return name in labels and (not sep or labels[name] == wanted)

    return all(any(one(key, v) for v in values) for key, values in by_key.items())


def cmd_ps(args: argparse.Namespace) -> int:
    filters = []
    for item in args.filter:
        key, sep, value = item.partition("=")
        if not sep or key not in _FILTERS:
            raise errors.BadInput(f"--filter {item!r}: KEY=VALUE with KEY one of {', '.join(_FILTERS)}")
        filters.append((key, value))
    if args.last is not None and args.last < 0:
        raise errors.BadInput("--last must not be negative")
    host = open_host(args)
    # as Docker: a status filter, -n and -l look at every container; other filters at running ones
    everything = args.all or any(key == "status" for key, _ in filters) or args.last is not None or args.latest
    listed = host.containers.list(all=everything)
    records = {r.id: None if r.state == "damaged" else host.records.load(r.id) for r in listed}  # read once
    rows = [r for r in listed if _matches(r, records[r.id], filters)]
    if args.latest:
        rows = rows[:1]
    elif args.last is not None:
        rows = rows[:args.last]
    if args.quiet:
        for row in rows:
            print(row.id if args.no_trunc else row.short_id)
        return 0
    template = args.format or "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}"
    lines = render_rows(template, [_ps_row(host, row, records[row.id], args.no_trunc) for row in rows],
                        {"ID": "CONTAINER ID", "RunningFor": "CREATED"})
    for line in lines:
        print(line)
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    with opened_container(args) as container:
        rows = container.top()
    table = [("PID", "NAME", "CPU", "PRIVATE WORKING SET")]
    for p in rows:
        cpu = (p.cpu_user_100ns + p.cpu_kernel_100ns) / 10_000_000
        table.append((str(p.pid), p.image, f"{int(cpu // 3600):02d}:{int(cpu % 3600 // 60):02d}:{cpu % 60:06.3f}",
                      size(p.memory_private_bytes)))
    print_table(table)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if args.time < 0:
        raise errors.BadInput("the stop timeout must not be negative")

    def stop(c: Container) -> str:
        result = c.stop(args.time)
        return f"{c.name} ({result.outcome}, {result.elapsed:.2f} s)"

    return each_container(args, stop)


def _on_each(method: str) -> Callable[[argparse.Namespace], int]:
    """A verb that calls one method of each container named, printing its name (kill, pause...)."""
    def command(args: argparse.Namespace) -> int:
        def act(c: Container) -> str:
            getattr(c, method)()
            return c.name

        return each_container(args, act)

    return command


cmd_kill, cmd_pause, cmd_unpause = _on_each("kill"), _on_each("pause"), _on_each("unpause")


def cmd_rm(args: argparse.Namespace) -> int:
    def rm(c: Container) -> str:
        c.remove(force=args.force)
        return c.name

    def rm_damaged(host: Host, ref: str) -> str:  # -f also removes a container whose record is damaged
        return host.containers.remove_damaged(ref)[:12]

    return each_container(args, rm, rm_damaged if args.force else None)


def cmd_rename(args: argparse.Namespace) -> int:
    with opened_container(args) as container:
        container.rename(args.new_name)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    host = open_host(args)
    refs = args.containers or [row.id for row in host.containers.list()]
    containers = [host.containers.get(ref) for ref in refs]
    previous: dict[str, tuple[float, int]] = {}
    try:
        while True:
            table = [("CONTAINER ID", "NAME", "CPU %", "MEM USAGE", "PEAK", "UPTIME")]
            for c in containers:
                stats = c.stats()
                now, cpu = time.monotonic(), stats.cpu_total_100ns
                before = previous.get(c.id)
                percent = "--" if before is None or now <= before[0] else (
                    f"{(cpu - before[1]) / 1e7 / (now - before[0]) * 100:.2f}%")
                previous[c.id] = (now, cpu)
                table.append((c.short_id, c.name, percent, size(stats.memory_commit_bytes),
                               size(stats.memory_commit_peak_bytes), duration(stats.uptime_seconds)))
            if not args.no_stream and sys.stdout.isatty():
                print("\x1b[2J\x1b[H", end="")
            print_table(table)
            if args.no_stream:
                return 0
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
    finally:
        for c in containers:
            c.close()


def cmd_port(args: argparse.Namespace) -> int:
    with opened_container(args) as container:
        settings = container.network_settings()
    wanted = args.private_port
    if wanted and "/" not in wanted:
        wanted += "/tcp"
    lines = [f"{port} -> 0.0.0.0:{host_port}" for entry in settings for port, host_port in sorted(entry["Ports"].items())
             if wanted is None or port == wanted]
    if wanted and not lines:
        print(f"wincontainers: no public port '{wanted}' published for {args.container}", file=sys.stderr)
        return 1
    for line in lines:
        print(line if wanted is None else line.split(" -> ", 1)[1])
    return 0


def _container_path(text: str) -> Optional[tuple[str, str]]:
    """``web:C:\\app`` -> ("web", "C:\\app"); a host path (``C:\\x``, ``./x``, ``-``) -> None."""
    name, sep, path = text.partition(":")
    if not sep or (len(name) == 1 and name.isalpha() and path[:1] in ("\\", "/")):
        return None
    if not NAME_PATTERN.match(name) or not path:
        raise errors.BadInput(f"{text!r}: CONTAINER:PATH, with a container name or ID before the colon")
    return name, path


def cmd_cp(args: argparse.Namespace) -> int:
    source, dest = _container_path(args.source), _container_path(args.dest)
    if (source is None) == (dest is None):
        raise errors.BadInput("cp copies between a container and the host: exactly one of SRC and DEST is "
                              "CONTAINER:PATH")
    host = open_host(args)
    container = host.containers.get((source or dest)[0])  # type: ignore[index]
    try:
        if source is not None:
            if args.dest == "-":
                container.copy_from(source[1], sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                done = container.copy_from(source[1], args.dest)
                print(f"Successfully copied {size(done.bytes)} ({done.entries} entries) to {args.dest}",
                      file=sys.stderr)
        else:
            assert dest is not None
            done = container.copy_to(sys.stdin.buffer if args.source == "-" else args.source, dest[1])
            print(f"Successfully copied {size(done.bytes)} ({done.entries} entries) to {args.dest}", file=sys.stderr)
    finally:
        container.close()
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    with opened_container(args) as container:
        for change in container.diff():
            print(change)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.output is None and sys.stdout.isatty():
        raise errors.BadInput("cowardly refusing to write a tar to a terminal: use -o FILE or redirect the output")
    with opened_container(args) as container:
        container.export(args.output if args.output is not None else sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Like ``docker inspect``: each name is looked up as a container, an image, then a network."""
    host = open_host(args)

    def container(ref: str) -> dict[str, object]:
        found = host.containers.get(ref)
        try:
            return found.inspect()
        finally:
            found.close()

    lookups: dict[str, Callable[[str], object]] = {
        "container": container, "image": host.images.inspect,
        "network": lambda ref: network_document(host.networks.get(ref)),
    }
    kinds = [args.type] if args.type else list(lookups)
    docs, status = [], 0
    for ref in args.objects:
        for kind in kinds:
            try:
                docs.append(lookups[kind](ref))
                break
            except errors.NotFound:
                continue
        else:
            print(f"wincontainers: no such object: {ref}", file=sys.stderr)
            status = 1
    if args.format:
        for doc in docs:
            print(render(args.format, doc))
    else:
        print(json.dumps(docs, indent=4))
    return status


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ps": cmd_ps, "cp": cmd_cp, "diff": cmd_diff, "export": cmd_export, "stats": cmd_stats, "port": cmd_port, "pause": cmd_pause, "unpause": cmd_unpause, "rename": cmd_rename, "top": cmd_top, "stop": cmd_stop, "kill": cmd_kill, "rm": cmd_rm,
    "inspect": cmd_inspect,
}
