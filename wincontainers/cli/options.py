"""The flags ``run`` and ``create`` share (Docker's names), turned into ``containers.create``
options. Every value is checked here, before the host is touched: a bad flag is a BadInput with
the flag's name, exit status 125."""

from __future__ import annotations

import argparse
import math
import os
import re
from typing import Any, Optional

from wincontainers import errors
from wincontainers.cli.networks import add_publish_argument
from wincontainers.container import parse_env_list

__all__ = ["add_create_arguments", "create_options", "parse_volume", "parse_mount", "parse_memory", "parse_cpus",
           "read_env_file"]

#: An absolute Windows path (``C:\\data``, ``\\\\server\\share``) or a POSIX one (the simulated host's).
_PATH = r"(?:[A-Za-z]:[\\/][^:]*|[\\/][^:]*)"
_VOLUME = re.compile(rf"\A({_PATH}):({_PATH})(?::(ro|rw))?\Z")
_MEMORY = re.compile(r"\A([0-9]+(?:\.[0-9]+)?)([bkmg]?)\Z", re.IGNORECASE)
#: The longest --env-file a command takes (a hostile file cannot fill memory).
ENV_FILE_LIMIT = 1 << 20


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    """``docker create``'s flags that mean something here (``run`` adds ``-d``)."""
    parser.add_argument("--rm", action="store_true", help="remove the container when its main process exits")
    parser.add_argument("-t", "--tty", action="store_true", help="give the main process a console")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep standard input open")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                        help="set an environment variable (NAME alone: its value here, if set)")
    parser.add_argument("--env-file", action="append", default=[], metavar="FILE",
                        help="read environment variables from a file (K=V lines, # comments)")
    parser.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    parser.add_argument("-u", "--user", metavar="USER", help="the account the main process runs as")
    parser.add_argument("--entrypoint", metavar="CMD",
                        help="run CMD instead of the image's ENTRYPOINT (its CMD is then dropped)")
    parser.add_argument("--name", help="container name")
    parser.add_argument("--hostname", help="container host name")
    parser.add_argument("-l", "--label", action="append", default=[], metavar="K=V", help="set a label")
    parser.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CONTAINER[:ro]",
                        help="map a host folder into the container (absolute paths)")
    parser.add_argument("--mount", action="append", default=[], metavar="type=bind,source=S,target=T[,readonly]",
                        help="map a host folder (bind mounts only)")
    parser.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (512m, 2g)")
    parser.add_argument("--cpus", metavar="N", help="processors (whole numbers: HCS assigns processors)")
    parser.add_argument("--isolation", choices=("default", "process", "hyperv"), default="default",
                        help="process (the default) or hyperv: in a utility VM (runs images of another Windows "
                             "build; Server 2016 and later)")
    parser.add_argument("--storage-opt", action="append", default=[], metavar="size=SIZE",
                        help="size=20g: the container's C: grows to at least this size (Server 2016 and later)")
    parser.add_argument("--hyperv-route", choices=("vmcompute", "computecore"), default=None,
                        help="how a Hyper-V container is made on 1809+: vmcompute (the default, HCS makes the VM) "
                             "or computecore (a utility VM of its own)")
    parser.add_argument("--restart", metavar="POLICY", default="no",
                        help="no, on-failure[:N], always or unless-stopped (applied to detached containers)")
    parser.add_argument("--stop-timeout", type=float, metavar="S", help="seconds of grace a stop gives (default 10)")
    parser.add_argument("--log-opt", action="append", default=[], metavar="K=V",
                        help="json-file log options: max-size=10m, max-file=3")
    add_publish_argument(parser)
    parser.add_argument("--network", metavar="NETWORK", help="attach to this network (name or ID; with -p alone: nat)")


def parse_volume(text: str) -> tuple[str, str, bool]:
    """``-v HOST:CONTAINER[:ro|rw]`` -> (host, container, read only). Both paths absolute."""
    m = _VOLUME.match(text)
    if m is None:
        raise errors.BadInput(f"-v {text!r}: expected HOST:CONTAINER[:ro], both absolute paths "
                              r"(C:\data:C:\data or /srv/data:C:\data); named volumes are not supported")
    return m.group(1), m.group(2), m.group(3) == "ro"


