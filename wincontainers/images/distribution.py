"""A client for the OCI distribution API: what a registry serves and takes.

One :class:`Registry` per registry host, over urllib3 (a pool of kept-alive connections,
streaming bodies, and nothing else pulled in: see the commit that chose it). It speaks what
Docker and containerd speak:

- **authentication** driven by the registry's ``WWW-Authenticate`` challenge: none, HTTP basic,
  or the bearer-token flow (a token for the repository's scope from the challenge's realm,
  asked with the credentials when there are any, kept until it expires);
- **manifests and indexes** by tag or digest, in the OCI and Docker media types; a manifest
  fetched by digest is checked against it;
- **blobs**, streamed to a file and checked for size and digest while they come, resumed with
  ``Range`` after a broken transfer; pushed whole or in chunks, or mounted from another
  repository of the registry when it has them;
- **retries** of 429 and 5xx answers (and broken connections) with a doubling back-off that
  honours ``Retry-After``.

Errors are :class:`RegistryError` (and its kinds), naming the registry, the repository, the
HTTP status and the registry's own error codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import attrs
import urllib3

from wincontainers import errors

log = logging.getLogger("wincontainers.images.distribution")

__all__ = [
    "Registry", "Credentials", "Manifest", "RegistryError", "RegistryAuthError", "RegistryNotFound",
    "OCI_INDEX", "OCI_MANIFEST", "DOCKER_LIST", "DOCKER_MANIFEST", "MANIFEST_TYPES", "INDEX_TYPES",
    "parse_challenge", "registry_url",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, *INDEX_TYPES)

#: a manifest is small; one larger than this is refused (hostile input)
MANIFEST_LIMIT = 4 << 20
#: a token answer, an error body
SMALL_LIMIT = 1 << 20
CHUNK = 1 << 20
#: a connection refused or cut is tried this many times more (a 429 or 5xx answer: ``retries``)
CONNECT_RETRIES = 2
_RETRY_STATUS = {429, 500, 502, 503, 504}
_DIGEST = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_TOKEN_ARG = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


class RegistryError(errors.WincontainersError):
    """A registry refused or failed a request: ``registry``, ``repository``, ``status`` (HTTP),
    ``codes`` (the registry's error codes, e.g. ``MANIFEST_UNKNOWN``)."""

    def __init__(self, message: str, *, registry: str = "", repository: str = "", status: Optional[int] = None,
                 codes: Sequence[str] = (), hint: Optional[str] = None) -> None:
        where = f"{registry}/{repository}" if repository else registry
        text = f"{where}: {message}" if where else message
        if hint:
            text += f". Hint: {hint}"
        super().__init__(text)
        self.registry = registry
        self.repository = repository
        self.status = status
        self.codes = tuple(codes)
        self.hint = hint


class RegistryAuthError(RegistryError):
    """The registry wants credentials this client does not have, or refused them."""


class RegistryNotFound(RegistryError):
    """No such repository, manifest, tag or blob."""


@attrs.frozen(repr=False)
class Credentials:
    """A user name and password (or an identity token as the password). The password never
    shows in a repr."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")


@attrs.frozen
class Manifest:
    """A manifest or an index as the registry sent it: its media type, its bytes (the digest is
    of those exact bytes) and its digest."""

    media_type: str
    data: bytes
    digest: str

    @property
    def document(self) -> dict[str, Any]:
        doc = json.loads(self.data)
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {self.digest[:19]} is not a JSON object")
        return doc

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _TOKEN_ARG.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
    return scheme.lower(), params


def registry_url(host: str, *, insecure: Optional[bool] = None) -> str:
    """The base URL of a registry host: https, except plain http for a registry on this
    machine's loopback (as Docker allows) or one said to be insecure."""
    if insecure is None:
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        insecure = name in ("localhost", "[::1]") or name.startswith("127.")
    return f"{'http' if insecure else 'https'}://{host}"


class _Token:
    def __init__(self, value: str, expires: float) -> None:
        self.value = value
        self.expires = expires


class Registry:
    """One registry host (``registry-1.docker.io``, ``mcr.microsoft.com``, ``127.0.0.1:5000``).

    ``credentials`` are sent only when the registry asks (basic) or to its token realm (bearer).
    ``retries``: how many times a 429/5xx answer or a broken connection is tried again.
    Thread-safe: blobs may be moved from several threads at once.
    """

    def __init__(self, host: str, *, credentials: Optional[Credentials] = None, insecure: Optional[bool] = None,
                 timeout: float = 60.0, retries: int = 5, backoff: float = 0.5,
                 pool: Optional[urllib3.PoolManager] = None) -> None:
        if not host or "/" in host or any(c.isspace() for c in host):
            raise errors.BadInput(f"registry host {host!r}: a host name with an optional :port")
        self.host = host
        self.base = registry_url(host, insecure=insecure)
        self.credentials = credentials
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.pool = pool or urllib3.PoolManager(num_pools=4, maxsize=8, retries=False)
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._basic = False  # the registry asked for basic authentication

    def __repr__(self) -> str:
        return f"<Registry {self.base}>"

    # -- requests ---------------------------------------------------------------------------------

    def _auth_header(self, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get(scope)
            if token is not None and token.expires > time.monotonic():
                return {"Authorization": f"Bearer {token.value}"}
            if self._basic and self.credentials is not None:
                return {"Authorization": self.credentials.basic()}
        return {}

    def request(self, method: str, path: str, *, scope: str, repository: str = "",
                headers: Optional[Mapping[str, str]] = None, body: Optional[Callable[[], Any]] = None,
                fields: Optional[Mapping[str, str]] = None, stream: bool = False,
                ok: Sequence[int] = (200,)) -> Any:
        """One request, authenticated as the registry asks and tried again on 429/5xx. ``path``
        is below the host (``/v2/...``) or a full URL (a Location the registry gave);
        ``body`` makes the body anew for each try. Returns the response (its body unread when
        ``stream``); an answer not in ``ok`` raises :class:`RegistryError`."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        if fields:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(fields)
        authenticated = False
        attempt = 0
        while True:
            sent = {**(headers or {}), **self._auth_header(scope)}
            try:
                response = self.pool.request(method, url, headers=sent, body=body() if body is not None else None,
                                             preload_content=False, redirect=True, timeout=self.timeout)
            except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out: twice more at most
                if attempt >= min(self.retries, CONNECT_RETRIES):
                    raise RegistryError(f"{method} {_short(url)} failed: {exc}", registry=self.host,
                                        repository=repository, hint="check the registry's address and that it runs")
                attempt += 1
                self._sleep(attempt, None)
                continue
            status = response.status
            if status == 401 and not authenticated:
                challenge = response.headers.get("WWW-Authenticate", "")
                _drain(response)
                self._answer(challenge, scope, repository)
                authenticated = True
                continue
            if status in _RETRY_STATUS and attempt < self.retries:
                retry_after = response.headers.get("Retry-After")
                _drain(response)
                attempt += 1
                self._sleep(attempt, retry_after)
                continue
            if status not in ok:
                raise self._failure(method, url, response, repository)
            if not stream:
                response.read(cache_content=True)
            return response

    def _sleep(self, attempt: int, retry_after: Optional[str]) -> None:
        delay = min(30.0, self.backoff * (2 ** (attempt - 1)))
        if retry_after:
            try:
                delay = max(0.0, min(60.0, float(retry_after)))
            except ValueError:
                pass
        log.info("registry %s: trying again in %.1f s (attempt %d of %d)", self.host, delay, attempt, self.retries)
        time.sleep(delay)

    def _answer(self, challenge: str, scope: str, repository: str) -> None:
        """Meet a 401's challenge: basic (with our credentials) or a bearer token for ``scope``."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryAuthError("the registry asks for a user name and password", registry=self.host,
                                        repository=repository, status=401,
                                        hint=f"wincontainers login {self.host}, or give credentials")
            with self._lock:
                self._basic = True
            return
        if scheme != "bearer" or not params.get("realm"):
            raise RegistryAuthError(f"the registry asks for authentication this client does not speak "
                                    f"({challenge[:80]!r})", registry=self.host, repository=repository, status=401)
        self._fetch_token(params, scope, repository)

    def _fetch_token(self, params: Mapping[str, str], scope: str, repository: str) -> None:
        realm = params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise RegistryAuthError(f"the token realm {realm!r} is not an http(s) URL", registry=self.host,
                                    repository=repository)
        query = {"service": params.get("service", "")}
        wanted = scope or params.get("scope", "")
        if wanted:
            query["scope"] = wanted
        headers = {"Authorization": self.credentials.basic()} if self.credentials is not None else {}
        try:
            response = self.pool.request("GET", realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query),
                                         headers=headers, preload_content=False, timeout=self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryAuthError(f"the token server {_short(realm)} cannot be reached: {exc}", registry=self.host,
                                    repository=repository) from None
        text = _read_limited(response, SMALL_LIMIT)
        if response.status in (401, 403):
            raise RegistryAuthError(f"the token server refused {'the credentials' if self.credentials else 'an anonymous'}"
                                    f" request for {wanted or 'a token'}", registry=self.host, repository=repository,
                                    status=response.status, hint=f"wincontainers login {self.host}")
        try:
            doc = json.loads(text)
            value = str(doc.get("token") or doc.get("access_token") or "")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError):
            value, lifetime = "", 0.0
        if response.status != 200 or not value:
            raise RegistryAuthError(f"the token server answered {response.status} without a token",
                                    registry=self.host, repository=repository, status=response.status)
        with self._lock:
            self._tokens[scope] = _Token(value, time.monotonic() + max(10.0, lifetime - 10.0))

    def _failure(self, method: str, url: str, response: Any, repository: str) -> RegistryError:
        body = _read_limited(response, SMALL_LIMIT)
        codes, messages = [], []
        try:
            for item in json.loads(body).get("errors") or []:
                codes.append(str(item.get("code", "")))
                messages.append(str(item.get("message", "")))
        except (ValueError, AttributeError):
            pass
        status = response.status
        detail = "; ".join(f"{c}: {m}" if m else c for c, m in zip(codes, messages)) or (
            body.decode("utf-8", "replace").strip()[:200] or response.reason or "")
        kind = RegistryNotFound if status == 404 else RegistryAuthError if status in (401, 403) else RegistryError
        hint = f"wincontainers login {self.host}" if status in (401, 403) else None
        return kind(f"{method} {_short(url)} answered {status} {detail}".rstrip(), registry=self.host,
                    repository=repository, status=status, codes=codes, hint=hint)

    # -- the API ------------------------------------------------------------------------------------

    def check(self) -> None:
        """``GET /v2/``: the registry answers and this client may use it (login checks this)."""
        self.request("GET", "/v2/", scope="")

    def manifest(self, repository: str, reference: str, *, accept: Sequence[str] = MANIFEST_TYPES) -> Manifest:
        """A manifest or index by tag or digest; one asked by digest must hash to it."""
        _check_repository(repository)
        response = self.request("GET", f"/v2/{repository}/manifests/{_quote(reference)}", scope=_pull(repository),
                                repository=repository, headers={"Accept": ", ".join(accept)}, stream=True)
        data = _read_limited(response, MANIFEST_LIMIT, what=f"the manifest {reference}", registry=self.host,
                             repository=repository)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"the manifest asked as {reference[:19]} hashes to {digest[:19]}", registry=self.host,
                                repository=repository)
        media_type = str(response.headers.get("Content-Type", "")).split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            try:
                media_type = str(json.loads(data).get("mediaType") or media_type)
            except (ValueError, AttributeError):
                pass
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"the manifest {reference} has media type {media_type!r}, not one of an image's",
                                registry=self.host, repository=repository)
        return Manifest(media_type, data, digest)

    def blob_size(self, repository: str, digest: str) -> Optional[int]:
        """The size of a blob the repository has (HEAD), None when it has not."""
        _check_digest(digest)
        try:
            response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository),
                                    repository=repository)
        except RegistryNotFound:
            return None
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else 0

    def fetch_blob(self, repository: str, digest: str, dest: Path, *, size: Optional[int] = None,
                   progress: Optional[Callable[[int], None]] = None) -> int:
        """Stream a blob into ``dest``, checked for ``size`` and digest as it comes; a transfer
        that breaks is resumed from where it stopped (``Range``), the whole is hashed again at
        the end only when it was resumed. ``dest`` appears only when it is right."""
        _check_digest(digest)
        partial = dest.with_name(dest.name + ".partial")
        hasher = hashlib.sha256()
        done = 0
        if partial.exists():  # a transfer an earlier call left: resumed
            with open(partial, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    hasher.update(chunk)
                    done += len(chunk)
        for attempt in range(self.retries + 1):
            headers = {"Range": f"bytes={done}-"} if done else {}
            response = self.request("GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository),
                                    repository=repository, headers=headers, stream=True, ok=(200, 206))
            if done and response.status == 200:  # the registry ignored the range: start again
                hasher, done = hashlib.sha256(), 0
                mode = "wb"
            else:
                mode = "ab" if done else "wb"
            try:
                with open(partial, mode) as out:
                    done = _copy_checked(response, out, hasher, done, size, progress, lambda: RegistryError(
                        f"blob {digest[:19]} is larger than its {size} bytes", registry=self.host,
                        repository=repository))
                break
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                response.release_conn()
                if attempt >= self.retries:
                    raise RegistryError(f"blob {digest[:19]}: the transfer broke after {done} bytes: {exc}",
                                        registry=self.host, repository=repository) from None
                log.info("registry %s: blob %s broke at %d bytes; resuming", self.host, digest[:19], done)
                self._sleep(attempt + 1, None)
            finally:
                response.release_conn()
        got = "sha256:" + hasher.hexdigest()
        if got != digest or (size is not None and done != size):
            partial.unlink(missing_ok=True)
            raise RegistryError(f"blob {digest[:19]} arrived as {got[:19]} ({done} bytes"
                                f"{'' if size is None else f', {size} expected'})", registry=self.host,
                                repository=repository, hint="the registry or something between serves other data")
        os.replace(partial, dest)
        return done

    def fetch_url(self, url: str, dest: Path, digest: str, size: int,
                  progress: Optional[Callable[[int], None]] = None) -> None:
        """A blob from a URL a descriptor names (a foreign layer's; no credentials go there),
        into ``dest``, checked for size and digest as it comes."""
        try:
            response = self.pool.request("GET", url, preload_content=False, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - urllib3's errors (and a URL it cannot parse), said with the URL
            raise RegistryError(f"{url}: {exc}") from None
        hasher = hashlib.sha256()
        try:
            if response.status != 200:
                raise RegistryError(f"{url} answered {response.status}")
            with open(dest, "wb") as out:
                done = _copy_checked(response, out, hasher, 0, size, progress,
                                     lambda: RegistryError(f"{url} sent more than {size} bytes"))
        finally:
            response.release_conn()
        if "sha256:" + hasher.hexdigest() != digest or done != size:
            raise RegistryError(f"{url} sent other data than {digest[:19]}")

    def push_blob(self, repository: str, digest: str, source: Path, *, mount_from: Sequence[str] = (),
                  chunk_size: Optional[int] = None, progress: Optional[Callable[[int], None]] = None) -> str:
        """Put a blob in ``repository`` unless it is there: ``"exists"``, ``"mounted"`` (taken from
        one of ``mount_from``, repositories of the same registry that have it) or ``"uploaded"``
        (whole, or in ``chunk_size`` pieces)."""
        _check_digest(digest)
        size = source.stat().st_size
        if self.blob_size(repository, digest) is not None:
            return "exists"
        scope = _push(repository)
        for origin in mount_from:
            if origin == repository:
                continue
            response = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope + " " + _pull(origin),
                                    repository=repository, fields={"mount": digest, "from": origin}, ok=(201, 202))
            if response.status == 201:
                return "mounted"
            self._cancel(response.headers.get("Location", ""), scope, repository)
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope, repository=repository,
                                ok=(202,))
        location = self._location(response, repository)
        if chunk_size is None or size <= chunk_size:
            self.request("PUT", location, scope=scope, repository=repository, fields={"digest": digest},
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                         body=lambda: _reader(source, 0, size, progress), ok=(201,))
            return "uploaded"
        offset = 0
        while offset < size:
            end = min(size, offset + chunk_size)
            start = offset
            response = self.request(
                "PATCH", location, scope=scope, repository=repository,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(end - start),
                         "Content-Range": f"{start}-{end - 1}"},
                body=lambda: _reader(source, start, end - start, progress), ok=(202,))
            location = self._location(response, repository)
            offset = end
        self.request("PUT", location, scope=scope, repository=repository, fields={"digest": digest},
                     headers={"Content-Length": "0"}, ok=(201,))
        return "uploaded"

    def _location(self, response: Any, repository: str) -> str:
        location = str(response.headers.get("Location", ""))
        if not location:
            raise RegistryError("the registry gave no upload location", registry=self.host, repository=repository)
        return urllib.parse.urljoin(self.base + "/", location)

    def _cancel(self, location: str, scope: str, repository: str) -> None:
        if location:
            try:
                self.request("DELETE", urllib.parse.urljoin(self.base + "/", location), scope=scope,
                             repository=repository, ok=(204, 404))
            except RegistryError as exc:
                log.info("could not cancel an upload at %s: %s", self.host, exc)

    def push_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Put a manifest (its exact bytes) under a tag or its digest; returns the digest."""
        _check_repository(repository)
        response = self.request("PUT", f"/v2/{repository}/manifests/{_quote(reference)}", scope=_push(repository),
                                repository=repository, headers={"Content-Type": manifest.media_type},
                                body=lambda: manifest.data, ok=(201,))
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != manifest.digest:
            raise RegistryError(f"the registry stored the manifest as {returned[:19]}, not {manifest.digest[:19]}",
                                registry=self.host, repository=repository)
        return manifest.digest

    def tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"/v2/{repository}/tags/list", scope=_pull(repository), repository=repository)
        doc = json.loads(response.data or b"{}")
        return [str(t) for t in doc.get("tags") or []]


# -- helpers ---------------------------------------------------------------------------------------------


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


_REPOSITORY = re.compile(r"\A[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z")


def _check_repository(repository: str) -> None:
    if not _REPOSITORY.match(repository) or len(repository) > 255:
        raise errors.BadInput(f"{repository!r} is not a repository name")


def _check_digest(digest: str) -> None:
    if not _DIGEST.match(digest):
        raise errors.BadInput(f"{digest!r} is not a sha256 digest")


def _quote(reference: str) -> str:
    return urllib.parse.quote(reference, safe=":")


def _short(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query[:40]}" if parts.query else "")


def _drain(response: Any) -> None:
    try:
        _read_limited(response, SMALL_LIMIT)
    finally:
        response.release_conn()


def _read_limited(response: Any, limit: int, *, what: str = "an answer", registry: str = "",
                  repository: str = "") -> bytes:
    """A response body, refused when it is larger than ``limit`` (a hostile or broken server)."""
    out = bytearray()
    try:
        for chunk in response.stream(64 << 10):
            out += chunk
            if len(out) > limit:
                raise RegistryError(f"{what} is larger than {limit} bytes", registry=registry, repository=repository)
    finally:
        response.release_conn()
    return bytes(out)


def _copy_checked(response: Any, out: Any, hasher: Any, done: int, size: Optional[int],
                  progress: Optional[Callable[[int], None]], too_large: Callable[[], Exception]) -> int:
    """A response body into ``out`` and ``hasher``, from ``done`` bytes on, refused (``too_large``)
    past ``size``; returns the bytes done."""
    for chunk in response.stream(CHUNK):
        done += len(chunk)
        if size is not None and done > size:
            raise too_large()
        hasher.update(chunk)
        out.write(chunk)
        if progress is not None:
            progress(len(chunk))
    return done


def _reader(path: Path, offset: int, length: int, progress: Optional[Callable[[int], None]]) -> Iterator[bytes]:
    """The bytes of ``path`` from ``offset``, in chunks (a body urllib3 streams)."""
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise RegistryError(f"{path} ended {left} bytes early while it was sent")
            left -= len(chunk)
            if progress is not None:
                progress(len(chunk))
            yield chunk
