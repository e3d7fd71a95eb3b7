"""The content hash: BLAKE3, 256-bit, lower-case hex.

Chosen by measurement (``bench/hashes.py``): BLAKE3 hashes several times faster than SHA-256 and
MD5 on one core, releases the GIL on large buffers so threads hash files in parallel, and unlike
xxh3 it is collision-resistant, which content addressing needs when users do not trust every
writer. See ``docs/adr/0002-hash.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import blake3

HASH_NAME = "blake3"
DIGEST_HEX_LEN = 64
CHUNK = 1 << 20


def new_hasher() -> blake3.blake3:
    return blake3.blake3()


def hash_bytes(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """Digest and size of everything left in ``stream``."""
    h = blake3.blake3()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def hash_file(path: str | Path) -> tuple[str, int]:
    """Digest and size of a local file. Large files use BLAKE3's own threads."""
    p = Path(path)
    if p.stat().st_size >= 64 * CHUNK:
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        h.update_mmap(p)
        return h.hexdigest(), p.stat().st_size
    with open(p, "rb") as f:
        return hash_stream(f)
