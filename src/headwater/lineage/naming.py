"""OpenLineage dataset names for Headwater datasets, per the OpenLineage naming spec.

An OpenLineage *dataset* is one Headwater dataset, stable across its versions; which version a
run read or wrote travels in the DatasetVersion facet (number + root digest). That is what lets a
consumer link a run to the exact version it read, and keeps Marquez-style dataset histories
intact. The dataset's name is a stable path under its store (``{root}/datasets/{ns}/{name}``,
:func:`catalog_dataset`); the version's own bytes live at its manifest object
(:func:`version_dataset`, recorded in the provenance facet), laid out as:

=====================  =====================  ==========================================
store URL              namespace              name
=====================  =====================  ==========================================
``/srv/store``         ``file``               ``/srv/store/objects/ab/cdef…``
``file:///srv/store``  ``file``               ``/srv/store/objects/ab/cdef…``
``s3://bkt/pre``       ``s3://bkt``           ``pre/objects/ab/cdef…``
``gs://bkt/pre``       ``gs://bkt``           ``pre/objects/ab/cdef…``
``<scheme>://host/p``  ``<scheme>://host``    ``p/objects/ab/cdef…``
=====================  =====================  ==========================================

The logical catalog name (``ns/dataset``) travels alongside in a Symlinks facet with namespace
:data:`LOGICAL_NAMESPACE`. Pure string work: no filesystem is opened.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from urllib.parse import urlsplit

from headwater.store.layout import object_relpath

#: Symlinks-facet namespace of logical catalog names (``headwater`` + ``ns/dataset``).
LOGICAL_NAMESPACE = "headwater"


@dataclass(frozen=True)
class DatasetId:
    """An OpenLineage dataset identity: ``namespace`` + ``name``."""

    namespace: str
    name: str


def manifest_relpath(digest: str) -> str:
    """Where the store keeps the manifest object of ``digest``, relative to the store root.

    The store's own layout (:mod:`headwater.store.layout`), which the object store uses too.
    """
    return object_relpath(digest)


def store_location(store_url: str) -> DatasetId:
    """The namespace of a store and the path of its root inside that namespace."""
    if "://" not in store_url:  # a plain local path
        return DatasetId("file", _local_path(store_url))
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme in ("file", "local"):
        return DatasetId("file", _local_path(parts.path or "/"))
    if scheme in ("s3", "s3a", "s3n"):
        return DatasetId(f"s3://{parts.netloc}", parts.path.strip("/"))
    if scheme in ("gs", "gcs"):
        return DatasetId(f"gs://{parts.netloc}", parts.path.strip("/"))
    return DatasetId(f"{scheme}://{parts.netloc}", parts.path.strip("/"))


def version_dataset(store_url: str, digest: str) -> DatasetId:
    """The OpenLineage identity of the version whose manifest digest is ``digest``."""
    root = store_location(store_url)
    rel = manifest_relpath(digest)
    if root.namespace == "file":
        return DatasetId("file", posixpath.join(root.name, rel))
    return DatasetId(root.namespace, f"{root.name}/{rel}" if root.name else rel)


def catalog_dataset(store_url: str, namespace: str, dataset: str) -> DatasetId:
    """The stable OpenLineage identity of dataset ``namespace/dataset`` kept in ``store_url``."""
    root = store_location(store_url)
    rel = f"datasets/{namespace}/{dataset}"
    if root.namespace == "file":
        return DatasetId("file", posixpath.join(root.name, rel))
    return DatasetId(root.namespace, f"{root.name}/{rel}" if root.name else rel)


def _local_path(path: str) -> str:
    """An absolute, normalised path (a relative store path is taken from the working dir)."""
    return os.path.abspath(path or "/")


__all__ = [
    "LOGICAL_NAMESPACE",
    "DatasetId",
    "catalog_dataset",
    "manifest_relpath",
    "store_location",
    "version_dataset",
]
