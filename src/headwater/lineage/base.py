"""The hook between runs and lineage: called in the same database transaction as the run's
state change, so whatever a recorder writes (outbox rows) commits or rolls back with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from headwater.version import VersionInfo


@dataclass(frozen=True)
class RunEvent:
    """Everything a lineage event needs to know about a run at one state change."""

    run_id: str
    job_namespace: str
    job_name: str
    state: str  # START | COMPLETE | FAIL
    event_time: datetime
    params: dict[str, Any] = field(default_factory=dict)
    code_fingerprint: str | None = None
    cache_key: str | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    parent: dict[str, Any] | None = None
    nominal_time: datetime | None = None
    inputs: tuple[VersionInfo, ...] = ()
    outputs: tuple[VersionInfo, ...] = ()
    error: str | None = None
    job_type: str | None = None
    source_location: str | None = None


class LineageRecorder(Protocol):
    def record(self, session: Session, event: RunEvent) -> None:
        """Record ``event`` as part of ``session``'s transaction; must not do network I/O."""

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` s) for deliveries in flight; True when none is left."""


class NullLineage:
    """Lineage turned off: records nothing."""

    def record(self, session: Session, event: RunEvent) -> None:
        return None

    def join(self, timeout: float | None = None) -> bool:
        return True
