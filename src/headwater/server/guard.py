"""The first thing every request meets: body size, body encoding, Host/Origin, NUL characters.

Why a raw ASGI middleware and not a FastAPI one: the body limit has to hold for the bytes
actually received, not for what ``Content-Length`` claims (a chunked body has none), and a
``Content-Encoding: gzip`` body (openlineage-python's ``compression: gzip``) has to be inflated
as it arrives with the same limit on the inflated bytes, so a 100 KB gzip bomb cannot become
gigabytes. Both need to wrap ``receive``, which only an ASGI middleware can.

The Host/Origin check is what Jupyter does against DNS rebinding: with no token configured
anyone who can reach the socket may write, and "anyone" includes a web page whose host name
was rebound to 127.0.0.1. Such a page's requests carry its own host name in ``Host`` (and
``Origin``), so in that mode only loopback names and the configured ones are served.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 16 * 1024 * 1024
#: Host names served in no-token mode without configuration (as Jupyter's local_hostnames).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ENV_ALLOWED_HOSTS = "HEADWATER_SERVER_ALLOWED_HOSTS"
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, *, inflated: bool = False) -> None:
        what = "inflated request body" if inflated else "request body"
        super().__init__(413, f"{what} over {limit // (1024 * 1024)} MiB")


def host_name(value: str) -> str:
    """The host part of a ``Host`` header value (``[::1]:8080`` → ``::1``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def allowed_host_set(hosts: Iterable[str]) -> frozenset[str] | None:
    """The host names to accept, or None for any (``*`` among them)."""
    names = {host_name(h) for h in hosts if h.strip()}
    return None if "*" in names else frozenset(names)


class RequestGuard:
    """Refuses, before the app sees them: bodies over ``max_body`` (received or inflated),
    unknown content encodings, NUL characters in the path or query, and in no-token mode
    (``allowed_hosts`` not None) a ``Host`` or ``Origin`` naming another host."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY,
                 allowed_hosts: frozenset[str] | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._refusal(scope, headers)
        if problem is not None:
            status, detail = problem
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in DECODERS:  # the app sees the inflated body, without the stale headers
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"]
                                if k not in (b"content-encoding", b"content-length")]
        body = _Body(receive, self.max_body, DECODERS.get(encoding))
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                if not any(k.lower() == b"x-content-type-options" for k, _ in message["headers"]):
                    message["headers"] = [*message["headers"],
                                          (b"x-content-type-options", b"nosniff")]
            await send(message)

        try:
            await self.app(scope, body.receive, sending)
        except HTTPException as exc:  # raised by our receive where no handler caught it
            if started:
                raise
            await JSONResponse({"detail": exc.detail},
                               status_code=exc.status_code)(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        if self.allowed_hosts is not None:
            host = host_name(headers.get("host", ""))
            if host not in self.allowed_hosts:
                return 403, (f"Host {host!r} is not served: with no token configured only "
                             f"{', '.join(sorted(self.allowed_hosts))} are (DNS rebinding); "
                             "add it with --allow-host or "
                             f"{ENV_ALLOWED_HOSTS}, or configure a token")
            origin = headers.get("origin")
            if origin is not None:
                origin_host = urlsplit(origin).hostname if origin != "null" else None
                if origin_host is None or host_name(origin_host) not in self.allowed_hosts:
                    return 403, (f"Origin {origin[:200]!r} is not served: with no token "
                                 "configured only pages of an allowed host may call the API")
        if "\x00" in scope.get("path", "") \
                or b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            return 400, "the URL contains a NUL character (%00), which no name or search can hold"
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return 400, "Content-Length is not a number"
            if int(length) > self.max_body:
                return 413, f"request body over {self.max_body // (1024 * 1024)} MiB"
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in DECODERS and encoding != "identity":
            return 415, (f"Content-Encoding {encoding[:64]!r} is not supported; send identity, "
                         "gzip or deflate")
        return None


class _Body:
    """``receive`` counting the bytes received and, for an encoded body, inflating them with
    the same limit on the inflated bytes (at most ``limit + 1`` are ever produced)."""

    def __init__(self, receive: Receive, limit: int, wbits: int | None) -> None:
        self._receive = receive
        self._limit = limit
        self._decoder: Any = zlib.decompressobj(wbits) if wbits is not None else None
        self._received = 0
        self._inflated = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        data: bytes = message.get("body", b"")
        self._received += len(data)
        if self._received > self._limit:
            raise BodyTooLarge(self._limit)
        if self._decoder is None:
            return message
        try:
            out = self._inflate(data, last=not message.get("more_body", False))
        except zlib.error as exc:
            raise HTTPException(400, f"the request body is not valid for its "
                                     f"Content-Encoding: {exc}") from None
        return {**message, "body": out}

    def _inflate(self, data: bytes, *, last: bool) -> bytes:
        parts = []
        while True:
            piece = self._decoder.decompress(data, self._limit - self._inflated + 1)
            self._count(len(piece))
            parts.append(piece)
            data = self._decoder.unconsumed_tail
            if not data:
                break
        if last:
            rest = self._decoder.flush(self._limit - self._inflated + 1)
            self._count(len(rest))
            parts.append(rest)
            if not self._decoder.eof:
                raise zlib.error("the compressed stream is truncated")
        return b"".join(parts)

    def _count(self, n: int) -> None:
        self._inflated += n
        if self._inflated > self._limit:
            raise BodyTooLarge(self._limit, inflated=True)


__all__ = ["LOCAL_HOSTS", "MAX_BODY", "BodyTooLarge", "RequestGuard", "allowed_host_set",
           "host_name"]
