"""Images from Dockerfiles and containers.

- ``parse_dockerfile(text)``: the BuildKit-compatible parser; ``.dump()`` is BuildKit's dump.
- ``build(host, context, tags=[...])``: a Dockerfile build with a cache (:mod:`.builder`).
- ``commit(container, tag)``: a stopped container's changes as a new image (:mod:`.commit`).
"""

from wincontainers.build.builder import BuildResult, BuildStepFailed, build
from wincontainers.build.commit import CommitFailed, commit
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
