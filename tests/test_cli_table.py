"""docs/cli.md's table of Docker verbs and flags is held to the parser: every verb it calls
supported (or different) parses its example, and every such flag is one the command accepts."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from wincontainers.cli import build_parser

TABLE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
SHOWN = ("supported", "different")


def _rows(header: str) -> list[list[str]]:
    text = TABLE.read_text(encoding="utf-8")
    section = text.split(header, 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")]
    assert rows, f"no table under {header!r}"
    return rows


def _subparser(name: str) -> argparse.ArgumentParser:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no subcommands")


VERBS = _rows("## Verbs")
FLAGS = _rows("## Flags")


@pytest.mark.parametrize("row", [r for r in VERBS if r[1] in SHOWN], ids=lambda r: r[0])
def test_each_verb_called_supported_parses_its_example(row: list[str]) -> None:
    verb, _, example, _ = row
    argv = shlex.split(example.strip("`").replace("\\\\", "\\\\\\\\"))
    assert argv and argv[0] in [v.strip("`") for v in verb.split(" / ")], f"{example} is not an example of {verb}"
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


@pytest.mark.parametrize("row", [r for r in FLAGS if r[2] in SHOWN], ids=lambda r: f"{r[0]} {r[1]}")
def test_each_flag_called_supported_is_accepted(row: list[str]) -> None:
    verb, flags = row[0].strip("`"), re.findall(r"`([^`]+)`", row[1])
    known = _subparser(verb)._option_string_actions
    for flag in flags:
        assert flag in known, f"`{verb} {flag}` is in docs/cli.md as {row[2]} but the parser does not take it"


def test_every_docker_container_verb_is_in_the_table() -> None:
    docker = {"attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill", "logs", "ls", "pause",
              "port", "prune", "rename", "restart", "rm", "run", "start", "stats", "stop", "top", "unpause", "update",
              "wait"}
    listed = {v.strip("`") for row in VERBS for v in row[0].split(" / ")}
    assert docker <= listed
    assert {row[1] for row in VERBS} <= {"supported", "different", "not yet", "not applicable"}
