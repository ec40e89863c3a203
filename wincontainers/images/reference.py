"""Image references as Docker reads them: ``windowsservercore`` is
``docker.io/library/windowsservercore:latest``; ``mcr.microsoft.com/windows/nanoserver:ltsc2022``
keeps its registry; ``name@sha256:...`` pins a digest.
"""

from __future__ import annotations

import re
from typing import Optional

import attrs

from wincontainers import errors

__all__ = ["Reference", "parse_reference", "ReferenceError_", "DEFAULT_DOMAIN"]

DEFAULT_DOMAIN = "docker.io"
_OFFICIAL = "library/"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?\Z")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z", re.ASCII)  # Go's \w: ASCII only
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")
_MAX_NAME = 255


class ReferenceError_(errors.BadInput):
    """Not a valid image reference."""


@attrs.frozen
class Reference:
    domain: str
    path: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def name(self) -> str:
        """``docker.io/library/app``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """``app`` (Docker's short form)."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len(_OFFICIAL):] if self.path.startswith(_OFFICIAL) else self.path
        return self.name

    def __str__(self) -> str:
        """The full reference: ``docker.io/library/app:1.0``."""
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def familiar(self) -> str:
        """``app:1.0`` as ``docker images`` shows it."""
        return self.familiar_name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> "Reference":
        return attrs.evolve(self, tag=tag, digest=None)


def parse_reference(text: str, *, default_tag: Optional[str] = "latest") -> Reference:
    """Normalize ``text`` (adding ``docker.io``, ``library/`` and ``:latest`` as Docker does)."""
    if not text or text != text.strip():
        raise ReferenceError_(f"invalid reference format: {text!r}")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not _DIGEST.match(digest):
            raise ReferenceError_(f"invalid reference format: {text!r} (bad digest)")
    tag = None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG.match(tag):
            raise ReferenceError_(f"invalid reference format: {text!r} (bad tag {tag!r})")
    first, sep, rest = remainder.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not _DOMAIN.match(domain):
            raise ReferenceError_(f"invalid reference format: {text!r} (bad registry {domain!r})")
    else:
        domain, path = DEFAULT_DOMAIN, remainder
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL + path
    if path != path.lower():
        raise ReferenceError_(f"invalid reference format: repository name ({path}) must be lowercase")
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            raise ReferenceError_(f"invalid reference format: {text!r} (bad name component {component!r})")
    if len(f"{domain}/{path}") > _MAX_NAME:
        raise ReferenceError_(f"invalid reference format: {text!r} is longer than {_MAX_NAME} characters")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain, path, tag, digest)
