"""Delivery that is complete and costs nothing while the backend is down (issue 14, section 5).

Real processes and real sockets wherever the defect lives between processes: a delivery thread
stuck on a backend that never answers when its process exits or is killed, a backend that
refuses every request while new processes keep committing, ``OPENLINEAGE_CONFIG`` naming a file
that does not exist, two catalogs named with ``--catalog``, and an ``add`` that must not import
openlineage.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from headwater import Catalog
from headwater.catalog.models import LineageBackoff, LineageOutbox, utcnow
from headwater.cli import main
from headwater.lineage import NullLineage
from headwater.lineage.emitter import Breaker, DeliveryPolicy, Emitter, outbox_status
from headwater.lineage.facets import stored_event
from headwater.lineage.outbox import OutboxRecorder
from headwater.lineage.record import event_identity, headwater_version, to_record
from tests.lineage.rich_events import rich_events, version
from tests.lineage.support import MemoryTransport, OLValidator
from tests.lineage.test_processes import LOG_VERSIONS

DATA = Path(__file__).with_name("data")
Opener = Callable[..., tuple[Catalog, OutboxRecorder]]


# -- helpers --------------------------------------------------------------------------------------
@pytest.fixture
def proc_env(tmp_path: Path) -> dict[str, str]:
    """A child environment with its own catalog and HOME, and no OpenLineage configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "HEADWATER_"))}
    env["HEADWATER_CATALOG_URL"] = f"sqlite:///{tmp_path / 'c.db'}"
    env["HEADWATER_STORE_URL"] = str(tmp_path / "store")
    env["HOME"] = str(tmp_path)
    return env


def file_transport(env: dict[str, str], target: Path) -> dict[str, str]:
    out = {k: v for k, v in env.items() if not k.startswith("OPENLINEAGE")}
    out["OPENLINEAGE__TRANSPORT__TYPE"] = "file"
    out["OPENLINEAGE__TRANSPORT__LOG_FILE_PATH"] = str(target)
    out["OPENLINEAGE__TRANSPORT__APPEND"] = "true"
    return out


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def flush(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any], str]:
    done = run(["-m", "headwater", "lineage", "flush", "--json"], env, cwd)
    return done.returncode, json.loads(done.stdout or "{}"), done.stderr


def outbox_rows(url: str, store: Path) -> list[Any]:
    with (
        Catalog.open(url, store_url=str(store), lineage=NullLineage()) as cat,
        cat.engine.connect() as conn,
    ):
        return list(conn.execute(select(LineageOutbox.__table__).order_by(LineageOutbox.id)))


@pytest.fixture
def silent_backend() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


