"""The OCI distribution client against Debian's docker-registry (the CNCF distribution server)
on 127.0.0.1 with a temporary store: without authentication and with htpasswd basic auth.

Blobs go up whole, in chunks and by cross-repository mount; manifests by tag and digest;
downloads are checked and resumed; answers the client cannot use are typed errors. A small
local server plays a registry that throttles, to see the back-off honour Retry-After.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from wincontainers.images.distribution import (
    OCI_MANIFEST,
    Credentials,
    Manifest,
    Registry,
    RegistryAuthError,
    RegistryError,
    RegistryNotFound,
    parse_challenge,
)

USER, PASSWORD = "builder", "s3cret-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(root: Path, *, htpasswd: Optional[Path] = None,
                   token: Optional[dict[str, str]] = None) -> Iterator[str]:
    """docker-registry serving ``root`` on a free 127.0.0.1 port; yields its host:port. With
    ``htpasswd`` it asks for basic auth, with ``token`` (realm, service, issuer, rootcertbundle)
    for bearer tokens."""
    binary = shutil.which("docker-registry")
    assert binary, "the tests need Debian's docker-registry (apt-get install docker-registry; .ci/run does)"
    port = _free_port()
    store = root / "store"
    store.mkdir(parents=True)
    auth = (f"auth:\n  htpasswd:\n    realm: wincontainers-test\n    path: {htpasswd}\n" if htpasswd else "")
    if token:
        auth = "auth:\n  token:\n" + "".join(f"    {k}: {v}\n" for k, v in token.items())
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {store}\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}")
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert proc.poll() is None, (root / "registry.log").read_text()
                assert time.monotonic() < deadline, "docker-registry did not listen"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("registry-basic")
    htpasswd = root / "htpasswd"
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True).stdout
    htpasswd.write_text(line.strip() + "\n")
    yield from start_registry(root, htpasswd=htpasswd)


def _blob(tmp_path: Path, name: str, data: bytes) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, "sha256:" + hashlib.sha256(data).hexdigest()


def _image(registry: Registry, repository: str, tmp_path: Path, layer_data: bytes, **push: Any) -> Manifest:
    """A config and a layer blob, and the OCI manifest naming them, pushed as ``repository:1``."""
    layer, layer_digest = _blob(tmp_path, "layer", layer_data)
    config, config_digest = _blob(tmp_path, "config", json.dumps({"os": "windows", "architecture": "amd64"}).encode())
    for path, digest in ((config, config_digest), (layer, layer_digest)):
        registry.push_blob(repository, digest, path, **push)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                      "size": config.stat().st_size},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                       "size": len(layer_data)}]}
    data = json.dumps(doc, separators=(",", ":")).encode()
    manifest = Manifest(OCI_MANIFEST, data, "sha256:" + hashlib.sha256(data).hexdigest())
    assert registry.push_manifest(repository, "1", manifest) == manifest.digest
    return manifest


def test_blobs_and_manifests_go_up_and_come_back(open_registry: str, tmp_path: Path) -> None:
    registry = Registry(open_registry)
    registry.check()
    data = os.urandom(3 * 1024 * 1024 + 17)
    manifest = _image(registry, "wc/app", tmp_path, data, chunk_size=1024 * 1024)  # chunked: four PATCHes
    by_tag = registry.manifest("wc/app", "1")
    assert by_tag == manifest and by_tag.document["layers"][0]["size"] == len(data)
    assert registry.manifest("wc/app", manifest.digest).data == manifest.data
    layer_digest = by_tag.document["layers"][0]["digest"]
    assert registry.blob_size("wc/app", layer_digest) == len(data)
    got = tmp_path / "got"
    assert registry.fetch_blob("wc/app", layer_digest, got, size=len(data)) == len(data)
    assert got.read_bytes() == data and not (tmp_path / "got.partial").exists()
    assert registry.tags("wc/app") == ["1"]
    # the same blobs again: there already; into another repository: mounted, not sent
    layer = tmp_path / "layer"
    assert registry.push_blob("wc/app", layer_digest, layer) == "exists"
    assert registry.push_blob("wc/other", layer_digest, layer, mount_from=["wc/app"]) == "mounted"
    assert registry.blob_size("wc/other", layer_digest) == len(data)
    small, small_digest = _blob(tmp_path, "small", b"whole")
    assert registry.push_blob("wc/other", small_digest, small) == "uploaded"  # one PUT


def test_what_is_missing_or_wrong_is_a_typed_error(open_registry: str, tmp_path: Path) -> None:
    registry = Registry(open_registry)
    with pytest.raises(RegistryNotFound) as info:
        registry.manifest("wc/nothing", "latest")
    assert info.value.status == 404 and "MANIFEST_UNKNOWN" in info.value.codes
    assert "wc/nothing" in str(info.value)
    assert registry.blob_size("wc/nothing", "sha256:" + "0" * 64) is None
    with pytest.raises(Exception, match="not a repository name"):
        registry.manifest("Bad/Name", "1")
    with pytest.raises(Exception, match="not a sha256 digest"):
        registry.blob_size("wc/app", "md5:abc")
    path, digest = _blob(tmp_path, "x", b"payload")
    with pytest.raises(RegistryError) as bad:  # the registry checks what it is given against its digest
        registry.push_blob("wc/app", "sha256:" + "1" * 64, path)
    assert bad.value.status == 400 and "DIGEST_INVALID" in bad.value.codes
    nowhere = Registry(f"127.0.0.1:{_free_port()}", retries=1, backoff=0.01)
    with pytest.raises(RegistryError, match="failed"):
        nowhere.check()


def test_a_broken_download_is_resumed_and_a_wrong_one_refused(open_registry: str, tmp_path: Path) -> None:
    registry = Registry(open_registry)
    data = os.urandom(2 * 1024 * 1024)
    manifest = _image(registry, "wc/resume", tmp_path, data)
    digest = manifest.document["layers"][0]["digest"]
    dest = tmp_path / "resumed"
    (tmp_path / "resumed.partial").write_bytes(data[: 1024 * 1024 + 5])  # what a broken transfer left
    seen: list[int] = []
    assert registry.fetch_blob("wc/resume", digest, dest, size=len(data), progress=seen.append) == len(data)
    assert dest.read_bytes() == data and sum(seen) == len(data) - (1024 * 1024 + 5)  # only the rest came
    wrong = tmp_path / "wrong"
    (tmp_path / "wrong.partial").write_bytes(b"not the start of it")
    with pytest.raises(RegistryError, match="arrived as"):
        registry.fetch_blob("wc/resume", digest, wrong, size=len(data))
    assert not wrong.exists() and not (tmp_path / "wrong.partial").exists()
    with pytest.raises(RegistryError, match="larger than"):
        registry.fetch_blob("wc/resume", digest, tmp_path / "short", size=10)


def test_basic_auth_asks_for_credentials_and_takes_them(basic_registry: str, tmp_path: Path) -> None:
    with pytest.raises(RegistryAuthError) as anonymous:
        Registry(basic_registry).check()
    assert anonymous.value.hint and "login" in anonymous.value.hint
    with pytest.raises(RegistryAuthError) as wrong:
        Registry(basic_registry, credentials=Credentials(USER, "wrong")).check()
    assert wrong.value.status == 401
    registry = Registry(basic_registry, credentials=Credentials(USER, PASSWORD))
    manifest = _image(registry, "wc/private", tmp_path, b"private layer")
    assert registry.manifest("wc/private", "1").digest == manifest.digest
    assert PASSWORD not in repr(registry.credentials)


class _Throttling(http.server.BaseHTTPRequestHandler):
    """A registry that answers 429 (Retry-After: 0) to the first two requests, then 200."""

    hits: list[float] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server convention
        _Throttling.hits.append(time.monotonic())
        if len(_Throttling.hits) <= 2:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_throttled_requests_are_tried_again_after_retry_after() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _Throttling.hits = []
        registry = Registry(f"127.0.0.1:{server.server_address[1]}", backoff=5.0)  # Retry-After wins
        started = time.monotonic()
        registry.check()
        assert len(_Throttling.hits) == 3 and time.monotonic() - started < 3
        _Throttling.hits = []
        with pytest.raises(RegistryError) as info:
            Registry(f"127.0.0.1:{server.server_address[1]}", retries=1).check()
        assert info.value.status == 429
    finally:
        server.shutdown()
        server.server_close()


def test_challenges_are_parsed_with_quotes_and_commas() -> None:
    assert parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                           'scope="repository:a/b:pull,push"') == ("bearer", {
                               "realm": "https://auth.example/token", "service": "registry.example",
                               "scope": "repository:a/b:pull,push"})
    assert parse_challenge('Basic realm="x \\"y\\""') == ("basic", {"realm": 'x "y"'})


# -- credentials: Docker's config.json, its helpers, the environment -----------------------------------------


HELPER = """#!{python}
import json, sys
store = {store!r}
action = sys.argv[1]
data = sys.stdin.read()
try:
    kept = json.load(open(store))
