"""Content-addressed storage on fsspec: objects, manifests, snapshots and checkouts.

Nothing in this package knows about the catalog, runs or lineage: it turns bytes into digests and
back. A version, to the store, is one root digest: the digest of its manifest, which is itself an
object. The names below load on first use, so ``headwater.store.walk`` imports without fsspec.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.store.manifest import Manifest, ManifestEntry, ReferenceSource
    from headwater.store.objects import ObjectStore

_WHERE = {
    "Manifest": "manifest",
    "ManifestEntry": "manifest",
    "ReferenceSource": "manifest",
    "ObjectStore": "objects",
}

__all__ = ["Manifest", "ManifestEntry", "ObjectStore", "ReferenceSource"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
