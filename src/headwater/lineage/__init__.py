"""Lineage delivery. The core calls a :class:`LineageRecorder` inside each run's transactions;
what it does with them (an OpenLineage outbox, nothing at all) is decided here, not by callers.

The OpenLineage machinery (``outbox``, ``emitter``, ``facets``) is imported on first use, so
``import headwater`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.lineage.base import LineageRecorder, NullLineage, RunEvent

if TYPE_CHECKING:
    from headwater.settings import Settings

__all__ = ["LineageRecorder", "NullLineage", "RunEvent", "default_recorder"]


def default_recorder(settings: Settings) -> LineageRecorder:
    """The recorder a Catalog uses unless given one.

    ``settings.lineage == "off"`` (``HEADWATER_LINEAGE=off``) records nothing; otherwise events
    go to the catalog's outbox and, when an openlineage-python transport is configured, are
    delivered through it after each commit (else they wait in the outbox for ``flush``).
    """
    if settings.lineage == "off":
        return NullLineage()
    from headwater.lineage.emitter import openlineage_configured
    from headwater.lineage.outbox import OutboxRecorder

    return OutboxRecorder(deliver=openlineage_configured())
