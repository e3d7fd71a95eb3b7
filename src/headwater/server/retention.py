"""How long ingested OpenLineage events are kept, and how big a stored one may be.

Why: every event a producer sends is kept in ``ol_events`` (idempotence and the run page's
"events received"); without a bound, a chatty or hostile producer grows the catalog forever.
Events older than the retention are pruned on the first ingest after the server starts and then
at most every :data:`PRUNE_EVERY` (an index range delete on ``received_at``, migration 0006);
the effects of an event (runs, versions, edges) are kept. A redelivered event older than the
retention is ingested again, which changes nothing: ingestion is idempotent by digest.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from headwater.catalog import external
from headwater.catalog.models import utcnow
from headwater.errors import InvalidArgument

if TYPE_CHECKING:
    from headwater.api import Catalog

log = logging.getLogger("headwater.server")
DEFAULT_RETENTION: timedelta | None = timedelta(days=90)
ENV_RETENTION = "HEADWATER_SERVER_EVENT_RETENTION_DAYS"
PRUNE_EVERY = 600.0
#: A stored event above this many bytes of JSON keeps its envelope and dataset names only.
MAX_STORED_EVENT = 256 * 1024


def retention_from(value: str | None) -> timedelta | None:
    """``--event-retention-days`` / ``HEADWATER_SERVER_EVENT_RETENTION_DAYS``: days, 0 = keep."""
    if value is None or not value.strip():
        return DEFAULT_RETENTION
    try:
        days = float(value)
    except ValueError:
        raise InvalidArgument(f"{ENV_RETENTION}: a number of days, not {value!r}") from None
    if days < 0 or days != days:
        raise InvalidArgument(f"{ENV_RETENTION}: a number of days >= 0, not {value!r}")
    return None if days == 0 else timedelta(days=days)


def retention_from_env(environ: Mapping[str, str] = os.environ) -> timedelta | None:
    return retention_from(environ.get(ENV_RETENTION))


class EventRetention:
    """Prunes ``ol_events`` older than ``keep``, at most once per :data:`PRUNE_EVERY`."""

    def __init__(self, keep: timedelta | None) -> None:
        self.keep = keep
        self._next = 0.0
        self._lock = threading.Lock()

    def prune(self, catalog: Catalog) -> int:
        """Delete events received before now - ``keep``; the number deleted."""
        if self.keep is None:
            return 0
        cutoff = utcnow() - self.keep
        with catalog.session() as s:
            return external.delete_events_before(s, cutoff)

    def maybe_prune(self, catalog: Catalog) -> None:
        """Prune if due; a failure is logged and retried later, never fails the ingest."""
        if self.keep is None:
            return
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + PRUNE_EVERY
        try:
            n = self.prune(catalog)
        except Exception as exc:  # pruning is housekeeping: never fail the event
            log.warning("pruning ingested OpenLineage events failed: %s: %s",
                        type(exc).__name__, exc)
            return
        if n:
            log.info("pruned %d ingested OpenLineage event(s) older than %s", n, self.keep)


def capped_event(event: dict[str, Any], *, limit: int = MAX_STORED_EVENT) -> dict[str, Any]:
    """``event`` as stored: whole up to ``limit`` bytes of JSON, else its envelope (type, time,
    producer, run id, job and dataset names) without facets, marked as truncated."""
    size = len(json.dumps(event, separators=(",", ":"), default=str))
    if size <= limit:
        return event

    def names(items: Any) -> list[dict[str, Any]]:
        return [{"namespace": str(d.get("namespace", ""))[:1024],
                 "name": str(d.get("name", ""))[:1024]}
                for d in (items if isinstance(items, list) else [])[:100] if isinstance(d, dict)]

    kept: dict[str, Any] = {k: event[k] for k in ("eventType", "eventTime", "producer",
                                                  "schemaURL") if k in event}
    run, job = event.get("run"), event.get("job")
    if isinstance(run, dict):
        kept["run"] = {"runId": run.get("runId")}
    if isinstance(job, dict):
        kept["job"] = {"namespace": job.get("namespace"), "name": job.get("name")}
    if isinstance(event.get("dataset"), dict):
        kept["dataset"] = names([event["dataset"]])[0]
    for key in ("inputs", "outputs"):
        if key in event:
            kept[key] = names(event[key])
    kept["_headwater"] = {"truncated": True, "bytes": size,
                          "reason": f"event over {limit} bytes: facets not kept"}
    return kept


__all__ = ["DEFAULT_RETENTION", "ENV_RETENTION", "MAX_STORED_EVENT", "EventRetention",
           "capped_event", "retention_from", "retention_from_env"]
