"""Who may read and who may write: bearer tokens, read-only tokens, and the no-token dev mode.

Why this shape: ingestion, alias moves and deletes change what pipelines resolve (``@production``),
so they need a write token; dashboards and the Airflow page only need to read. With no token
configured at all the server is a single-user development tool: ``headwater serve`` then binds to
loopback only (see :mod:`headwater.server.cli`), and everything on this machine may use it.

Tokens are kept only as SHA-256 digests and compared in constant time. Configuration, in order:
``--token``/``--read-token`` options, then ``HEADWATER_SERVER_TOKENS`` — a comma-separated list of
``write:TOKEN`` / ``read:TOKEN`` (a bare ``TOKEN`` is a write token).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from headwater.errors import InvalidArgument

ENV_TOKENS = "HEADWATER_SERVER_TOKENS"
MIN_TOKEN_LENGTH = 16
bearer = HTTPBearer(auto_error=False, description="A read or write token: `Bearer <token>`.")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check(token: str) -> str:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise InvalidArgument(
            f"server tokens must be at least {MIN_TOKEN_LENGTH} characters without spaces; "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token


@dataclass(frozen=True)
class AccessPolicy:
    """What a request may do, given its token."""

    write_digests: frozenset[str] = frozenset()
    read_digests: frozenset[str] = frozenset()
    #: Reads need no token (writes still do).
    public_read: bool = False
    #: No write endpoint works at all, whatever the token (the Airflow page).
    read_only: bool = False

    @classmethod
    def build(
        cls,
        *,
        write_tokens: Iterable[str] = (),
        read_tokens: Iterable[str] = (),
        public_read: bool = False,
        read_only: bool = False,
    ) -> AccessPolicy:
        return cls(
            write_digests=frozenset(_digest(_check(t)) for t in write_tokens),
            read_digests=frozenset(_digest(_check(t)) for t in read_tokens),
            public_read=public_read,
            read_only=read_only,
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        write_tokens: Iterable[str] = (),
        read_tokens: Iterable[str] = (),
        public_read: bool = False,
        read_only: bool = False,
    ) -> AccessPolicy:
        writes, reads = list(write_tokens), list(read_tokens)
        for item in (environ.get(ENV_TOKENS) or "").split(","):
            item = item.strip()
            if not item:
                continue
            kind, sep, token = item.partition(":")
            if not sep:
                writes.append(item)
            elif kind == "write":
                writes.append(token)
            elif kind == "read":
                reads.append(token)
            else:
                raise InvalidArgument(
                    f"{ENV_TOKENS}: entries are 'write:TOKEN' or 'read:TOKEN', not {kind!r}:..."
                )
        return cls.build(write_tokens=writes, read_tokens=reads, public_read=public_read,
                         read_only=read_only)

    @property
    def open(self) -> bool:
        """No token configured: development mode, loopback only."""
        return not self.write_digests and not self.read_digests

    def _role(self, token: str | None) -> str | None:
        if not token:
            return None
        digest = _digest(token)
        if any(hmac.compare_digest(digest, d) for d in self.write_digests):
            return "write"
        if any(hmac.compare_digest(digest, d) for d in self.read_digests):
            return "read"
        return "invalid"

    def authorize(self, token: str | None, *, write: bool) -> None:
        """Raise a 401/403 HTTPException unless ``token`` may read (or write)."""
        if write and self.read_only:
            raise HTTPException(403, "this server is read-only: no write endpoint is available")
        if self.open:
            return
        role = self._role(token)
        if role == "invalid":
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        if write:
            if role is None:
                raise HTTPException(401, "this endpoint changes the catalog: send a write token "
                                    "as 'Authorization: Bearer <token>'",
                                    headers={"WWW-Authenticate": "Bearer"})
            if role != "write":
                raise HTTPException(403, "this token is read-only; a write token is needed")
            return
        if role is None and not self.public_read:
            raise HTTPException(401, "send a token as 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials is not None else None


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def require_read(request: Request, credentials: Credentials) -> None:
    """FastAPI dependency: the request may read."""
    policy: AccessPolicy = request.app.state.policy
    policy.authorize(_token(credentials), write=False)


def require_write(request: Request, credentials: Credentials) -> None:
    """FastAPI dependency: the request may change the catalog."""
    policy: AccessPolicy = request.app.state.policy
    policy.authorize(_token(credentials), write=True)


__all__ = ["ENV_TOKENS", "AccessPolicy", "bearer", "require_read", "require_write"]
