"""The outbox: events commit (or roll back) with their run, and are delivered at least once,
in order per run, without ever failing or holding up a step."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from headwater import Catalog, Settings
from headwater.catalog.models import LineageOutbox, utcnow
from headwater.cli_lineage import lineage_group
from headwater.lineage import NullLineage, default_recorder
from headwater.lineage.base import RunEvent
from headwater.lineage.emitter import DeliveryPolicy, Emitter, outbox_status
from headwater.lineage.facets import event_identity
from headwater.lineage.outbox import OutboxRecorder
from tests.lineage.conftest import FAST
from tests.lineage.support import BrokenTransport, MemoryTransport, free_port

Opener = Callable[..., tuple[Catalog, OutboxRecorder]]


def rows(cat: Catalog) -> list[LineageOutbox]:
    with cat.session() as s:
        return list(s.scalars(select(LineageOutbox).order_by(LineageOutbox.id)).all())


def identity(e: dict[str, Any]) -> tuple[str, str, str]:
    return (e["run"]["runId"], e["eventType"], e["eventTime"])


def test_events_are_written_with_the_run(db_url: str, open_catalog: Opener) -> None:
    cat, _ = open_catalog(db_url, MemoryTransport(), deliver=False)
    v = cat.log(pa.table({"a": [1]}), name="t")
    got = rows(cat)
    assert [(r.run_id, r.event_type, r.state) for r in got] == [
        (v.run_id, "START", "pending"),
        (v.run_id, "COMPLETE", "pending"),
    ]
    for r in got:
        assert r.event_id == event_identity(r.run_id, r.event_type, r.event["eventTime"])
        assert r.attempts == 0 and r.delivered_at is None


class FailOnComplete(OutboxRecorder):
    def record(self, session: Session, event: RunEvent) -> None:
        super().record(session, event)
        if event.state == "COMPLETE":
            raise RuntimeError("crash between outbox insert and commit")


def test_a_rolled_back_commit_leaves_no_event(db_url: str, tmp_path: Path) -> None:
    recorder = FailOnComplete(Emitter(transport=MemoryTransport()), deliver=False)
    cat = Catalog.open(db_url, store_url=str(tmp_path / "store"), lineage=recorder)
    try:
        with pytest.raises(RuntimeError, match="crash"), cat.run("j") as run:
            run.log_output(pa.table({"a": [1]}), name="t")
        assert [r.event_type for r in rows(cat)] == ["START", "FAIL"]
        assert cat.stats()["versions"] == 0
        assert cat.get_run(run.id).state == "FAILED"
    finally:
        cat.close()


def test_lineage_off_leaves_the_outbox_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.resolve(
        catalog_url=f"sqlite:///{tmp_path / 'c.db'}",
        store_url=str(tmp_path / "s"),
        lineage="off",
    )
    assert isinstance(default_recorder(settings), NullLineage)
    assert isinstance(default_recorder(settings.with_(lineage="on")), OutboxRecorder)
    monkeypatch.setenv("HEADWATER_LINEAGE", "off")
    with Catalog.open(f"sqlite:///{tmp_path / 'c.db'}", store_url=str(tmp_path / "s")) as cat:
        assert isinstance(cat.recorder, NullLineage)
        cat.log(pa.table({"a": [1]}), name="t")
        assert rows(cat) == []


def test_a_broken_transport_leaves_the_step_green_and_the_event_queued(
    db_url: str, open_catalog: Opener
) -> None:
    broken = BrokenTransport()
    cat, recorder = open_catalog(db_url, broken)
    v = cat.log(pa.table({"a": [1]}), name="t")
    assert v.number == 1
    assert recorder.join(5)
    assert broken.calls >= 1
    queued = rows(cat)
    assert {r.state for r in queued} == {"pending"}
    assert queued[0].attempts >= 1 and "ConnectionError" in (queued[0].last_error or "")
    assert outbox_status(cat.engine)["pending"] == 2

    # the backend is back: everything arrives, START before COMPLETE
    memory = MemoryTransport()
    result = Emitter(transport=memory).deliver(cat.engine, ignore_backoff=True)
    assert result.delivered == 2 and result.ok
    assert [e["eventType"] for e in memory.events] == ["START", "COMPLETE"]
    assert {r.state for r in rows(cat)} == {"delivered"}


class StuckTransport(MemoryTransport):
    """A backend that does not answer until the test lets it (no clock in the assertion)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.gave_up = False

    def emit(self, event: Any) -> None:
        if not self.release.wait(30):  # only when a step waited for the backend
            self.gave_up = True
            raise ConnectionError("backend hung for 30 s")
        super().emit(event)


def test_a_slow_backend_does_not_hold_the_step(sqlite_db_url: str, open_catalog: Opener) -> None:
    stuck = StuckTransport()
    cat, recorder = open_catalog(sqlite_db_url, stuck, wait=0.1)
    try:
        v = cat.log(pa.table({"a": [1]}), name="t")  # returns while the backend still hangs
        assert v.number == 1
        assert not stuck.gave_up and stuck.events == []
    finally:
        stuck.release.set()
    assert recorder.join(10)
    assert [e["eventType"] for e in stuck.events] == ["START", "COMPLETE"]


