"""Reads of the lineage outbox (``lineage_outbox``) that commands need outside delivery.

Why in ``catalog/``: queries live in one layer (ADR 0004). Delivery itself (claims, backoff,
marking rows sent) is still in ``headwater.lineage.emitter`` (listed in tests/test_architecture.py
until it moves here).
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from headwater.catalog.models import LineageOutbox


def newest_id(conn: Connection) -> int | None:
    """The id of the newest outbox row now (None: empty): ``lineage flush`` sends up to it, so
    rows written while it runs are left to their own process."""
    value = conn.execute(select(func.max(LineageOutbox.id))).scalar()
    return None if value is None else int(value)


__all__ = ["newest_id"]
