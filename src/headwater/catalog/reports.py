"""Reads of report rows and version annotations (descriptions, properties) and their history.

Why in ``catalog/``: queries live in one layer (ADR 0004). ``headwater.reporting`` (the
``Catalog`` methods: payloads to the store, then rows) and the server's listings
(:mod:`headwater.catalog.listings`) both read reports through these, so "a version's reports,
newest first" is one query. Functions take an open session and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater.catalog.models import Report, Version, VersionAnnotation


def reports_of(s: Session, version_id: int, *, name: str | None = None) -> Sequence[Report]:
    """The reports of version ``version_id`` (only those called ``name``, given), newest
    first."""
    q = select(Report).where(Report.version_id == version_id)
    if name is not None:
        q = q.where(Report.name == name)
    return s.scalars(q.order_by(Report.id.desc())).all()


def report_count(s: Session, version_id: int) -> int:
    """How many reports version ``version_id`` has."""
    return int(s.scalar(select(func.count()).select_from(Report)
                        .where(Report.version_id == version_id)) or 0)


def scalar_bodies(s: Session, dataset_id: int, name: str) -> list[tuple[int, dict[str, Any]]]:
    """``(version number, body)`` of every scalar report ``name`` on the versions of dataset
    ``dataset_id``, by version number, then oldest report first."""
    rows = s.execute(
        select(Version.number, Report.body)
        .join(Report, Report.version_id == Version.id)
        .where(Version.dataset_id == dataset_id, Report.name == name, Report.kind == "scalar")
        .order_by(Version.number, Report.id)
    ).all()
    return [(int(number), body) for number, body in rows]


def annotation_history(s: Session, version_id: int) -> Sequence[VersionAnnotation]:
    """Every description/properties edit of version ``version_id``, oldest first (the newest
    is the current one: :func:`headwater.catalog.repo.current_annotation`)."""
    return s.scalars(select(VersionAnnotation).where(VersionAnnotation.version_id == version_id)
                     .order_by(VersionAnnotation.id)).all()


__all__ = ["annotation_history", "report_count", "reports_of", "scalar_bodies"]