def test_delivery_keeps_order_within_a_run(db_url: str, open_catalog: Opener) -> None:
    cat, _ = open_catalog(db_url, MemoryTransport(), deliver=False)
    a = cat.log(pa.table({"a": [1]}), name="a")
    b = cat.log(pa.table({"b": [1]}), name="b")
    with cat.session() as s:  # a's START is backing off after a failure
        s.execute(
            update(LineageOutbox)
            .where(LineageOutbox.run_id == a.run_id, LineageOutbox.event_type == "START")
            .values(next_attempt_at=utcnow() + timedelta(hours=1), attempts=1)
        )
    memory = MemoryTransport()
    emitter = Emitter(transport=memory)
    emitter.deliver(cat.engine)
    assert [(e["run"]["runId"], e["eventType"]) for e in memory.events] == [
        (b.run_id, "START"),
        (b.run_id, "COMPLETE"),
    ]  # a's COMPLETE waits for a's START
    emitter.deliver(cat.engine, ignore_backoff=True)
    assert [(e["run"]["runId"], e["eventType"]) for e in memory.events[2:]] == [
        (a.run_id, "START"),
        (a.run_id, "COMPLETE"),
    ]


def test_a_redelivered_event_is_recognisably_the_same(
    sqlite_db_url: str, open_catalog: Opener
) -> None:
    cat, _ = open_catalog(sqlite_db_url, MemoryTransport(), deliver=False)
    cat.log(pa.table({"a": [1]}), name="t")
    memory = MemoryTransport()
    emitter = Emitter(transport=memory)
    emitter.deliver(cat.engine)
    with cat.session() as s:  # as if the process died before marking them delivered
        s.execute(update(LineageOutbox).values(state="pending", delivered_at=None))
    emitter.deliver(cat.engine)
    first, second = memory.events[:2], memory.events[2:]
    assert [identity(e) for e in first] == [identity(e) for e in second]
    assert first == second  # byte-for-byte the same payload
    assert {r.attempts for r in rows(cat)} == {2}


def test_gives_up_after_max_attempts_then_flush_retries(
    sqlite_db_url: str, open_catalog: Opener
) -> None:
    cat, _ = open_catalog(sqlite_db_url, MemoryTransport(), deliver=False)
    cat.log(pa.table({"a": [1]}), name="t")
    broken = Emitter(
        transport=BrokenTransport(), policy=DeliveryPolicy(attempts_per_drain=1, max_attempts=2)
    )
    for _ in range(2):
        result = broken.deliver(cat.engine, ignore_backoff=True)
        assert result.failed_attempts == 1 and not result.ok
    assert outbox_status(cat.engine)["failed"] == 1  # START gave up; COMPLETE waits behind it
    memory = MemoryTransport()
    assert Emitter(transport=memory).deliver(cat.engine, ignore_backoff=True).delivered == 0
    done = Emitter(transport=memory).deliver(cat.engine, ignore_backoff=True, include_failed=True)
    assert done.delivered == 2
    assert [e["eventType"] for e in memory.events] == ["START", "COMPLETE"]


def test_claimed_rows_are_left_to_their_emitter(sqlite_db_url: str, open_catalog: Opener) -> None:
    cat, _ = open_catalog(sqlite_db_url, MemoryTransport(), deliver=False)
    cat.log(pa.table({"a": [1]}), name="t")
    first = Emitter(transport=MemoryTransport())
    claimed = first._claim(
        cat.engine, states=("pending",), run_ids=None, ignore_backoff=False, size=10
    )
    assert len(claimed) == 2
    other = MemoryTransport()
    assert Emitter(transport=other).deliver(cat.engine, ignore_backoff=True).delivered == 0
    first._release(cat.engine, [c[0] for c in claimed])
    assert Emitter(transport=other).deliver(cat.engine).delivered == 2


# -- CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "HEADWATER_LINEAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HEADWATER_CATALOG_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("HEADWATER_STORE_URL", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)  # no stray ./openlineage.yml
    with Catalog.open(lineage=OutboxRecorder(deliver=False)) as cat:
        cat.log(pa.table({"a": [1]}), name="t")
    return tmp_path


def test_cli_status_and_flush(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    status = runner.invoke(lineage_group, ["status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["pending"] == 2
    assert "pending 2" in runner.invoke(lineage_group, ["status"]).stdout

    out = cli_env / "events.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(out))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    flushed = runner.invoke(lineage_group, ["flush", "--json"])
    assert flushed.exit_code == 0, flushed.output
    assert json.loads(flushed.stdout) == {
        "delivered": 2,
        "pending": 0,
        "failed": 0,
        "error": None,
        "not_sent": [],
    }
    assert [json.loads(line)["eventType"] for line in out.read_text().splitlines()] == [
        "START",
        "COMPLETE",
    ]


def test_cli_flush_with_the_backend_down_is_a_one_line_error(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TIMEOUT", "1")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0, "connect": 0, "read": 0}')
    result = CliRunner().invoke(lineage_group, ["flush"])
    assert result.exit_code == 2
    assert "delivered 0, pending 2" in result.stdout
    assert "not sent: 2 event(s): the lineage backend failed: ConnectionError" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert "2 lineage event(s) not delivered: the lineage backend failed" in result.stderr
    status = json.loads(CliRunner().invoke(lineage_group, ["status", "--json"]).stdout)
    assert status["pending"] == 2 and "ConnectionError" in status["last_error"]


def test_fast_policy_is_fast() -> None:
    assert FAST.backoff(10) <= 0.05


def test_a_dead_backend_is_not_retried_on_every_commit(
    sqlite_db_url: str, open_catalog: Opener
) -> None:
    broken = BrokenTransport()
    cat, recorder = open_catalog(sqlite_db_url, broken, policy=DeliveryPolicy(attempts_per_drain=1))
    cat.log(pa.table({"a": [1]}), name="t")
    cat.log(pa.table({"a": [2]}), name="t")
    assert recorder.join(5)
    assert broken.calls == 1  # the first failure opened the breaker for backoff_base seconds
    assert outbox_status(cat.engine)["pending"] == 4
