"""Content-addressed storage on fsspec: objects, manifests, snapshots and checkouts.

Nothing in this package knows about the catalog, runs or lineage: it turns bytes into digests and
back. A version, to the store, is one root digest: the digest of its manifest, which is itself an
object.
"""

from headwater.store.manifest import Manifest, ManifestEntry, ReferenceSource
from headwater.store.objects import ObjectStore

__all__ = ["Manifest", "ManifestEntry", "ObjectStore", "ReferenceSource"]
