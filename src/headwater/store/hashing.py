"""The content hash: BLAKE3, 256-bit, lower-case hex.

Chosen by measurement (``bench/hashes.py``): BLAKE3 hashes several times faster than SHA-256 and
MD5 on one core, releases the GIL on buffers larger than a few KiB so threads hash files in
parallel, and unlike xxh3 it is collision-resistant, which content addressing needs when users do
not trust every writer. See ``docs/adr/0002-hash.md``.

Small files are read whole (one ``read``) so the bytes that were hashed are the bytes that get
stored; large files are read in 4 MiB ``preadv`` calls into one reused buffer and hashed by
BLAKE3's own threads (Rust, GIL released). They are not memory-mapped: a mapped file that another
process truncates kills the reader with SIGBUS, with no message and nothing Python can catch;
with reads, a file that shrinks is a short read and a clear :class:`RunFailed`. The cost is
small (``bench/hash_large.py``; figures in docs/architecture.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import blake3

from headwater.errors import RunFailed

HASH_NAME = "blake3"
DIGEST_HEX_LEN = 64
CHUNK = 1 << 20
#: Files at least this large are hashed with BLAKE3's multithreaded mode.
PARALLEL_MIN = 16 * CHUNK
#: Read size for multithreaded hashing: large enough for BLAKE3 to split across threads.
PARALLEL_READ = 4 * CHUNK


def new_hasher() -> blake3.blake3:
    return blake3.blake3()


def hash_bytes(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """Digest and size of everything left in ``stream``."""
    h = blake3.blake3()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def read_file(path: str | Path, size_hint: int | None = None) -> bytes:
    """The whole content of a (small) local file, in as few system calls as possible.

    ``size_hint`` is the size a ``stat`` gave; one byte more is asked for, so a file that grew
    since is still read to its end.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size if size_hint is None else size_hint
        data = os.read(fd, size + 1)
        if len(data) == size:
            return data
        parts = [data]
        while chunk := os.read(fd, CHUNK):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def hash_open_file(fd: int, size: int) -> str:
    """Digest of the first ``size`` bytes of the open file ``fd`` (from its start).

    Large files are hashed by BLAKE3's own threads (GIL released); the caller keeps the
    descriptor, so it can copy exactly the file it hashed. Raises :class:`RunFailed` if the file
    ends before ``size`` bytes (it shrank while being read).
    """
    if size == 0:
        return blake3.blake3().hexdigest()
    parallel = size >= PARALLEL_MIN
    h = blake3.blake3(max_threads=blake3.blake3.AUTO) if parallel else blake3.blake3()
    buf = memoryview(bytearray(PARALLEL_READ if parallel else CHUNK))
    offset = 0
    while offset < size:
        n = os.preadv(fd, [buf[: min(len(buf), size - offset)]], offset)
        if n == 0:
            raise RunFailed(
                f"{_name_of(fd)} changed while being read (it shrank from {size} to {offset} "
                "bytes); nothing was committed — log it again once it is complete"
            )
        h.update(buf[:n])
        offset += n
    return h.hexdigest()


def _name_of(fd: int) -> str:
    """The path an open descriptor was opened by, for messages (Linux; else a placeholder)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "a file"


def hash_file(path: str | Path) -> tuple[str, int]:
    """Digest and size of a local file. Large files use BLAKE3's own threads."""
    fd = os.open(path, os.O_RDONLY)
    try:
        before = os.fstat(fd)
        digest = hash_open_file(fd, before.st_size)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise RunFailed(
            f"{path} changed while it was being hashed; nothing was committed — log it again "
            "once it is complete"
        )
    return digest, before.st_size
