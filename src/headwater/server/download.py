"""Serving stored objects: verified before the first byte, or aborted on a mismatch.

Why: objects are verified as they are read (the digest is checked at the end of the stream), but
a response that has started cannot turn into a 409. So an object up to ``verify_first_max``
bytes is read (and verified) into a spooled temporary file first, and only then served: a
corrupted one is a 409 naming it, never a ``200 OK`` with wrong bytes. A larger object is
streamed with its digest announced (``ETag`` and ``Repr-Digest``, RFC 9530) and its length, and
the last chunk is held back until the digest has been checked: on a mismatch the connection is
aborted short of ``Content-Length``, which every HTTP client reports as an error.

``Content-Disposition`` follows RFC 6266/5987: an ASCII ``filename`` fallback plus the UTF-8
``filename*``, so any name (``résumé.csv``, ``数据.parquet``) downloads under its own name.
"""

from __future__ import annotations

import base64
import logging
import re
import tempfile
from collections.abc import Iterator
from typing import IO, BinaryIO
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from headwater.errors import HeadwaterError
from headwater.store.hashing import CHUNK, HASH_NAME

log = logging.getLogger("headwater.server")
VERIFY_FIRST_MAX = 64 * 1024 * 1024
SPOOL_IN_MEMORY = 4 * 1024 * 1024
_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\%]')


def content_disposition(disposition: str, filename: str | None) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''percent-encoded`` (RFC 6266)."""
    name = "".join(c for c in (filename or "") if c.isprintable()).strip()
    if not name:
        return disposition
    fallback = _UNSAFE_ASCII.sub("_", name)
    encoded = quote(name, safe="!#$&+-.^_`|~")
    if fallback == name:
        return f'{disposition}; filename="{name}"'
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def digest_headers(digest: str | None) -> dict[str, str]:
    if not digest:
        return {}
    b64 = base64.b64encode(bytes.fromhex(digest)).decode()
    return {"ETag": f'"{digest}"', "Repr-Digest": f"{HASH_NAME}=:{b64}:"}


def _spool(stream: BinaryIO, limit: int) -> tuple[IO[bytes], int, bool]:
    """Read up to ``limit`` bytes into a temporary file: (file, bytes, whole object read).
    The whole object read means verified: the stream raised otherwise."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    total = 0
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                spool.seek(0)
                return spool, total, True
            spool.write(chunk)
            total += len(chunk)
            if total > limit:
                spool.seek(0)
                return spool, total, False
    except BaseException:
        spool.close()
        raise


def verified_response(
    stream: BinaryIO, *, digest: str | None, size: int | None, media_type: str,
    headers: dict[str, str], verify_first_max: int, context: str,
) -> StreamingResponse:
    """A response serving ``stream`` (an object reader that raises at EOF on a mismatch).

    Raises ObjectCorrupted/ObjectMissing before any byte for objects up to
    ``verify_first_max``; larger ones abort the connection instead (see the module doc)."""
    try:
        spool, spooled, whole = _spool(stream, verify_first_max)
    except BaseException:
        stream.close()
        raise
    out = {**headers, **digest_headers(digest)}
    if whole:
        stream.close()
        out["Content-Length"] = str(spooled)
        return StreamingResponse(_drain(spool), media_type=media_type, headers=out)
    if size is not None:
        out["Content-Length"] = str(size)
    return StreamingResponse(_rest(spool, stream, context), media_type=media_type, headers=out)


def _drain(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(CHUNK):
            yield chunk


def _rest(spool: IO[bytes], stream: BinaryIO, context: str) -> Iterator[bytes]:
    """The spooled head, then the rest of the stream, one chunk behind the reads: the last
    chunk goes out only after the end of the stream (where the digest is checked) was read."""

    def source() -> Iterator[bytes]:
        while chunk := spool.read(CHUNK):
            yield chunk
        while chunk := stream.read(CHUNK):
            yield chunk

    with spool, stream:
        chunks = source()
        try:
            held = next(chunks, None)
            for ahead in chunks:
                yield held or b""
                held = ahead
        except HeadwaterError as exc:
            log.error("aborting the download of %s short of its length: %s", context, exc)
            raise
        if held is not None:
            yield held


__all__ = ["VERIFY_FIRST_MAX", "content_disposition", "digest_headers", "verified_response"]
