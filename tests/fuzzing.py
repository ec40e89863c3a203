"""Mutations of valid archives, for the fuzz tests and ``bench/fuzz_archives.py``.

Each case is a valid input (a layer tar, a docker-save archive, an OCI layout tar) changed the way
damaged or hostile files are: cut short, bits flipped, a header's size rewritten (with a valid
checksum, so the reader believes it), a member duplicated, the whole thing gzipped and then cut.
The cases are a function of the seed, so a failure can be replayed.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from typing import Callable, Iterator

BLOCK = 512


def _fix_checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)


def _headers(data: bytes) -> list[int]:
    """Offsets of blocks that look like tar headers (a ustar magic)."""
    return [i for i in range(0, len(data) - BLOCK + 1, BLOCK) if data[i + 257:i + 262] == b"ustar"]


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _rewrite_header(data: bytes, rng: random.Random, field: slice, value: bytes) -> bytes:
    """One header's ``field`` set to ``value``, its checksum made valid again (so the reader
    believes it); bits flipped when there is no header."""
    headers = _headers(data)
    if not headers:
        return flip(data, rng)
    out = bytearray(data)
    at = rng.choice(headers)
    block = bytearray(out[at:at + BLOCK])
    block[field] = value
    _fix_checksum(block)
    out[at:at + BLOCK] = block
    return bytes(out)


def wrong_size(data: bytes, rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 511, 513, 1 << 20, 100 << 30, rng.randrange(1 << 16)])
    encoded = (b"%011o\0" % size) if size < 8 ** 11 else bytes([0x80]) + size.to_bytes(11, "big")
    return _rewrite_header(data, rng, slice(124, 136), encoded)


def duplicate(data: bytes, rng: random.Random) -> bytes:
    headers = _headers(data)
    if not headers:
        return data + data
    start = rng.choice(headers)
    later = [h for h in headers if h > start]
    end = rng.choice(later) if later else len(data) - 2 * BLOCK
    piece = data[start:max(end, start + BLOCK)]
    return data[:start] + piece + data[start:]


def gzipped_then_cut(data: bytes, rng: random.Random) -> bytes:
    packed = gzip.compress(data, compresslevel=1)
    return packed[:rng.randrange(10, len(packed))] if rng.random() < 0.7 else flip(packed, rng)


def rename_member(data: bytes, rng: random.Random) -> bytes:
    """A member's name replaced by a hostile one (with a valid checksum)."""
    name = rng.choice([b"../../escape", b"/etc/passwd", b"index.json", b"manifest.json", b"blobs/sha256/" + b"0" * 64,
                       b"C:\\Windows\\x", b"a/" * 40, b"\xff\xfe"])
    return _rewrite_header(data, rng, slice(0, 100), name[:100].ljust(100, b"\0"))


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    truncate, flip, wrong_size, duplicate, gzipped_then_cut, rename_member,
]


def cases(seeds: list[bytes], count: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``count`` mutated inputs, each named by its mutation, seed input and number."""
    rng = random.Random(seed)
    for n in range(count):
        base = rng.randrange(len(seeds))
        mutation = rng.choice(MUTATIONS)
        data = seeds[base]
        for _ in range(rng.choice([1, 1, 1, 2])):
            data = mutation(data, rng) if data else data
        yield f"{mutation.__name__}-{base}-{n}", data


def index_cycle() -> bytes:
    """An OCI layout whose index names a nested index that names the first one again."""
    import hashlib
    import json

    inner = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    # a blob cannot name its own digest, but two can name each other (blob names are not checked
    # against their content before they are read)
    a_doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    b_digest = "sha256:" + hashlib.sha256(inner).hexdigest()
    a_doc["manifests"] = [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": b_digest, "size": 1}]
    a = json.dumps(a_doc).encode()
    a_digest = "sha256:" + hashlib.sha256(a).hexdigest()
    b = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": a_digest,
                                   "size": len(a)}]}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, body in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", a),
                           (f"blobs/sha256/{b_digest[7:]}", b), (f"blobs/sha256/{a_digest[7:]}", a)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def symlink_cycle() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, target in (("manifest.json", "a.json"), ("a.json", "manifest.json")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def layer_seeds() -> list[bytes]:
    """Valid layer tars: the fixtures and generated ones with every kind of entry."""
    from tests.conftest import DATA
    from tests.hostile_layers import blog_layer

    seeds = [p.read_bytes() for p in sorted((DATA / "layers").glob("buildpacks-*.tar"))]
    seeds.append(blog_layer())
    return seeds


def archive_seeds() -> list[bytes]:
    from tests.conftest import DATA

    return [p.read_bytes() for p in sorted((DATA / "layers").glob("ggcr-*.tar"))] + [index_cycle(), symlink_cycle()]


def run(kind: str, count: int, seed: int) -> dict[str, object]:
    """Feed ``count`` cases to the layer tar checker (``layer``) or the archive reader
    (``archive``); any exception but a typed one is a failure. Returns the failures and this
    process's peak memory."""
    import os
    import resource
    import tempfile
    import traceback

    from wincontainers import errors
    from wincontainers.images.archive import inspect_archive
    from wincontainers.layerfile import check_layer

    failures: list[str] = []
    seeds = layer_seeds() if kind == "layer" else archive_seeds()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "case.tar")
        for name, data in cases(seeds, count, seed):
            try:
                if kind == "layer":
                    report = check_layer(io.BytesIO(data))
                    assert report.entries >= 0
                else:
                    with open(path, "wb") as f:
                        f.write(data)
                    inspect_archive(path)
            except errors.WincontainersError:
                pass
            except Exception:  # noqa: BLE001 - what the fuzz looks for
                failures.append(f"{name}: {traceback.format_exc(limit=3)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"cases": count, "failures": failures[:20], "failed": len(failures), "peak_kib": peak}


if __name__ == "__main__":
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(description="fuzz the layer tar checker or the archive reader")
    ap.add_argument("kind", choices=("layer", "archive"))
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result = run(args.kind, args.cases, args.seed)
    print(json.dumps(result))
    sys.exit(1 if result["failed"] else 0)
