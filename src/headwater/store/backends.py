"""Opening fsspec filesystems by URL, and the one place cloud-specific fields are translated.

Backends are fsspec's own registry (``file``, ``memory``, ``s3`` via s3fs, ``gs`` via gcsfs). What
differs between them and matters to us is read here and nowhere else: how an object reports its
modification time, and which field fingerprints its content (S3 ETag, GCS generation, local
size + mtime_ns).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from headwater.errors import StoreUnavailable

_INSTALL_HINT = {
    "s3": "pip install 'headwater[s3]'  (s3fs)",
    "gs": "pip install 'headwater[gcs]'  (gcsfs)",
    "gcs": "pip install 'headwater[gcs]'  (gcsfs)",
}


def protocol_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme if sep else "file"


def open_filesystem(url: str, options: Mapping[str, Any]) -> tuple[AbstractFileSystem, str]:
    """Return ``(filesystem, path)`` for ``url``; a missing backend names the extra to install."""
    protocol = protocol_of(url)
    if protocol in ("gs", "gcs"):
        # gcsfs decides at import time whether to probe an experimental gRPC API; against the
        # emulator or a network without Google's hosts that probe stalls every call for a minute.
        # Documented exception to "no writes to os.environ": it must precede the import.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(options))
    except ImportError as exc:
        hint = _INSTALL_HINT.get(protocol, "install the fsspec backend for this URL")
        raise StoreUnavailable(f"no backend for {protocol}:// URLs: {hint}") from exc
    except (ValueError, TypeError) as exc:
        raise StoreUnavailable(f"cannot open store {url!r}: {exc}") from exc
    return fs, path.rstrip("/")


def is_local(fs: AbstractFileSystem) -> bool:
    return "file" in _protocols(fs)


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def modified_time(info: Mapping[str, Any]) -> float | None:
    """Seconds since the epoch at which the object was last written, if the backend says."""
    for key in ("mtime", "LastModified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def content_fingerprint(fs: AbstractFileSystem, info: Mapping[str, Any]) -> dict[str, str]:
    """What identifies this exact content at its source, without reading it.

    S3: the ETag (quotes stripped; a multipart ETag ends in ``-N``) and VersionId if any.
    GCS: the generation (changes on every overwrite) and md5Hash when present.
    Local and others: size and modification time in nanoseconds.
    """
    protocols = _protocols(fs)
    fp: dict[str, str] = {"size": str(int(info.get("size") or 0))}
    if "s3" in protocols or "s3a" in protocols:
        etag = info.get("ETag") or info.get("etag")
        if etag:
            fp["etag"] = str(etag).strip('"')
        if info.get("VersionId"):
            fp["version_id"] = str(info["VersionId"])
        return fp
    if "gs" in protocols or "gcs" in protocols:
        if info.get("generation") is not None:
            fp["generation"] = str(info["generation"])
        if info.get("md5Hash"):
            fp["md5"] = str(info["md5Hash"])
        return fp
    mtime = info.get("mtime")
    if isinstance(mtime, int | float):
        fp["mtime_ns"] = str(int(mtime * 1_000_000_000))
    elif info.get("created") is not None:
        fp["created"] = str(info["created"])
    return fp
