"""Reading versions back: manifests from the store, and checkouts into a local directory.

Every path is re-checked against the destination (a manifest may come from a store someone else
wrote), every object is verified while copied, and a reference entry whose source changed since
it was logged fails with :class:`ReferenceChanged` instead of handing back different bytes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from headwater.errors import ReferenceChanged
from headwater.progress import NullProgress, Progress
from headwater.store import backends
from headwater.store.hashing import CHUNK
from headwater.store.manifest import Manifest, ManifestEntry
from headwater.store.objects import ObjectStore
from headwater.store.paths import safe_join

WORKERS = 8


def read_manifest(store: ObjectStore, digest: str, *, context: str = "") -> Manifest:
    return Manifest.from_bytes(store.read_bytes(digest, context=context or "manifest"))


def open_reference(entry: ManifestEntry, options: Mapping[str, Any]) -> BinaryIO:
    """Open the source of a reference entry after checking it did not change."""
    if entry.source is None:
        raise ValueError(f"{entry.path!r} is not a reference entry")
    fs, path = backends.open_filesystem(entry.source.uri, options)
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise ReferenceChanged(
            f"{entry.source.uri} (tracked as {entry.path!r}) no longer exists at its source"
        ) from None
    now = backends.content_fingerprint(fs, info)
    if now != dict(entry.source.fingerprint):
        raise ReferenceChanged(
            f"{entry.source.uri} (tracked as {entry.path!r}) changed since it was logged: "
            f"was {dict(entry.source.fingerprint)}, now {now}; log it again for a new version"
        )
    return fs.open(path, "rb")  # type: ignore[no-any-return]


def open_entry(
    store: ObjectStore, entry: ManifestEntry, *, options: Mapping[str, Any], context: str = ""
) -> BinaryIO:
    if entry.source is not None:
        return open_reference(entry, options)
    if entry.digest is None:
        raise ValueError(f"manifest entry {entry.path!r} has neither digest nor source")
    return store.open(entry.digest, context=f"{context} {entry.path}".strip())


def checkout(
    store: ObjectStore,
    manifest: Manifest,
    dest: str | Path,
    *,
    options: Mapping[str, Any],
    context: str = "",
    progress: Progress | None = None,
) -> Path:
    """Write every file of ``manifest`` under ``dest``; each file appears only when verified."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    targets = [(entry, safe_join(root, entry.path)) for entry in manifest]
    progress = progress or NullProgress()
    progress.start(f"checking out to {root}", len(targets))

    def write(item: tuple[ManifestEntry, Path]) -> None:
        entry, target = item
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with (
                open_entry(store, entry, options=options, context=context) as src,
                open(tmp, "wb") as out,
            ):
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        progress.advance()

    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(write, targets))
    finally:
        progress.stop()
    return root
