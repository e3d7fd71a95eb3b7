"""Opening fsspec filesystems by URL, and the one place cloud-specific fields are translated.

Backends are fsspec's own registry (``file``, ``memory``, ``s3`` via s3fs, ``gs`` via gcsfs). What
differs between them and matters to us is read here and nowhere else: how an object reports its
modification time, and which field fingerprints its content (S3 ETag, GCS generation, local
size + mtime_ns).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from headwater.errors import StoreUnavailable

if TYPE_CHECKING:  # fsspec is imported by open_filesystem: ~45 ms a local `headwater add` skips
    from fsspec import AbstractFileSystem

_INSTALL_HINT = {
    "s3": "pip install 'headwater[s3]'  (s3fs)",
    "gs": "pip install 'headwater[gcs]'  (gcsfs)",
    "gcs": "pip install 'headwater[gcs]'  (gcsfs)",
}


#: Connections an S3 client keeps open: at least the most requests the store issues at once
#: (``checkout.REMOTE_WORKERS``, ``snapshot.UPLOAD_WORKERS``, the pack uploads).
POOL_CONNECTIONS = 64


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
    options = dict(options)
    if protocol in ("s3", "s3a"):
        # botocore pools 10 connections; reads and uploads run up to 32 requests at once
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", POOL_CONNECTIONS)
        options["config_kwargs"] = config
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
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


_REMOTE = ("s3", "s3a", "gs", "gcs")
#: A gcsfs request URL on a bucket itself (listing or uploading: ``/b/BUCKET/o``), not on one of
#: its objects: a 404 there means the bucket is missing.
_GCS_BUCKET_URL = re.compile(r"/b/([^/?]+)(?:/o)?(?:\?|\)|$)")


def remote_error(exc: BaseException, urls: Sequence[str] = ()) -> StoreUnavailable | None:
    """The one line a user should read for a cloud-storage failure, or None if ``exc`` is not one.

    botocore, gcsfs and aiohttp raise their own classes (no credentials, unreachable endpoint)
    or a bare ``FileNotFoundError`` for a missing bucket whose message names no bucket (S3) or
    a request URL (GCS). Translated here, by class name so nothing cloud-specific is imported,
    and named with ``urls`` (the store and source URLs of the command) so the user sees which
    bucket or store is meant and what to set.
    """
    names = {c.__name__ for c in type(exc).__mro__}
    remote = [u for u in urls if protocol_of(u) in _REMOTE]
    where = f" ({', '.join(remote)})" if remote else ""
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return StoreUnavailable(
            f"no AWS credentials{where}: {exc}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            'or AWS_PROFILE, give "key"/"secret" in HEADWATER_STORE_OPTIONS, or {"anon": true} '
            "for a public bucket"
        )
    if names & {"DefaultCredentialsError", "RefreshError"}:
        return StoreUnavailable(
            f"no Google Cloud credentials{where}: {_first_line(exc)}; set "
            'GOOGLE_APPLICATION_CREDENTIALS, give "token" in HEADWATER_STORE_OPTIONS, or '
            '{"token": "anon"} for a public bucket'
        )
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"}:
        endpoint = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "")
        parts = urlsplit(endpoint)
        endpoint = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the S3 endpoint"
        return StoreUnavailable(
            f"cannot reach {endpoint}{where}: check the endpoint_url in HEADWATER_STORE_OPTIONS "
            "(client_kwargs) or AWS_ENDPOINT_URL, and the network"
        )
    if "ClientConnectorError" in names:  # aiohttp (gcsfs): refused, DNS, TLS
        host, port = getattr(exc, "host", "?"), getattr(exc, "port", "?")
        why = getattr(exc, "strerror", None) or _first_line(exc)
        return StoreUnavailable(
            f"cannot reach {host}:{port}{where}: {why}; check the endpoint_url in "
            "HEADWATER_STORE_OPTIONS (or STORAGE_EMULATOR_HOST) and the network"
        )
    if isinstance(exc, FileNotFoundError) and exc.filename is None:
        text = str(exc)
        if "bucket does not exist" in text.lower():  # S3 NoSuchBucket, via s3fs
            buckets = [urlsplit(u).netloc for u in remote if protocol_of(u).startswith("s3")]
            return _no_bucket(buckets, where)
        match = _GCS_BUCKET_URL.search(text)
        if match and "storage/v1" in text:
            return _no_bucket([match.group(1)], where)
    return None


def _no_bucket(buckets: Sequence[str], where: str) -> StoreUnavailable:
    which = " or ".join(repr(b) for b in dict.fromkeys(buckets)) or "the bucket"
    return StoreUnavailable(
        f"bucket {which} does not exist{where}: create it, or correct --store "
        "(HEADWATER_STORE_URL) or the source URL"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
