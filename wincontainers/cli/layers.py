"""Layer commands of the ``wincontainers`` CLI: ``layer import|export|check|ls|rm``. ``check``
needs no host: it reads the tar alone and says what would break an import."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from wincontainers import errors
from wincontainers.cli._common import for_each, open_host, print_table, size

if TYPE_CHECKING:
    from wincontainers.layerfile import TarLimits

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    layer = sub.add_parser("layer", help="import, export, check, list and remove layers")
    lsub = layer.add_subparsers(dest="layer_command", metavar="COMMAND")
    lsub.required = True
    limp = lsub.add_parser("import", help="import a layer tar (checked first; refused with the reasons)")
    limp.add_argument("--parent", action="append", default=[], metavar="L",
                      help="parent layer (id or folder), nearest first; repeat for the chain")
    limp.add_argument("--base", action="store_true", help="import as a base layer")
    limp.add_argument("--no-check", action="store_true",
                      help="skip the report (what would write outside the layer is still refused)")
    _limit_arguments(limp)
    limp.add_argument("file")
    lexp = lsub.add_parser("export", help="export a layer (a container's sandbox: its changes) as a tar")
    lexp.add_argument("--compression", choices=("none", "gzip", "zstd"), default="none")
    lexp.add_argument("--unsupported-reparse", choices=("error", "keep", "skip"), default="error",
                      help="what to do with WSL/LX symlinks and other reparse points a tar cannot carry")
    lexp.add_argument("layer")
    lexp.add_argument("file")
    lchk = lsub.add_parser("check", help="report what in a layer tar would break an import (exit 1) or "
                                         "the file cannot be read (exit 2)")
    lchk.add_argument("--json", action="store_true", help="the report as JSON")
    lchk.add_argument("--parent", action="append", default=[], metavar="DIR",
                      help="parent layer folder, to check hard links into it")
    lchk.add_argument("--base", action="store_true", help="check as a base layer")
    _limit_arguments(lchk)
    lchk.add_argument("file")
    lls = lsub.add_parser("ls", help="list layers")
    lls.add_argument("-q", "--quiet", action="store_true", help="print ids only")
    lrm = lsub.add_parser("rm", help="remove layers")
    lrm.add_argument("-f", "--force", action="store_true", help="even when other layers use them")
    lrm.add_argument("layers", nargs="+")


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    from wincontainers.layerfile import DEFAULT_LIMITS

    parser.add_argument("--max-entries", type=int, default=DEFAULT_LIMITS.max_entries, metavar="N",
                        help=f"refuse a tar of more entries (default {DEFAULT_LIMITS.max_entries})")
    parser.add_argument("--max-size", type=int, default=DEFAULT_LIMITS.max_total_size, metavar="BYTES",
                        help=f"refuse a larger uncompressed tar (default {DEFAULT_LIMITS.max_total_size})")


def _limits(args: argparse.Namespace) -> "TarLimits":
    from wincontainers.layerfile import DEFAULT_LIMITS, TarLimits

    try:
        return TarLimits(DEFAULT_LIMITS.max_extended_header, args.max_entries, args.max_size)
    except ValueError as exc:
        raise errors.BadInput(str(exc)) from None


def cmd_layer(args: argparse.Namespace) -> int:
    if args.layer_command == "check":
        return _layer_check(args)
    from wincontainers.layers import LayerRejected

    host = open_host(args)
    progress = sys.stderr.isatty()
    if args.layer_command == "import":
        try:
            layer = host.layers.import_tar(args.file, args.parent, base=True if args.base else None,
                                           check=not args.no_check, progress=progress, limits=_limits(args))
        except LayerRejected as exc:
            for finding in exc.report.findings:
                print(finding.line(), file=sys.stderr)
            print(f"wincontainers: {len(exc.report.errors)} problem(s); nothing was imported", file=sys.stderr)
            return 1
        print(layer.id)
        return 0
    if args.layer_command == "export":
        result = host.layers.export_tar(args.layer, args.file, compression=args.compression,
                                        unsupported_reparse=args.unsupported_reparse, progress=progress)
        print(result.diff_id)
        return 0
    if args.layer_command == "ls":
        layers = host.layers.list()
        if args.quiet:
            for layer in layers:
                print(layer.id)
            return 0
        table = [("LAYER ID", "KIND", "PARENTS", "SIZE", "DIFF ID")]
        for layer in layers:
            table.append((layer.short_id, layer.kind, str(len(layer.parents)),
                          size(layer.size) if layer.size is not None else "-", (layer.diff_id or "-")[:19]))
        print_table(table)
        return 0
    def destroy(ref: str) -> str:
        host.layers.destroy(ref, force=args.force)
        return ref

    return for_each(args.layers, destroy)


def _layer_check(args: argparse.Namespace) -> int:
    from wincontainers.layerfile import check_layer

    if not os.path.isfile(args.file) or not os.access(args.file, os.R_OK):
        print(f"wincontainers: cannot read {args.file}", file=sys.stderr)
        return 2
    report = check_layer(args.file, parents=[Path(p) for p in args.parent], base=True if args.base else None,
                         limits=_limits(args))
    unreadable = report.entries == 0 and report.rules() & {"malformed-tar", "bad-metadata"}
    if args.json:
        print(report.dumps())
    else:
        for finding in report.findings:
            print(finding.line())
        print(f"{report.entries} entries, {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
              + (f", diff ID {report.diff_id}" if report.diff_id else ""), file=sys.stderr)
    if unreadable:
        return 2
    return 0 if report.ok else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"layer": cmd_layer}
