"""The catalog side of "gc never deletes what an open run uses" (ADR 0001, "gc and open runs").

Object stores (a directory, S3, GCS) have no locks, so the catalog is where ``gc`` and commits
meet:

* ``gc`` deletes in batches, each inside one catalog transaction that holds the *gc lock*
  exclusively (:func:`hold_exclusive`) and bumps the store's *gc epoch* (:func:`bump_epoch`);
* a commit's record transaction holds the gc lock shared (:func:`hold_shared`) and reads the
  epoch again (:func:`read_epoch`): if it is the one read when the run started, no object has been
  deleted since, and none can be until the commit's transaction ends.

PostgreSQL: a transaction-scoped advisory lock (``pg_advisory_xact_lock`` / ``_shared``), released
by commit or rollback, so a crashed holder never leaves it taken. SQLite: every transaction
starts with ``BEGIN IMMEDIATE`` (see :mod:`headwater.catalog.db`), the database's single write
lock, which already serialises a gc batch against a commit: nothing more to take.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from headwater.catalog import stores
from headwater.catalog.models import GcEpoch, Report, Version, utcnow

#: Advisory-lock key of the gc lock (two int4 halves): "HWgc" and 1.
_KEY = {"a": 0x48576763, "b": 1}


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def hold_shared(session: Session) -> None:
    """Block ``gc`` deletions until ``session``'s transaction ends (commits share it)."""
    if _postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:a, :b)"), _KEY)


def hold_exclusive(session: Session) -> None:
    """Wait for every open commit transaction, then keep new ones out until this one ends."""
    if _postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), _KEY)


def read_epoch(session: Session, store_url: str) -> int:
    """How many deletion batches ``gc`` has run on ``store_url`` (0: never)."""
    value = session.scalar(select(GcEpoch.epoch).where(GcEpoch.store_url == store_url))
    return int(value or 0)


def bump_epoch(session: Session, store_url: str) -> int:
    """Advance ``store_url``'s epoch (call holding the exclusive lock); returns the new value."""
    done = session.execute(update(GcEpoch).where(GcEpoch.store_url == store_url)
                           .values(epoch=GcEpoch.epoch + 1, updated_at=utcnow()))
    if not done.rowcount:  # type: ignore[attr-defined]
        session.add(GcEpoch(store_url=store_url, epoch=1, updated_at=utcnow()))
        session.flush()
    return read_epoch(session, store_url)


def version_roots(session: Session, store_url: str, catalog_url: str) -> set[str]:
    """Root (manifest) digests of every version kept in ``store_url``, in any state."""
    return set(session.scalars(select(Version.digest).where(
        stores.in_store(Version.store_url, store_url, catalog_url))))


def report_rows(
    session: Session, store_url: str, catalog_url: str
) -> list[tuple[int, dict[str, Any], str]]:
    """``(id, body, digest)`` of every report whose payload is kept in ``store_url``."""
    rows = session.execute(select(Report.id, Report.body, Report.digest).where(
        stores.in_store(Report.store_url, store_url, catalog_url))).all()
    return [(int(i), body or {}, digest) for i, body, digest in rows]
