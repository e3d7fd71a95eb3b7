"""No run stays RUNNING forever (issue 14, section 4): owners, heartbeats, the reaper.

Real processes, really killed: a child opens a run block and is SIGKILLed (what the OOM killer
and a preempted node do: no ``except``, no ``finally``); the next command must end its run with
the reason and an ABORT event in the lineage outbox, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater import Catalog
from headwater.catalog import leases
from headwater.catalog.models import LineageOutbox, Run, utcnow
from headwater.errors import RunFailed
from headwater.lineage import NullLineage
from headwater.lineage.outbox import OutboxRecorder
from headwater.reaper import reap_dead_runs
from headwater.settings import Settings

HEADWATER = str(Path(sys.executable).with_name("headwater"))
ELSEWHERE = leases.Owner(host="another-machine", pid=1, token="boot/pid:[1]/1")

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from headwater import Catalog
    cat = Catalog.open()
    with cat.run("victim", engine={"name": "test"}) as run:
        print(run.id, flush=True)
        hold = float(sys.argv[1])
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            time.sleep(0.05)
        out = Path(sys.argv[2]) / "out.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("survived\\n")
        run.log_output(str(out), name="survivor")
    print("committed", flush=True)
""")


def _env(catalog_url: str, store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update({"HEADWATER_CATALOG_URL": catalog_url, "HEADWATER_STORE_URL": str(store),
                "HEADWATER_HOME": str(store.parent / "home"), "HEADWATER_LINEAGE": "on",
                "OPENLINEAGE_DISABLED": "true", "AWS_EC2_METADATA_DISABLED": "true", **extra})
    return env


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def recorded(catalog_url: str, store: Path) -> Iterator[Catalog]:
    """A catalog whose lineage recorder writes the outbox and never delivers (we read it)."""
    cat = Catalog(Settings.resolve(catalog_url=catalog_url, store_url=str(store)),
                  lineage=OutboxRecorder(deliver=False))
    yield cat
    cat.close()


def _start_child(catalog_url: str, store: Path, hold: float, **env: str
                 ) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(hold), str(store.parent / "src")],
                            env=_env(catalog_url, store, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read() if proc.stderr else ""
    return proc, run_id


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def _next_command(catalog_url: str, store: Path) -> list[dict]:
    """``headwater runs --json`` in a new process: what a user types next."""
    proc = subprocess.run([HEADWATER, "runs", "--json"], env=_env(catalog_url, store),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _run(cat: Catalog, run_id: str) -> Run:
    with cat.session() as s:
        run = s.get(Run, run_id)
        assert run is not None
        s.expunge(run)
        return run


def _events(cat: Catalog, run_id: str) -> list[tuple[str, dict]]:
    with cat.session() as s:
        return [(r.event_type, r.event) for r in s.scalars(
            sa.select(LineageOutbox).where(LineageOutbox.run_id == run_id)
            .order_by(LineageOutbox.id))]


def test_sigkilled_run_is_reaped_by_the_next_command_after_its_lease(
        catalog_url: str, store: Path, recorded: Catalog) -> None:
    proc, run_id = _start_child(catalog_url, store, 600, HEADWATER_RUN_HEARTBEAT="0.5",
                                HEADWATER_RUN_LEASE="4")
    _kill(proc)
    # the owner as seen from another machine: only the lease can tell it is dead
    with recorded.session() as s:
        s.execute(sa.update(Run).where(Run.id == run_id).values(owner_host=ELSEWHERE.host))
        lease_until = s.get_one(Run, run_id).lease_until
    assert lease_until is not None
    assert reap_dead_runs(recorded) == []  # within its lease: alive as far as anyone knows
    assert _run(recorded, run_id).state == "RUNNING"

    time.sleep(max(0.0, (lease_until - utcnow()).total_seconds()) + 0.2)
    listed = {r["id"]: r for r in _next_command(catalog_url, store)}

    assert listed[run_id]["state"] == "ABORTED"
    assert "lease expired" in listed[run_id]["error"]
    assert listed[run_id]["ended_at"] is not None
    run = _run(recorded, run_id)
    assert run.state == "ABORTED" and run.ended_at is not None
    events = _events(recorded, run_id)
    assert [t for t, _ in events] == ["START", "ABORT"]
    assert "lease expired" in events[-1][1]["error"]


def test_dead_process_on_this_host_is_reaped_at_once(
        catalog_url: str, store: Path, recorded: Catalog) -> None:
    proc, run_id = _start_child(catalog_url, store, 600)  # default lease: 300 s
    _kill(proc)
    run = _run(recorded, run_id)
    assert run.owner_pid == proc.pid and run.lease_until is not None
    assert run.lease_until > utcnow() + timedelta(seconds=200)

    listed = {r["id"]: r for r in _next_command(catalog_url, store)}

    assert listed[run_id]["state"] == "ABORTED"
    assert f"pid {proc.pid}" in listed[run_id]["error"] and "is gone" in listed[run_id]["error"]
    assert [t for t, _ in _events(recorded, run_id)] == ["START", "ABORT"]
    # reaping twice changes nothing and writes no second event
    assert reap_dead_runs(recorded) == []
    assert [t for t, _ in _events(recorded, run_id)] == ["START", "ABORT"]


def test_live_run_is_never_reaped_its_heartbeat_outlives_the_lease(
        catalog_url: str, store: Path, recorded: Catalog) -> None:
    proc, run_id = _start_child(catalog_url, store, 3.5, HEADWATER_RUN_HEARTBEAT="0.2",
                                HEADWATER_RUN_LEASE="1")
    first = _run(recorded, run_id).lease_until
    deadline = time.monotonic() + 3.0  # three lease periods
    while time.monotonic() < deadline:
        with recorded.session() as s:  # as another machine sees it: the lease is all it has
            assert leases.reap(s, me=ELSEWHERE) == []
        assert reap_dead_runs(recorded) == []  # and as this machine sees it
        time.sleep(0.1)
    renewed = _run(recorded, run_id)
    assert renewed.state == "RUNNING" and renewed.lease_until is not None and first is not None
    assert renewed.lease_until > first + timedelta(seconds=2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "committed" in out
    assert _run(recorded, run_id).state == "COMPLETED"
    assert [t for t, _ in _events(recorded, run_id)] == ["START", "COMPLETE"]


def test_a_reaped_run_cannot_commit_afterwards(catalog: Catalog, tmp_path: Path) -> None:
    """A run aborted while its process was stalled (lease lost) must not come back COMPLETED."""
    (tmp_path / "f.txt").write_text("x\n")
    with pytest.raises(RunFailed, match="ABORTED"), catalog.run("stalled") as run:
        run.log_output(str(tmp_path / "f.txt"), name="stalled_out")
        with catalog.session() as s:  # the lease runs out (a suspended laptop, a GC pause)
            s.execute(sa.update(Run).where(Run.id == run.id)
                      .values(lease_until=utcnow() - timedelta(seconds=1)))
            assert [r.run.id for r in leases.reap(s, me=ELSEWHERE)] == [run.id]
    got = catalog.get_run(run.id)
    assert got.state == "ABORTED" and "lease expired" in (got.error or "")
    with pytest.raises(LookupError):  # nothing of the aborted run became visible
        catalog.versions("stalled_out")


def test_heartbeat_threads_stop_with_their_run(catalog: Catalog, tmp_path: Path) -> None:
    import threading

    def beats() -> int:
        return sum(t.name.startswith("headwater-heartbeat-") for t in threading.enumerate())

    before = beats()
    with catalog.run("quick") as run:
        assert beats() == before + 1
    with pytest.raises(ValueError), catalog.run("broken"):
        raise ValueError("boom")
    assert beats() == before
    assert catalog.get_run(run.id).state == "COMPLETED"


def test_runs_without_a_lease_are_not_ours_to_reap(catalog: Catalog) -> None:
    """Runs ingested from OpenLineage producers (or started before migration 0009) have no
    owner: the reaper leaves them to their producer's terminal event."""
    with catalog.run("legacy") as run:
        with catalog.session() as s:
            s.execute(sa.update(Run).where(Run.id == run.id).values(
                lease_until=None, owner_host=None, owner_pid=None, owner_token=None))
            run_id = run.id
        with catalog.session() as s:
            assert leases.reap(s, me=ELSEWHERE, now=utcnow() + timedelta(days=30)) == []
    assert catalog.get_run(run_id).state == "COMPLETED"


def test_lease_settings_are_checked() -> None:
    from headwater.errors import InvalidArgument

    s = Settings.resolve(environ={"HEADWATER_RUN_HEARTBEAT": "2"})
    assert (s.run_heartbeat_seconds, s.run_lease_seconds) == (2.0, 300.0)
    with pytest.raises(InvalidArgument, match="at least twice"):
        Settings.resolve(environ={"HEADWATER_RUN_HEARTBEAT": "10", "HEADWATER_RUN_LEASE": "15"})
    with pytest.raises(InvalidArgument, match="HEADWATER_RUN_LEASE must be a number"):
        Settings.resolve(environ={"HEADWATER_RUN_LEASE": "soon"})


def test_attempts_supersede_and_link(catalog: Catalog) -> None:
    """The core side of Airflow retries: try 2 aborts try 1 still RUNNING and links it."""
    ids = {"name": "airflow", "dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1}
    try1 = catalog.run("d.t", engine={**ids, "try_number": 1}, attempt=ids)
    try1.start()
    sibling = catalog.run("d.t", engine={**ids, "map_index": 0, "try_number": 1},
                          attempt={**ids, "map_index": 0})
    sibling.start()
    with catalog.run("d.t", engine={**ids, "try_number": 2}, attempt=ids) as try2:
        pass
    first = catalog.get_run(try1.id)
    assert first.state == "ABORTED" and f"superseded by run {try2.id}" in (first.error or "")
    assert catalog.get_run(try2.id).retry_of == try1.id
    assert catalog.get_run(sibling.id).state == "RUNNING"  # another task instance: untouched
    with pytest.raises(RunFailed, match="ABORTED"):
        try1.commit()
    sibling.commit()


def test_reaping_with_lineage_off(catalog_url: str, store: Path) -> None:
    cat = Catalog(Settings.resolve(catalog_url=catalog_url, store_url=str(store)),
                  lineage=NullLineage())
    try:
        run = cat.run("orphan")
        run.start()
        with cat.session() as s:
            s.execute(sa.update(Run).where(Run.id == run.id)
                      .values(lease_until=utcnow() - timedelta(seconds=5)))
        assert [r.run.id for r in reap_dead_runs(cat)] == [run.id]
        run._stop_heartbeat()
    finally:
        cat.close()


def test_api_shows_the_retry_link_and_the_owner(catalog: Catalog) -> None:
    from fastapi.testclient import TestClient

    from headwater.server.app import create_app

    ids = {"name": "airflow", "dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1}
    try1 = catalog.run("d.t", engine={**ids, "try_number": 1}, attempt=ids)
    try1.start()
    with catalog.run("d.t", engine={**ids, "try_number": 2}, attempt=ids) as try2:
        pass
    with TestClient(create_app(catalog), base_url="http://localhost") as client:
        first = client.get(f"/api/v1/runs/{try1.id}").json()
        second = client.get(f"/api/v1/runs/{try2.id}").json()
    assert first["state"] == "ABORTED" and "superseded" in first["error"]
    assert second["retry_of"] == try1.id and second["state"] == "COMPLETED"
    assert second["owner"]["pid"] == os.getpid() and second["owner"]["heartbeat_at"]


def test_gc_reaps_first(catalog: Catalog) -> None:
    run = catalog.run("orphaned_by_gc")
    run.start()
    run._stop_heartbeat()  # its process "died": no more heartbeats
    with catalog.session() as s:
        s.execute(sa.update(Run).where(Run.id == run.id)
                  .values(lease_until=utcnow() - timedelta(seconds=1)))
    catalog.gc(grace_seconds=3600, dry_run=True)
    got = catalog.get_run(run.id)
    assert got.state == "ABORTED" and got.ended_at is not None


def test_owner_gone_tells_dead_zombie_and_reused_pids_from_live_ones() -> None:
    me = leases.this_process()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = leases._owner(child.pid)
        assert not leases.owner_gone(owner.host, owner.pid, owner.token, me=me)  # alive
        boot, pidns, _ = owner.token.split("/")
        reused = f"{boot}/{pidns}/1"  # the same pid, started at another time: someone else
        assert leases.owner_gone(owner.host, owner.pid, reused, me=me)
        other_ns = f"{boot}/pid:[0]/1"  # another container's pid: not ours to judge
        assert not leases.owner_gone(owner.host, owner.pid, other_ns, me=me)
        assert not leases.owner_gone("elsewhere", owner.pid, reused, me=me)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (leases._proc_start(child.pid) or ("", "Z"))[1] != "Z":  # not waited for yet
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert leases.owner_gone(owner.host, owner.pid, owner.token, me=me)  # a zombie
    finally:
        child.kill()
        child.wait()
    assert leases.owner_gone(owner.host, owner.pid, owner.token, me=me)  # gone
    assert not leases.owner_gone(me.host, me.pid, me.token, me=me)
