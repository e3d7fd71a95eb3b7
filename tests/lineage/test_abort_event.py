"""The ABORT event the reaper writes for a run whose process died is a valid OpenLineage event
carrying the reason (issue 14, section 4)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from headwater import Catalog
from headwater.catalog.models import LineageOutbox, Run, utcnow
from headwater.lineage.facets import stored_event
from headwater.lineage.outbox import OutboxRecorder
from headwater.reaper import reap_dead_runs
from headwater.settings import Settings
from tests.lineage.support import OLValidator


def test_reaped_run_has_a_valid_abort_event_with_the_reason(
        tmp_path: Path, ol_validator: OLValidator) -> None:
    settings = Settings.resolve(catalog_url=f"sqlite:///{tmp_path / 'c.db'}",
                                store_url=str(tmp_path / "store"))
    with Catalog(settings, lineage=OutboxRecorder(deliver=False)) as cat:
        run = cat.run("killed", params={"k": 1}, engine={"name": "test"})
        run.start()
        with cat.session() as s:
            s.execute(sa.update(Run).where(Run.id == run.id)
                      .values(lease_until=utcnow() - timedelta(seconds=1)))
        assert [r.run.id for r in reap_dead_runs(cat)] == [run.id]
        run._stop_heartbeat()
        with cat.session() as s:
            rows = s.scalars(sa.select(LineageOutbox).where(LineageOutbox.run_id == run.id)
                             .order_by(LineageOutbox.id)).all()
            stored = [(r.event_type, r.event) for r in rows]
    assert [t for t, _ in stored] == ["START", "ABORT"]
    event = stored_event(stored[-1][1])
    ol_validator.validate(event)
    assert event["eventType"] == "ABORT" and event["run"]["runId"] == run.id
    assert "lease expired" in event["run"]["facets"]["errorMessage"]["message"]
    assert event["job"]["name"] == "killed"
