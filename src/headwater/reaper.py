"""Ending runs whose process died, with the OpenLineage event that says so.

:mod:`headwater.catalog.leases` decides which RUNNING runs are dead and moves them to ABORTED;
this module runs it where the issue asks (opening a catalog, at most every
``Settings.reap_interval_seconds`` per process; ``gc``; server start, which opens the catalog)
and writes each reaped run's ABORT event to the lineage outbox in the same transaction, through
the catalog's recorder, as a run's own FAIL is written. ABORT rather than FAIL: OpenLineage's
"stopped abnormally", which is what a killed process is (Airflow's openlineage provider and the
server's ingestion map it to the ABORTED run state too).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from headwater.catalog import leases
from headwater.catalog.models import Run, utcnow
from headwater.lineage.base import RunEvent

if TYPE_CHECKING:
    from headwater.api import Catalog

log = logging.getLogger(__name__)

#: ``(pid, catalog URL) -> monotonic time of the last reaping``: the open-time throttle. Process
#: state on purpose: a CLI command is a new process (it always looks, one indexed query), a
#: server or an Airflow worker opening catalogs all day looks once a minute.
_last: dict[tuple[int, str], float] = {}
_last_lock = threading.Lock()


def abort_event(run: Run, reason: str) -> RunEvent:
    """The ABORT event of a reaped run (its inputs were in its START event)."""
    return RunEvent(
        run_id=run.id, job_namespace=run.job.namespace.name, job_name=run.job.name,
        state="ABORT", event_time=run.ended_at or utcnow(), params=run.params or {},
        code_fingerprint=run.code_fingerprint, cache_key=run.cache_key,
        engine=run.engine or {}, parent=run.parent, nominal_time=run.nominal_time,
        error=reason, source_location=(run.engine or {}).get("source_location"),
    )


def _record(cat: Catalog, s: Session, reaped: list[leases.Reaped]) -> None:
    for r in reaped:
        cat.recorder.record(s, abort_event(r.run, r.reason))
        log.warning("run %s of %s/%s: %s", r.run.id, r.run.job.namespace.name, r.run.job.name,
                    r.reason)


def reap_dead_runs(cat: Catalog) -> list[leases.Reaped]:
    """End every dead run now (``gc``, server start, tests); returns what was reaped."""
    with cat.session() as s:
        reaped = leases.reap(s)
        _record(cat, s, reaped)
    with _last_lock:
        _last[(os.getpid(), cat.settings.catalog_url)] = time.monotonic()
    return reaped


def reap_on_open(cat: Catalog) -> None:
    """:func:`reap_dead_runs`, unless this process did it for this catalog less than
    ``reap_interval_seconds`` ago. Never fails the open: a catalog that cannot be written (a
    read-only replica, a lock held too long) keeps its dead runs until the next command."""
    key = (os.getpid(), cat.settings.catalog_url)
    with _last_lock:
        last = _last.get(key)
        if last is not None and time.monotonic() - last < cat.settings.reap_interval_seconds:
            return
        _last[key] = time.monotonic()
    try:
        reap_dead_runs(cat)
    except Exception as exc:
        log.warning("could not look for dead runs in the catalog (%s: %s)",
                    type(exc).__name__, exc)


def supersede(cat: Catalog, s: Session, run: Run, attempt: Mapping[str, Any]) -> None:
    """``run`` is a new attempt of the engine task named by ``attempt``: link it to the
    previous attempt (``retry_of``) and end earlier attempts still RUNNING — the engine started
    this one, so they cannot be alive."""
    reason = (f"aborted: superseded by run {run.id}, a new attempt of the same task "
              f"(try {(run.engine or {}).get('try_number', '?')})")
    retry_of, reaped = leases.supersede(s, run=run, attempt=attempt, reason=reason)
    run.retry_of = retry_of
    _record(cat, s, reaped)


__all__ = ["abort_event", "reap_dead_runs", "reap_on_open", "supersede"]
