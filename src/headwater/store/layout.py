"""Where an object lives inside a store: ``objects/<first 2 hex digits>/<the other 62>``.

The one definition of the layout. The object store, the snapshot's existence checks, the
OpenLineage dataset names (a version *is* its manifest object) and Beam's lineage metrics all
build object paths, and a drifted copy names an object that is not there. Stores written so far
use this layout, so changing it means migrating every store.
"""

from __future__ import annotations

__all__ = ["OBJECTS_DIR", "PREFIX_LEN", "object_relpath", "object_url", "prefix_relpath",
           "split_digest"]

#: the folder under a store's root that holds every object
OBJECTS_DIR = "objects"
#: hex digits of a digest that name its fan-out folder (256 folders)
PREFIX_LEN = 2


def split_digest(digest: str) -> tuple[str, str]:
    """``(folder, file name)`` of the object ``digest`` inside ``objects/``."""
    return digest[:PREFIX_LEN], digest[PREFIX_LEN:]


def prefix_relpath(prefix: str) -> str:
    """The fan-out folder ``prefix`` (a digest's first hex digits), relative to the store root."""
    return f"{OBJECTS_DIR}/{prefix}"


def object_relpath(digest: str) -> str:
    """The object ``digest`` relative to the store root (no check of the digest's form)."""
    prefix, name = split_digest(digest)
    return f"{prefix_relpath(prefix)}/{name}"


def object_url(root: str, digest: str) -> str:
    """The object ``digest`` under the store root ``root`` (a path or a URL; one trailing
    ``/`` of ``root`` is ignored)."""
    return f"{root.rstrip('/')}/{object_relpath(digest)}"