class RefusingBackend:
    """Accepts each connection and closes it at once: a backend that is down, which counts how
    often it was tried."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def silent_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "silent" / "openlineage.yml"  # not in the working directory
    path.parent.mkdir()
    path.write_text(
        "transport:\n"
        "  type: http\n"
        f"  url: http://127.0.0.1:{port}\n"
        "  timeout: 60\n"
        "  retry: {total: 0, connect: 0, read: 0}\n"
    )
    return path


# -- 1. claims of processes that are gone ---------------------------------------------------------
@pytest.mark.slow
def test_claims_are_released_when_the_process_exits(
    tmp_path: Path, proc_env: dict[str, str], silent_backend: int
) -> None:
    """The delivery thread is still waiting for the backend when its process exits: a flush
    right after must send everything, not report "delivered 0, pending 2" for 60 s."""
    env = {**proc_env, "OPENLINEAGE_CONFIG": str(silent_config(tmp_path, silent_backend))}
    logged = run(["-c", LOG_VERSIONS, "1", "held"], env, tmp_path)
    assert logged.returncode == 0, logged.stderr

    target = tmp_path / "events.jsonl"
    code, result, stderr = flush(file_transport(proc_env, target), tmp_path)
    assert (code, result["delivered"], result["pending"]) == (0, 2, 0), stderr
    assert [json.loads(line)["eventType"] for line in target.read_text().splitlines()] == [
        "START",
        "COMPLETE",
    ]


@pytest.mark.slow
def test_flush_takes_over_the_claims_of_a_killed_process(
    tmp_path: Path, proc_env: dict[str, str], silent_backend: int
) -> None:
    """SIGKILL runs no exit hook: the claims stay, and flush takes them over at once because
    their owner (same host, pid gone) is dead."""
    env = {**proc_env, "OPENLINEAGE_CONFIG": str(silent_config(tmp_path, silent_backend))}
    child = subprocess.Popen(
        [sys.executable, "-c", LOG_VERSIONS + "import time; time.sleep(60)\n", "1", "killed"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # the run committed (START and COMPLETE are in the outbox)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r.claimed_until is not None for r in outbox_rows(
                proc_env["HEADWATER_CATALOG_URL"], tmp_path / "store"
            )):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the delivery thread never claimed a row")
    finally:
        child.kill()
        child.wait()

    target = tmp_path / "events.jsonl"
    code, result, stderr = flush(file_transport(proc_env, target), tmp_path)
    assert (code, result["delivered"], result["pending"]) == (0, 2, 0), stderr
    assert [json.loads(line)["eventType"] for line in target.read_text().splitlines()] == [
        "START",
        "COMPLETE",
    ]


@pytest.fixture
def queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Catalog, Path]]:
    """A catalog with one logged version whose two events wait in the outbox; the process
    environment names it and a file transport."""
    for var in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("HEADWATER_CATALOG_URL", url)
    monkeypatch.setenv("HEADWATER_STORE_URL", str(tmp_path / "store"))
    target = tmp_path / "events.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(target))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    cat = Catalog.open(
        url, store_url=str(tmp_path / "store"), lineage=OutboxRecorder(deliver=False)
    )
    cat.log(pa.table({"a": [1]}), name="t")
    yield cat, target
    cat.close()


def test_flush_says_why_events_stay_and_takes_over_once_the_owner_is_gone(
    queued: tuple[Catalog, Path],
) -> None:
    cat, target = queued
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{socket.gethostname()}:{holder.pid}:feedc0de"
        with cat.engine.begin() as conn:
            conn.execute(
                update(LineageOutbox.__table__).values(
                    claimed_by=owner, claimed_until=utcnow() + timedelta(seconds=60)
                )
            )
        busy = CliRunner().invoke(main, ["lineage", "flush", "--wait", "0.3"])
        assert busy.exit_code == 2, busy.output
        assert f"not sent: 2 event(s): being sent by process {owner}" in busy.stdout
        assert len(busy.stderr.strip().splitlines()) == 1
        assert "2 lineage event(s) not delivered: being sent by process" in busy.stderr
    finally:
        holder.kill()
        holder.wait()
    # the owner is gone, its lease is not over: flush takes its rows at once
    done = CliRunner().invoke(main, ["lineage", "flush"])
    assert done.exit_code == 0, done.output
    assert "delivered 2, pending 0" in done.stdout
    assert len(target.read_text().splitlines()) == 2


def test_flush_exits_nonzero_while_given_up_events_stay(queued: tuple[Catalog, Path]) -> None:
    cat, _ = queued
    with cat.engine.begin() as conn:
        conn.execute(
            update(LineageOutbox.__table__)
            .where(LineageOutbox.event_type == "START")
            .values(state="failed", attempts=12, last_error="ConnectionError: gone")
        )
    stuck = CliRunner().invoke(main, ["lineage", "flush"])
    assert stuck.exit_code == 2
    assert "gave up after too many failed attempts (`--include-failed` retries them)" in (
        stuck.stdout
    )
    assert "wait behind an earlier event of their run that gave up" in stuck.stdout
    assert CliRunner().invoke(main, ["lineage", "flush", "--include-failed"]).exit_code == 0


# -- 2. a dead backend costs a new process nothing ---------------------------------------------
@pytest.mark.slow
def test_a_dead_backend_is_tried_by_one_process_not_by_every_command(
    tmp_path: Path, proc_env: dict[str, str]
) -> None:
    backend = RefusingBackend()
    env = {**proc_env, "OPENLINEAGE_URL": f"http://127.0.0.1:{backend.port}"}
    try:
        for i in range(3):
            (tmp_path / f"d{i}").mkdir()
            (tmp_path / f"d{i}" / "x.txt").write_text(f"{i}\n")
        first = run(["-m", "headwater", "add", str(tmp_path / "d0"), "--name", "d0"], env, tmp_path)
        assert first.returncode == 0, first.stderr
        tried = backend.connections
        assert tried >= 1
        for i in (1, 2):  # new processes while the breaker is open: no attempt, no openlineage
            t0 = time.monotonic()
            later = run(
                ["-X", "importtime", "-m", "headwater", "add", str(tmp_path / f"d{i}"),
                 "--name", f"d{i}"],
                env,
                tmp_path,
            )
            elapsed = time.monotonic() - t0
            assert later.returncode == 0, later.stderr
            assert backend.connections == tried, f"process {i} tried the dead backend again"
            assert "openlineage" not in later.stderr
            assert elapsed < 4, elapsed  # each used to wait out the backend (4-5 s)
    finally:
        backend.close()
    status = run(["-m", "headwater", "lineage", "status", "--json"], env, tmp_path)
    info = json.loads(status.stdout)
    assert info["pending"] == 6 and info["delivered"] == 0
    (paused,) = info["paused"]
    assert paused["failures"] >= 1 and paused["transport"].startswith("http")


def test_only_one_process_probes_a_recovering_transport(db_url: str, tmp_path: Path) -> None:
    policy = DeliveryPolicy(backoff_base=60, probe_lease=30)
    key = "k" * 64
    with Catalog.open(db_url, store_url=str(tmp_path / "s"), lineage=NullLineage()) as cat:
        one, two = Breaker(key, policy), Breaker(key, policy)
        assert one.take_probe(cat.engine) and two.take_probe(cat.engine)  # healthy: no row
        one.failed(cat.engine, "ConnectionError: refused", "http http://x")
        assert not two.allows(cat.engine)  # the other process sees the open breaker
        with cat.engine.begin() as conn:  # the backoff runs out (no sleep that hopes)
            conn.execute(update(LineageBackoff).where(LineageBackoff.transport_key == key)
                         .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        three = Breaker(key, policy)  # a process that has not looked yet
        assert three.allows(cat.engine)
        assert three.take_probe(cat.engine) is True
        assert one.take_probe(cat.engine) is False  # three is probing
        three.succeeded(cat.engine)
        assert outbox_status(cat.engine)["paused"] == []
        assert one.take_probe(cat.engine) is True


# -- 3. openlineage-python's fallbacks are not delivery --------------------------------------------
def test_a_missing_openlineage_config_is_not_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "conf" / "openlineage.yml"
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(missing))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Catalog.open(url, store_url=str(tmp_path / "store")) as cat:
        cat.log(pa.table({"a": [1]}), name="t")
        assert cat.recorder.join(10)
        status = outbox_status(cat.engine)
    assert (status["pending"], status["delivered"]) == (2, 0)

    flushed = CliRunner().invoke(main, ["--catalog", url, "lineage", "flush"])
    assert flushed.exit_code == 2
    (line,) = flushed.stderr.strip().splitlines()
    assert f"OPENLINEAGE_CONFIG names {missing}, which does not exist" in line

    # the file appears: the next flush delivers
    missing.parent.mkdir()
    target = tmp_path / "events.jsonl"
    missing.write_text(f"transport:\n  type: file\n  log_file_path: {target}\n  append: true\n")
    done = CliRunner().invoke(main, ["--catalog", url, "lineage", "flush"])
    assert done.exit_code == 0, done.output
    assert len(target.read_text().splitlines()) == 2


def test_openlineage_disabled_keeps_events_pending(queued: tuple[Catalog, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    result = CliRunner().invoke(main, ["lineage", "flush", "--json"])
    assert result.exit_code == 2
    assert "OPENLINEAGE_DISABLED" in json.loads(result.stdout)["error"]
    assert json.loads(result.stdout)["pending"] == 2


def test_a_console_transport_the_user_configured_is_delivery(
    queued: tuple[Catalog, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "console")
    result = CliRunner().invoke(main, ["lineage", "flush", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["delivered"] == 2


# -- 4. --catalog ---------------------------------------------------------------------------------
def test_lineage_commands_use_the_catalog_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    default, other = (f"sqlite:///{tmp_path / n}" for n in ("default.db", "other.db"))
    monkeypatch.setenv("HEADWATER_CATALOG_URL", default)
    monkeypatch.setenv("HEADWATER_STORE_URL", str(tmp_path / "store"))
    for url, n in ((default, 1), (other, 2)):
        with Catalog.open(url, store_url=str(tmp_path / "store"),
                          lineage=OutboxRecorder(deliver=False)) as cat:
            for i in range(n):
                cat.log(pa.table({"a": [i]}), name=f"t{i}")

    def status(*args: str) -> dict[str, Any]:
        got = CliRunner().invoke(main, [*args, "lineage", "status", "--json"])
        assert got.exit_code == 0, got.output
        return dict(json.loads(got.stdout))

    assert status()["pending"] == 2
    assert status("--catalog", other)["pending"] == 4

    target = tmp_path / "events.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(target))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    flushed = CliRunner().invoke(main, ["--catalog", other, "lineage", "flush", "--json"])
    assert flushed.exit_code == 0, flushed.output
    assert json.loads(flushed.stdout)["delivered"] == 4
    assert status("--catalog", other)["pending"] == 0
    assert status()["pending"] == 2  # the default catalog was not touched


# -- 5. events are built at delivery, not in the commit -----------------------------------------
#: Top-level packages ``headwater add`` of a folder of plain files never imports.
LIGHT_ADD_AVOIDS = ("openlineage", "pyarrow", "pandas", "numpy", "alembic", "rich", "structlog",
                    "boto3", "botocore", "fsspec", "s3fs", "gcsfs", "aiohttp", "requests",
                    "fastapi", "jinja2")


@pytest.mark.slow
def test_an_add_with_lineage_on_does_not_import_openlineage_nor_other_heavy_packages(
    tmp_path: Path, proc_env: dict[str, str]
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x\n")
    made = run(["-m", "headwater", "ls"], proc_env, tmp_path)  # a new catalog: Alembic's turn
    assert made.returncode == 0, made.stderr
    for _ in range(2):  # a new version, then an unchanged re-log
        added = run(
            ["-X", "importtime", "-m", "headwater", "add", str(tmp_path / "d"), "--name", "d"],
            proc_env,
            tmp_path,
        )
        assert added.returncode == 0, added.stderr
        imported = [line for line in added.stderr.splitlines() if "openlineage" in line]
        assert imported == []
        # nor anything else an add of plain files does not use (issue 18: an unchanged re-log
        # of 100k files is ~0.8 s; each of these cost 10-150 ms of it)
        modules = {line.rsplit("|", 1)[-1].strip() for line in added.stderr.splitlines()
                   if line.startswith("import time:")}
        heavy = {m for m in modules if m.split(".")[0] in LIGHT_ADD_AVOIDS}
        assert heavy == set()
    status = run(["-m", "headwater", "lineage", "status", "--json"], proc_env, tmp_path)
    assert json.loads(status.stdout)["pending"] == 4  # the events were recorded all the same


def test_events_built_at_delivery_equal_the_events_built_at_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ol_validator: OLValidator
) -> None:
    """The record goes through JSON (as the outbox column does) and is built in another working
    directory; the events equal what the builder of commit 487f69e made inside the commit."""
    golden = json.loads(
        (DATA / "events_before_records.json")
        .read_text()
        .replace("__HW_VERSION__", headwater_version())
    )
    records = [json.loads(json.dumps(to_record(e))) for e in rich_events()]
    monkeypatch.chdir(tmp_path)
    built = [stored_event(r) for r in records]
    assert built == golden
    for event, record in zip(built, records, strict=True):
        assert event["eventTime"] == record["eventTime"]
        ol_validator.validate(event)
    assert event_identity(records[0]["runId"], "START", records[0]["eventTime"]) == (
        event_identity(golden[0]["run"]["runId"], "START", golden[0]["eventTime"])
    )


def test_a_relative_store_path_is_pinned_at_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    event = rich_events()[0]
    event = type(event)(**{**event.__dict__, "inputs": (version("rel/store", "p", "d", 1),)})
    record = to_record(event)
    monkeypatch.chdir(tmp_path / "b")
    (inp,) = stored_event(record)["inputs"]
    assert inp["name"] == f"{tmp_path / 'a' / 'rel' / 'store'}/datasets/p/d"


def test_an_unknown_record_format_is_refused_not_sent(
    sqlite_db_url: str, open_catalog: Opener
) -> None:
    cat, _ = open_catalog(sqlite_db_url, MemoryTransport(), deliver=False)
    cat.log(pa.table({"a": [1]}), name="t")
    with cat.session() as s:
        row = s.scalars(select(LineageOutbox).order_by(LineageOutbox.id)).first()
        assert row is not None
        row.event = {**row.event, "format": "headwater.run-event/99"}
        bad_id = row.id
    memory = MemoryTransport()
    result = Emitter(transport=memory).deliver(cat.engine)
    assert result.unbuildable == 1 and memory.events == []
    with cat.session() as s:
        bad = s.get(LineageOutbox, bad_id)
        assert bad is not None and bad.state == "failed"
        assert "headwater.run-event/99" in (bad.last_error or "")
        bad.event = {**bad.event, "format": "headwater.run-event/1"}  # for the teardown check


def test_events_stored_by_an_older_headwater_are_sent_as_stored(
    sqlite_db_url: str, open_catalog: Opener
) -> None:
    cat, _ = open_catalog(sqlite_db_url, MemoryTransport(), deliver=False)
    cat.log(pa.table({"a": [1]}), name="t")
    with cat.session() as s:  # rewrite the rows as the previous Headwater stored them
        rows = s.scalars(select(LineageOutbox).order_by(LineageOutbox.id)).all()
        legacy = [stored_event(r.event) for r in rows]
        for r, event in zip(rows, legacy, strict=True):
            r.event = event
    memory = MemoryTransport()
    assert Emitter(transport=memory).deliver(cat.engine).delivered == 2
    sent = [{k: v for k, v in e.items()} for e in memory.events]
    for e in sent:
        e["run"]["facets"].pop("tags", None)  # the client's own facet, added at emit
    assert sent == legacy


def test_the_airflow_providers_builders_describe_versions_as_delivered_events_do() -> None:
    """``providers/headwater_airflow/openlineage.py`` builds datasets and the provenance facet
    from live versions with the same builders as delivery."""
    from openlineage.client.serde import Serde

    from headwater.lineage.facets import input_dataset, output_dataset, provenance_facet
    from headwater.lineage.provenance import FACET_KEY

    golden = json.loads(
        (DATA / "events_before_records.json")
        .read_text()
        .replace("__HW_VERSION__", headwater_version())
    )[1]
    complete = rich_events()[1]
    assert [Serde.to_dict(input_dataset(v)) for v in complete.inputs] == golden["inputs"]
    assert [Serde.to_dict(output_dataset(v)) for v in complete.outputs] == golden["outputs"]
    assert Serde.to_dict(provenance_facet(complete)) == golden["run"]["facets"][FACET_KEY]