def parse_mount(text: str) -> tuple[str, str, bool]:
    """``--mount type=bind,source=S,target=T[,readonly]`` -> (host, container, read only)."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro") and (not sep or value.lower() in ("1", "true")):
            fields["readonly"] = "true"
        elif sep and key in ("type", "source", "src", "target", "destination", "dst"):
            fields[{"src": "source", "destination": "target", "dst": "target"}.get(key, key)] = value
        else:
            raise errors.BadInput(f"--mount {text!r}: unknown field {part!r} (type, source, target, readonly)")
    if fields.get("type", "bind") != "bind":
        raise errors.BadInput(f"--mount {text!r}: only type=bind is supported (there are no named volumes)")
    if not fields.get("source") or not fields.get("target"):
        raise errors.BadInput(f"--mount {text!r}: source and target are required")
    return fields["source"], fields["target"], fields.get("readonly") == "true"


def parse_memory(text: str) -> int:
    """``--memory 512m`` -> megabytes (at least 1), as HCS's memory limit counts."""
    m = _MEMORY.match(text.strip())
    if m is None:
        raise errors.BadInput(f"--memory {text!r}: a size such as 512m or 2g")
    value = float(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    megabytes = math.ceil(value / (1 << 20))
    if megabytes < 1 or megabytes > 1 << 30:
        raise errors.BadInput(f"--memory {text!r}: between 1m and 1024t")
    return megabytes


def parse_cpus(text: str) -> int:
    """``--cpus 2`` -> 2 processors. HCS's ProcessorCount is whole; a fraction is refused."""
    try:
        value = float(text)
    except ValueError:
        raise errors.BadInput(f"--cpus {text!r}: a number of processors") from None
    if not value.is_integer() or not 1 <= value <= 1024:
        raise errors.BadInput(f"--cpus {text!r}: whole processors from 1 (HCS assigns processors, not fractions)")
    return int(value)


def read_env_file(path: str) -> list[str]:
    """Docker's --env-file: ``K=V`` or ``K`` lines; blank lines and ``#`` comments skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read(ENV_FILE_LIMIT + 1)
    except OSError as exc:
        raise errors.BadInput(f"--env-file {path}: {exc.strerror or exc}") from None
    if len(data) > ENV_FILE_LIMIT:
        raise errors.BadInput(f"--env-file {path}: larger than {ENV_FILE_LIMIT} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise errors.BadInput(f"--env-file {path}: not UTF-8") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise errors.BadInput(f"--label {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def create_options(args: argparse.Namespace, environ: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The ``containers.create`` keyword arguments the flags ask for (all checked first)."""
    if args.hyperv_route is not None and args.isolation != "hyperv":
        raise errors.BadInput("--hyperv-route applies to --isolation hyperv only")
    env_items: list[str] = []
    for path in args.env_file:
        env_items += read_env_file(path)
    env = parse_env_list(env_items + list(args.env), dict(os.environ) if environ is None else environ)
    volumes: dict[str, Any] = {}
    for host, inside, read_only in [parse_volume(v) for v in args.volume] + [parse_mount(m) for m in args.mount]:
        if host in volumes:
            raise errors.BadInput(f"{host} is mapped twice")
        volumes[host] = {"bind": inside, "mode": "ro" if read_only else "rw"}
    if args.rm and args.restart not in ("no", ""):
        raise errors.BadInput("conflicting options: --restart and --rm (a container removed when it exits "
                              "cannot be restarted)")
    if args.stop_timeout is not None and args.stop_timeout < 0:
        raise errors.BadInput("--stop-timeout must not be negative")
    return {
        "name": args.name, "env": env, "workdir": args.workdir, "hostname": args.hostname, "tty": args.tty,
        "user": args.user, "labels": _labels(args.label), "volumes": volumes or None,
        "memory_mb": parse_memory(args.memory) if args.memory else None,
        "cpu_count": parse_cpus(args.cpus) if args.cpus else None,
        "network": args.network, "ports": args.publish or None, "restart_policy": args.restart,
        "log_options": list(args.log_opt), "stdin_open": args.interactive, "stop_timeout": args.stop_timeout,
        "entrypoint": args.entrypoint,
        "isolation": None if args.isolation == "default" else args.isolation, "hyperv_route": args.hyperv_route,
        "storage_size": parse_storage_opts(args.storage_opt),
    }


def parse_storage_opts(items: list[str]) -> Optional[int]:
    """``--storage-opt size=20g`` -> bytes; the only option Windows containers take."""
    size = None
    for item in items:
        key, _, value = item.partition("=")
        if key.strip().lower() != "size" or not value:
            raise errors.BadInput(f"--storage-opt {item!r}: only size=SIZE (e.g. size=50g) is supported")
        m = _MEMORY.match(value.strip())
        if m is None:
            raise errors.BadInput(f"--storage-opt {item!r}: a size such as 20g or 512m")
        size = math.ceil(float(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20,
                                              "g": 1 << 30}[m.group(2).lower()])
        if size < 1 << 20:
            raise errors.BadInput(f"--storage-opt {item!r}: at least 1m")
    return size
