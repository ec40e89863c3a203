"""Images from Dockerfiles and containers.

- ``parse_dockerfile(text)``: the BuildKit-compatible parser; ``.dump()`` is BuildKit's dump.
- ``build(host, context, tags=[...])``: a Dockerfile build with a cache (:mod:`.builder`).
- ``commit(container, tag)``: a stopped container's changes as a new image (:mod:`.commit`).

Loaded on first use (PEP 562): the parser and lexer need no host, cffi or driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wincontainers._lazy import exports

_LAZY = {
    "BuildResult": "wincontainers.build.builder",
    "BuildStepFailed": "wincontainers.build.builder",
    "build": "wincontainers.build.builder",
    "CommitFailed": "wincontainers.build.commits",
    "commit": "wincontainers.build.commits",
    "Dockerfile": "wincontainers.build.dockerfile",
    "DockerfileParseError": "wincontainers.build.dockerfile",
    "Heredoc": "wincontainers.build.dockerfile",
    "Instruction": "wincontainers.build.dockerfile",
    "parse_dockerfile": "wincontainers.build.dockerfile",
    "ShellLex": "wincontainers.build.lexer",
    "ShellLexError": "wincontainers.build.lexer",
}

if TYPE_CHECKING:
    from wincontainers.build.builder import BuildResult, BuildStepFailed, build
    from wincontainers.build.commits import CommitFailed, commit
    from wincontainers.build.dockerfile import (
        Dockerfile,
        DockerfileParseError,
        Heredoc,
        Instruction,
        parse_dockerfile,
    )
    from wincontainers.build.lexer import ShellLex, ShellLexError

__all__ = ["Dockerfile", "DockerfileParseError", "Heredoc", "Instruction", "parse_dockerfile", "ShellLex",
           "ShellLexError", "build", "BuildResult", "BuildStepFailed", "commit", "CommitFailed"]


__getattr__, __dir__ = exports(__name__, _LAZY)