except FileNotFoundError:
    kept = {{}}
if action == "get":
    if data not in kept:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": data, "Username": kept[data][0], "Secret": kept[data][1]}}))
elif action == "store":
    doc = json.loads(data)
    kept[doc["ServerURL"]] = [doc["Username"], doc["Secret"]]
    json.dump(kept, open(store, "w"))
elif action == "erase":
    if data not in kept:
        print("credentials not found in native keychain")
        sys.exit(1)
    del kept[data]
    json.dump(kept, open(store, "w"))
"""


def test_login_keeps_checked_credentials_where_docker_does(basic_registry: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import stat
    import sys

    from wincontainers.images import credentials

    config = tmp_path / "docker" / "config.json"
    env = {"DOCKER_CONFIG": str(config.parent)}
    assert credentials.lookup(basic_registry, environ=env) is None
    with pytest.raises(RegistryAuthError):
        credentials.login(basic_registry, USER, "wrong", environ=env)
    assert not config.exists()  # refused: nothing kept
    assert credentials.login(basic_registry, USER, PASSWORD, environ=env) == str(config)
    doc = json.loads(config.read_text())
    assert base64.b64decode(doc["auths"][basic_registry]["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    found = credentials.lookup(basic_registry, environ=env)
    assert found == Credentials(USER, PASSWORD)
    Registry(basic_registry, credentials=found).check()
    assert credentials.lookup("docker.io", environ=env) is None  # kept per registry
    assert credentials.lookup(basic_registry, environ={**env, "WINCONTAINERS_REGISTRY_USERNAME": "ci",
                                                       "WINCONTAINERS_REGISTRY_PASSWORD": "x"}) == Credentials("ci", "x")
    assert credentials.lookup(basic_registry, username="a", password="b", environ=env) == Credentials("a", "b")
    assert credentials.logout(basic_registry, environ=env) is True
    assert credentials.lookup(basic_registry, environ=env) is None and credentials.logout(basic_registry, environ=env) is False

    # a credential helper named for the registry (credHelpers) takes over: login stores there
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-wctest"
    helper.write_text(HELPER.format(python=sys.executable, store=str(tmp_path / "keychain.json")))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config.write_text(json.dumps({"credHelpers": {basic_registry: "wctest"}}))
    assert credentials.lookup(basic_registry, environ=env) is None
    assert credentials.login(basic_registry, USER, PASSWORD, environ=env) == "docker-credential-wctest"
    assert "auths" not in json.loads(config.read_text())  # not in the file
    assert credentials.lookup(basic_registry, environ=env) == Credentials(USER, PASSWORD)
    assert credentials.logout(basic_registry, environ=env) is True
    assert credentials.lookup(basic_registry, environ=env) is None
    config.write_text(json.dumps({"credsStore": "missing-helper"}))
    with pytest.raises(Exception, match="docker-credential-missing-helper is not on PATH"):
        credentials.lookup(basic_registry, environ=env)
    config.write_text("{not json")
    with pytest.raises(Exception, match="cannot be read as Docker's config"):
        credentials.lookup(basic_registry, environ=env)


# -- the bearer-token flow against a real challenge ------------------------------------------------------------


class TokenServer:
    """A small token server, as Docker Hub's auth.docker.io: a JWT (RS256, the signing
    certificate in ``x5c``) for the scope asked, granting everything to ``USER:PASSWORD`` and
    pull only to anyone else. It counts the tokens it gave."""

    def __init__(self, root: Path) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wincontainers test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = root / "token-root.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.issued: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server convention
                import base64
                import urllib.parse

                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                user = None
                if auth.startswith("Basic "):
                    who, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                    if (who, secret) != (USER, PASSWORD):
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    user = who
                access = []
                for scope in query.get("scope", []):
                    for one in scope.split(" "):
                        kind, _, rest = one.partition(":")
                        repo, _, actions = rest.rpartition(":")
                        allowed = [a for a in actions.split(",") if user is not None or a == "pull"]
                        access.append({"type": kind, "name": repo, "actions": allowed})
                token = server.sign({"iss": "wc-test-issuer", "sub": user or "", "aud": query["service"][0],
                                     "access": access})
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/token"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def sign(self, claims: dict[str, Any]) -> str:
        import base64
        import secrets as pysecrets

        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        claims = {**claims, "iat": now, "nbf": now - 10, "exp": now + 300, "jti": pysecrets.token_hex(8)}
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        self.issued.append(claims)
        return f"{signing_input}.{b64(signature)}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def test_the_bearer_flow_meets_a_real_challenge(tmp_path: Path) -> None:
    tokens = TokenServer(tmp_path)
    config_auth = {"realm": tokens.url, "service": "wc-registry", "issuer": "wc-test-issuer",
                   "rootcertbundle": str(tokens.bundle)}
    try:
        for host in start_registry(tmp_path / "registry", token=config_auth):
            anonymous = Registry(host)
            anonymous.check()  # GET /v2/ with a token of no scope
            with pytest.raises(RegistryAuthError) as refused:  # anonymous may pull, not push
                _image(anonymous, "wc/tokened", tmp_path, b"layer")
            assert refused.value.status == 401
            builder = Registry(host, credentials=Credentials(USER, PASSWORD))
            manifest = _image(builder, "wc/tokened", tmp_path, b"layer")
            assert anonymous.manifest("wc/tokened", "1").digest == manifest.digest  # pull: anyone
            granted = [c for c in tokens.issued if c["sub"] == USER]
            assert granted and any(a["name"] == "wc/tokened" and "push" in a["actions"]
                                   for c in granted for a in c["access"])
            before = len(tokens.issued)
            builder.manifest("wc/tokened", "1")
            builder.manifest("wc/tokened", manifest.digest)
            assert len(tokens.issued) == before  # the token is kept for its scope until it expires
            with pytest.raises(RegistryAuthError, match="token server refused"):
                Registry(host, credentials=Credentials(USER, "wrong")).manifest("wc/tokened", "1")
    finally:
        tokens.close()
