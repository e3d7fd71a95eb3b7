"""Marquez names of catalog datasets and jobs, and the reverse: a Marquez node id or path to a
catalog row.

A dataset's Marquez ``(namespace, name)`` is the OpenLineage name it arrived under
(``ol_datasets``), else the name our own emitter gives it (``{store}/datasets/{ns}/{name}`` in
the store's namespace), else ``headwater`` + ``ns/name``. A dataset may also be named by its
catalog name (``prod`` + ``users``); a job by its catalog namespace and name, or by the name
alone when Airflow sends ``default`` + ``<dag>.<task>`` for a job our operator recorded in its
own namespace.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from headwater.catalog import job_graph, marquez_rows, stores
from headwater.catalog.models import Version
from headwater.errors import DatasetNotFound, InvalidArgument
from headwater.lineage.naming import LOGICAL_NAMESPACE, catalog_dataset
from headwater.server.ol_names import catalog_part, dataset_key, job_name

_PART = r"([A-Za-z0-9][A-Za-z0-9_.\-]*)"
_NATIVE = re.compile(rf"(?:^|/)datasets/{_PART}/{_PART}$")
#: UUIDv5 namespace of the Marquez version ids of catalog versions and job versions.
VERSION_NS = uuid.UUID("4b7f3c1e-2d6a-5e8f-9c0b-1a2b3c4d5e6f")


def version_uuid(v: Version) -> str:
    """Marquez's dataset version id (a UUID) of a catalog version: fixed by dataset and number."""
    return str(uuid.uuid5(VERSION_NS, f"dataset-version:{v.dataset_id}:{v.number}"))


def job_version_uuid(job_id: int, code: str | None) -> str:
    """A job version: one per distinct code fingerprint of its runs."""
    return str(uuid.uuid5(VERSION_NS, f"job-version:{job_id}:{code or ''}"))


def dataset_idents(s: Session, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Marquez ``(namespace, name)`` of each dataset id."""
    ids = set(ids)
    mapped = job_graph.openlineage_names(s, ids)
    missing = ids - set(mapped)
    latest = job_graph.latest_versions(s, missing)
    datasets = job_graph.datasets_by_id(s, missing)
    here = stores.catalog_url_of(s)
    out = dict(mapped)
    for i in missing:
        d, v = datasets.get(i), latest.get(i)
        if d is None:
            continue
        if v is not None and v.kind != "external":
            ident = catalog_dataset(stores.resolved(v.store_url, here), d.namespace.name, d.name)
            out[i] = (ident.namespace, ident.name)
        else:
            out[i] = (LOGICAL_NAMESPACE, f"{d.namespace.name}/{d.name}")
    return out


def splits(text: str) -> Iterable[tuple[str, str]]:
    """Every ``namespace:name`` split of ``text`` (namespaces may hold ``://`` and ports)."""
    for i, ch in enumerate(text):
        if ch == ":" and 0 < i < len(text) - 1:
            yield text[:i], text[i + 1:]


def find_dataset(s: Session, ns: str, name: str) -> int | None:
    found = job_graph.mapped_dataset_id(s, dataset_key(ns, name))
    if found is not None:
        return found
    candidates = []
    if ns == LOGICAL_NAMESPACE and "/" in name:
        candidates.append(tuple(name.split("/", 1)))
    native = _NATIVE.search(name)
    if native:
        candidates.append((native.group(1), native.group(2)))
    candidates.append((ns, name))
    for c_ns, c_name in candidates:
        ds_id = job_graph.dataset_id(s, c_ns, c_name)
        if ds_id is not None:
            return ds_id
    return None


def find_job(s: Session, ns: str, name: str) -> int | None:
    for c_ns, c_name in ((ns, name), (catalog_part(ns), job_name(name))):
        found = job_graph.job_id(s, c_ns, c_name)
        if found is not None:
            return found
    named = marquez_rows.jobs_named(s, job_name(name))
    return named[0].id if named else None


def dataset_or_404(s: Session, ns: str, name: str) -> int:
    found = find_dataset(s, ns, name)
    if found is None:
        raise DatasetNotFound(f"Dataset '{name}' not found in namespace '{ns}'.")
    return found


def job_or_404(s: Session, ns: str, name: str) -> int:
    found = find_job(s, ns, name)
    if found is None:
        raise DatasetNotFound(f"Job '{name}' not found in namespace '{ns}'.")
    return found


def resolve_node(s: Session, node_id: str, kinds: tuple[str, ...] = ("dataset", "job")
                 ) -> tuple[str, int]:
    """``("dataset"|"job", catalog id)`` for a Marquez node id, or a clear error."""
    kind, sep, rest = node_id.partition(":")
    if not sep or kind not in kinds or ":" not in rest:
        shapes = " or ".join(f"'{k}:<namespace>:<name>'" for k in kinds)
        raise InvalidArgument(f"nodeId {node_id[:200]!r} must be {shapes}")
    finder = find_dataset if kind == "dataset" else find_job
    for ns, name in list(splits(rest))[:200]:
        found = finder(s, ns, name)
        if found is not None:
            return kind, found
    raise DatasetNotFound(f"no {kind} matches nodeId {node_id[:200]!r}")


def find_version(versions: list[Version], selector: str) -> Version | None:
    """A version by Marquez id (UUID), catalog number, the producer's DatasetVersion
    (``v42``), label, or digest (prefix of 8+ hex digits)."""
    sel = selector.strip()
    for v in versions:
        if version_uuid(v) == sel.lower():
            return v
    if sel.isdigit():
        for v in versions:
            if v.number == int(sel):
                return v
    for v in versions:
        if producer_version(v) == sel or (v.label and v.label == sel):
            return v
    if len(sel) >= 8 and all(c in "0123456789abcdef" for c in sel.lower()):
        hits = [v for v in versions if v.digest.startswith(sel.lower())]
        if len(hits) == 1:
            return hits[0]
    return None


def producer_version(v: Version) -> str | None:
    """The DatasetVersion facet's ``datasetVersion`` the producer sent (external versions)."""
    ol: Any = (v.meta or {}).get("openlineage")
    value = ol.get("datasetVersion") if isinstance(ol, dict) else None
    return value if isinstance(value, str) else None


__all__ = ["VERSION_NS", "dataset_idents", "dataset_or_404", "find_dataset", "find_job",
           "find_version", "job_or_404", "job_version_uuid", "producer_version",
           "resolve_node", "splits", "version_uuid"]
