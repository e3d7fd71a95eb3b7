"""The outbox record: the facts of one run state change, stored at commit, built into an
OpenLineage event at delivery.

Why not store the OpenLineage event itself: building it needs openlineage-python, whose import
alone costs about 0.2 s, and the commit path runs in every step and every ``headwater add`` (an
unchanged re-log included) whether or not a lineage backend is configured. The record is plain
JSON made from what the run already holds; :func:`headwater.lineage.facets.build_from_record`
turns it into the event when (and if) it is delivered.

Everything that makes the event what it is gets fixed here, at commit time, so an event built an
hour later in another process is the event that would have been built at commit:

* ``eventTime`` is stored as the ISO string (it is also part of the event's identity);
* ``producerVersion`` is the Headwater version that committed (the ``producer`` of every facet);
* a store given as a relative path is made absolute against the committing process's working
  directory (dataset names are absolute paths).

The record is versioned (:data:`RECORD_FORMAT`); a reader refuses a format it does not know
instead of guessing. Rows written before records existed hold a complete OpenLineage event
(:func:`is_record` tells them apart) and are sent as stored.

This module must not import openlineage (``tests/lineage/test_delivery.py`` checks that an
``add`` with lineage on leaves it unimported).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from headwater.lineage.base import RunEvent
    from headwater.version import VersionInfo

#: Key and value that mark a stored outbox payload as a record of this format.
FORMAT_KEY = "format"
RECORD_FORMAT = "headwater.run-event/1"
#: UUIDv5 namespace of event identities (see :func:`event_identity`).
EVENT_ID_NAMESPACE = uuid.UUID("6f1d2b8e-4c1a-5b7e-9a65-0d9f3b1c7e42")


class UnknownRecordFormat(ValueError):
    """An outbox payload this Headwater cannot build an event from (a newer format?)."""


@cache
def headwater_version() -> str:
    try:
        return version("headwater")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def producer_url(headwater_version: str) -> str:
    """``producer`` of every event and facet written by that Headwater version."""
    return f"https://github.com/headwater-data/headwater/tree/{headwater_version}"


def isotime(value: datetime) -> str:
    """ISO 8601 with an explicit UTC offset (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def event_identity(run_id: str, event_type: str, event_time: str) -> str:
    """The stable identity of an event: the same for every delivery of it.

    Consumers deduplicate on ``(run.runId, eventType, eventTime)``; this UUIDv5 of the three is
    the outbox's ``event_id`` and a convenient single key for the same thing.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{run_id}|{event_type}|{event_time}"))


def pin_store_url(store_url: str) -> str:
    """``store_url`` with a relative local path made absolute now (names are absolute paths,
    and the delivering process may have another working directory)."""
    if "://" not in store_url:
        return os.path.abspath(store_url or "/")
    parts = urlsplit(store_url)
    if parts.scheme.lower() in ("file", "local") and not os.path.isabs(parts.path or "/"):
        return os.path.abspath(parts.path)
    return store_url


def _null_counts(v: VersionInfo) -> dict[str, int]:
    raw = v.stats.get("null_counts") if isinstance(v.stats, Mapping) else None
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): int(n) for k, n in raw.items() if isinstance(n, int)}


def version_record(v: VersionInfo, *, output: bool) -> dict[str, Any]:
    """The record of one input (``output=False``) or output version of a run. ``retracted`` is
    present only for a retracted version (a run that opted in), so other records are as before."""
    return ({"retracted": True} if v.retracted else {}) | {
        "namespace": v.namespace,
        "dataset": v.dataset,
        "number": v.number,
        "digest": v.digest,
        "storeUrl": pin_store_url(v.store_url),
        "size": v.size,
        "fileCount": v.file_count,
        "rowCount": v.row_count,
        "schema": [
            [str(col.get("name")), str(col["type"]) if col.get("type") is not None else None]
            for col in v.schema
        ]
        if v.schema
        else None,
        "tableFingerprint": v.table_fingerprint or None,
        "nullCounts": _null_counts(v),
        "created": v.created if output else None,
    }


def to_record(event: RunEvent) -> dict[str, Any]:
    """The JSON-ready record of ``event`` (no openlineage import, no I/O)."""
    return {
        FORMAT_KEY: RECORD_FORMAT,
        "producerVersion": headwater_version(),
        "runId": event.run_id,
        "eventType": event.state,
        "eventTime": isotime(event.event_time),
        "jobNamespace": event.job_namespace,
        "jobName": event.job_name,
        "jobType": event.job_type,
        "sourceLocation": event.source_location,
        "params": dict(event.params),
        "codeFingerprint": event.code_fingerprint,
        "cacheKey": event.cache_key,
        "engine": dict(event.engine),
        "parent": event.parent,
        "nominalTime": isotime(event.nominal_time) if event.nominal_time is not None else None,
        "error": event.error,
        "inputs": [version_record(v, output=False) for v in event.inputs],
        "outputs": [version_record(v, output=True) for v in event.outputs],
    }


def is_record(stored: Mapping[str, Any]) -> bool:
    """True for a record, False for a complete OpenLineage event (rows of older Headwaters)."""
    return FORMAT_KEY in stored and "run" not in stored


def check_record(stored: Mapping[str, Any]) -> Mapping[str, Any]:
    """``stored`` if it is a record this Headwater can build; else :class:`UnknownRecordFormat`."""
    fmt = stored.get(FORMAT_KEY)
    if fmt != RECORD_FORMAT:
        raise UnknownRecordFormat(
            f"outbox record format {fmt!r} is not {RECORD_FORMAT!r} (written by a newer "
            "Headwater?): deliver it with that version"
        )
    return stored


__all__ = [
    "RECORD_FORMAT",
    "UnknownRecordFormat",
    "check_record",
    "event_identity",
    "headwater_version",
    "is_record",
    "isotime",
    "pin_store_url",
    "producer_url",
    "to_record",
    "version_record",
]
