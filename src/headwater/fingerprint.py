"""Code fingerprints and cache keys: what decides whether a step's earlier result can be reused."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from headwater.canonical import canonical_bytes, canonical_json
from headwater.store.hashing import hash_bytes

__all__ = ["cache_key", "canonical_json", "fingerprint_code"]


def fingerprint_code(code: str | Callable[..., Any] | None) -> str | None:
    """A digest of a callable's source (or the string given, e.g. a git SHA or a step version).

    Source that cannot be read (a builtin, a lambda typed in a REPL) falls back to the qualified
    name, which is weaker: say so by prefixing ``name:``.
    """
    if code is None:
        return None
    if isinstance(code, str):
        return code
    target = inspect.unwrap(code)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        module = getattr(target, "__module__", "?")
        return f"name:{module}.{getattr(target, '__qualname__', repr(target))}"
    return hash_bytes(source.encode("utf-8"))


def cache_key(
    *,
    job: str,
    code_fingerprint: str | None,
    params: Mapping[str, Any],
    inputs: Iterable[tuple[str, str]],
) -> str:
    """Digest of (job, code, parameters, input version digests): equal keys, equal results."""
    doc = {
        "code": code_fingerprint,
        "inputs": sorted(inputs),
        "job": job,
        "params": json.loads(canonical_json(dict(params))),
    }
    return hash_bytes(canonical_bytes(doc))
