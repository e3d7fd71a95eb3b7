"""The outbox recorder: OpenLineage events written in the run's own transaction.

:meth:`OutboxRecorder.record` adds a ``lineage_outbox`` row holding the event's record (plain
JSON, :mod:`headwater.lineage.record`) to the session the run is committing with, so the event
becomes durable exactly when the run state change does (and vanishes with it on rollback). It
does no network I/O and does not import openlineage: the event is built at delivery. It also
registers a SQLAlchemy ``after_commit`` hook on that session: once the transaction is
committed, the events of the runs it touched are handed to
:class:`~headwater.lineage.emitter.BackgroundDelivery`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from headwater.catalog.models import LineageOutbox, utcnow
from headwater.lineage.base import RunEvent
from headwater.lineage.emitter import PENDING, BackgroundDelivery, Emitter, describe
from headwater.lineage.record import event_identity, to_record

log = logging.getLogger(__name__)

_RUNS_KEY = "headwater.lineage.runs"
_HOOK_KEY = "headwater.lineage.hooked"


class OutboxRecorder:
    """Writes each run event to the outbox; delivers after commit unless ``deliver`` is False.

    ``wait`` bounds how long a committing step waits for delivery (see
    :class:`BackgroundDelivery`); ``deliver=False`` leaves everything to
    ``headwater lineage flush``.
    """

    def __init__(
        self,
        emitter: Emitter | None = None,
        *,
        deliver: bool = True,
        wait: float = 1.0,
        exit_wait: float = 2.0,
    ) -> None:
        self.emitter = emitter or Emitter()
        self.delivery: BackgroundDelivery | None = (
            BackgroundDelivery(self.emitter, wait=wait, exit_wait=exit_wait) if deliver else None
        )

    def record(self, session: Session, event: RunEvent) -> None:
        data = to_record(event)
        now = utcnow()
        session.add(
            LineageOutbox(
                event_id=event_identity(event.run_id, event.state, data["eventTime"]),
                run_id=event.run_id,
                event_type=event.state,
                event=data,
                state=PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )
        if self.delivery is None:
            return
        runs: set[str] = session.info.setdefault(_RUNS_KEY, set())
        runs.add(event.run_id)
        if not session.info.get(_HOOK_KEY):
            session.info[_HOOK_KEY] = True
            sa_event.listen(session, "after_commit", self._after_commit)

    def _after_commit(self, session: Session) -> None:
        """Runs right after COMMIT; must not raise (the run is already committed)."""
        try:
            runs: set[str] = session.info.pop(_RUNS_KEY, set())
            if not runs or self.delivery is None:
                return
            bind: Any = session.get_bind()
            engine: Engine = bind if isinstance(bind, Engine) else bind.engine
            self.delivery.kick(engine, runs)
        except Exception as exc:
            log.warning("headwater lineage: could not schedule delivery (%s)", describe(exc))

    def join(self, timeout: float | None = None) -> bool:
        """Wait for after-commit deliveries in flight (tests, clean shutdown)."""
        return True if self.delivery is None else self.delivery.join(timeout)


__all__ = ["OutboxRecorder"]
