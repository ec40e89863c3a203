"""Registry credentials where Docker keeps them, so that ``docker login`` and ``wincontainers
login`` serve each other.

Looked up in this order: the caller's arguments; the environment
(``WINCONTAINERS_REGISTRY_USERNAME`` and ``WINCONTAINERS_REGISTRY_PASSWORD``); Docker's
``config.json`` (``$DOCKER_CONFIG``, else ``~/.docker``): a credential helper named for the
registry (``credHelpers``), the default store (``credsStore``), then ``auths`` (base64
``user:password``, or an identity token). Helpers are Docker's ``docker-credential-<name>``
programs (``get``, ``store``, ``erase``), run with a timeout and a bounded answer.

``login`` checks the credentials against the registry before keeping them (in the helper when
one is configured, else in ``auths``; the file is written with this user's permissions only),
``logout`` forgets them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

from wincontainers import errors
from wincontainers.images.distribution import Credentials, Registry

log = logging.getLogger("wincontainers.images.credentials")

__all__ = ["docker_config_path", "lookup", "login", "logout", "read_json_file", "DOCKER_HUB_KEY"]

#: the key Docker keeps Docker Hub's credentials under
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 30.0
HELPER_OUTPUT_LIMIT = 64 << 10
CONFIG_LIMIT = 4 << 20


def docker_config_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if environ is None else environ
    folder = env.get("DOCKER_CONFIG")
    return (Path(folder) if folder else Path.home() / ".docker") / "config.json"


def _key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry in ("docker.io", "registry-1.docker.io", "index.docker.io") else registry


def read_json_file(path: Path, what: str, limit: int = CONFIG_LIMIT) -> dict[str, Any]:
    """A small JSON object file of the user's (``{}`` when there is none); BadInput naming it
    and ``what`` it should be when it is too large, not JSON or not an object."""
    try:
        if path.stat().st_size > limit:
            raise errors.BadInput(f"{path} is larger than {limit} bytes")
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise errors.BadInput(f"{path} cannot be read as {what}: {exc}") from None
    if not isinstance(doc, dict):
        raise errors.BadInput(f"{path} is not a JSON object")
    return doc


def _read_config(path: Path) -> dict[str, Any]:
    return read_json_file(path, "Docker's config")


def _helper_for(doc: Mapping[str, Any], key: str) -> Optional[str]:
    helpers = doc.get("credHelpers")
    name = (helpers.get(key) if isinstance(helpers, dict) else None) or doc.get("credsStore")
    return str(name) if name else None


def _run_helper(name: str, action: str, payload: str) -> Optional[str]:
    """``docker-credential-<name> <action>`` with ``payload`` on stdin; its output, or None when
    it has nothing for that registry."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise errors.BadInput(f"credential helper name {name!r} is not a plain name")
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise errors.NotFound("credentials", subject=f"credential helper {name}",
                              message=f"docker-credential-{name} is not on PATH",
                              hint="install it, or remove it from Docker's config.json")
    try:
        done = subprocess.run([program, action], input=payload.encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise errors.HcsTimeout("credentials", subject=f"credential helper {name}",
                                message=f"docker-credential-{name} {action} did not answer in {HELPER_TIMEOUT:g} s") from None
    output = done.stdout[:HELPER_OUTPUT_LIMIT].decode("utf-8", "replace")
    if done.returncode != 0:
        said = (done.stderr or done.stdout)[:500].decode("utf-8", "replace").strip()
        if "credentials not found" in said.lower() or "not found" in said.lower():
            return None
        raise errors.BadInput(f"docker-credential-{name} {action} failed ({done.returncode}): {said}")
    return output


def lookup(registry: str, *, username: Optional[str] = None, password: Optional[str] = None,
           environ: Optional[Mapping[str, str]] = None, config: Optional[Path] = None) -> Optional[Credentials]:
    """The credentials for ``registry`` (host[:port]), or None to go anonymous."""
    if username is not None or password is not None:
        if not username or password is None:
            raise errors.BadInput("give both a user name and a password (or neither)")
        return Credentials(username, password)
    env = os.environ if environ is None else environ
    if env.get("WINCONTAINERS_REGISTRY_USERNAME") and env.get("WINCONTAINERS_REGISTRY_PASSWORD") is not None:
        return Credentials(env["WINCONTAINERS_REGISTRY_USERNAME"], env["WINCONTAINERS_REGISTRY_PASSWORD"])
    path = config or docker_config_path(env)
    doc = _read_config(path)
    key = _key(registry)
    helper = _helper_for(doc, key)
    if helper:
        output = _run_helper(helper, "get", key)
        if output:
            try:
                answer = json.loads(output)
                return Credentials(str(answer["Username"]), str(answer["Secret"]))
            except (ValueError, KeyError, TypeError):
                raise errors.BadInput(f"docker-credential-{helper} get answered no Username and Secret") from None
    entry = (doc.get("auths") or {}).get(key) if isinstance(doc.get("auths"), dict) else None
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return Credentials("<token>", str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            user, sep, secret = base64.b64decode(str(entry["auth"]), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise errors.BadInput(f"{path}: the auth of {key} is not base64 user:password") from None
        if not sep:
            raise errors.BadInput(f"{path}: the auth of {key} is not base64 user:password")
        return Credentials(user, secret)
    return None


def _write_config(path: Path, doc: Mapping[str, Any]) -> None:
    """Replace Docker's config atomically, readable by this user only (it may hold passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

def login(registry: str, username: str, password: str, *, config: Optional[Path] = None,
          environ: Optional[Mapping[str, str]] = None, insecure: Optional[bool] = None) -> str:
    """Check the credentials against ``registry``, then keep them (its helper, or ``auths``).
    Returns where they went. Nothing is kept when the registry refuses them."""
    if not username or not password:
        raise errors.BadInput("login needs a user name and a password")
    Registry(registry, credentials=Credentials(username, password), insecure=insecure, retries=2).check()
    path = config or docker_config_path(environ)
    doc = _read_config(path)
    key = _key(registry)
    helper = _helper_for(doc, key)
    if helper:
        _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": username, "Secret": password}))
        return f"docker-credential-{helper}"
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise errors.BadInput(f"{path}: auths is not a JSON object")
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
    _write_config(path, doc)
    log.info("credentials for %s kept in %s", registry, path)
    return str(path)


def logout(registry: str, *, config: Optional[Path] = None, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Forget the credentials of ``registry``; whether there were any."""
    path = config or docker_config_path(environ)
    doc = _read_config(path)
    key = _key(registry)
    helper = _helper_for(doc, key)
    if helper:
        return _run_helper(helper, "erase", key) is not None
    auths = doc.get("auths")
    if not isinstance(auths, dict) or key not in auths:
        return False
    del auths[key]
    _write_config(path, doc)
    return True
