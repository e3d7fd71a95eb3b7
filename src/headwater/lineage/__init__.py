"""Lineage delivery. The core calls a :class:`LineageRecorder` inside each run's transactions;
what it does with them (an OpenLineage outbox, nothing at all) is decided here, not by callers."""

from headwater.lineage.base import LineageRecorder, NullLineage, RunEvent

__all__ = ["LineageRecorder", "NullLineage", "RunEvent"]


def default_recorder(settings: object) -> LineageRecorder:
    """The recorder a Catalog uses unless given one: lineage off records nothing."""
    return NullLineage()
