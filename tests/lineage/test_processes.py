"""Real processes, real transports configured only the way users configure openlineage-python:
an HTTP backend that is down and comes back (with a process restart in between), and the file
transport set up by an ``openlineage.yml`` that ``OPENLINEAGE_CONFIG`` points to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater import Catalog
from headwater.lineage import NullLineage
from headwater.lineage.emitter import outbox_status
from headwater.lineage.facets import stored_event
from tests.lineage.support import OLValidator, Receiver, free_port

pytestmark = pytest.mark.slow

LOG_VERSIONS = """
import sys
import pyarrow as pa
from headwater import Catalog
cat = Catalog.open()
for i in range(int(sys.argv[1])):
    v = cat.log(pa.table({"i": [i, None]}), name=f"{sys.argv[2]}{i}")
    print(v.ref, v.run_id)
"""

FLUSH = "from headwater.cli_lineage import lineage_group; lineage_group(['flush', '--json'])"


def run_python(code: str, *args: str, env: dict[str, str], cwd: Path) -> Any:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def proc_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "HEADWATER_"))}
    env["HEADWATER_CATALOG_URL"] = f"sqlite:///{tmp_path / 'c.db'}"
    env["HEADWATER_STORE_URL"] = str(tmp_path / "store")
    env["OPENLINEAGE_CONFIG"] = str(tmp_path / "openlineage.yml")
    return env


def outbox(tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from sqlalchemy import select

    from headwater.catalog.models import LineageOutbox

    with Catalog.open(
        f"sqlite:///{tmp_path / 'c.db'}", store_url=str(tmp_path / "store"), lineage=NullLineage()
    ) as cat:
        with cat.session() as s:
            events = [stored_event(r.event) for r in s.scalars(select(LineageOutbox)).all()]
        return events, outbox_status(cat.engine)


def ident(e: dict[str, Any]) -> tuple[str, str, str]:
    return (e["run"]["runId"], e["eventType"], e["eventTime"])


def test_http_backend_down_then_up_across_a_restart(
    tmp_path: Path, proc_env: dict[str, str], ol_validator: OLValidator
) -> None:
    port = free_port()
    (tmp_path / "openlineage.yml").write_text(
        "transport:\n"
        "  type: http\n"
        f"  url: http://127.0.0.1:{port}\n"
        "  timeout: 1\n"
        "  retry: {total: 0, connect: 0, read: 0}\n"
    )
    # 1. the backend is down: the steps stay green, the events stay queued
    down = run_python(LOG_VERSIONS, "3", "down", env=proc_env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    events, status = outbox(tmp_path)
    assert len(events) == 6 and status["pending"] == 6 and status["delivered"] == 0

    receiver = Receiver(port).start()
    try:
        # 2. a new process flushes: every event arrives, once the backend is back
        flushed = run_python(FLUSH, env=proc_env, cwd=tmp_path)
        assert flushed.returncode == 0, flushed.stderr
        assert json.loads(flushed.stdout)["delivered"] == 6
        assert sorted(map(ident, receiver.events)) == sorted(map(ident, events))
        for e in receiver.events:
            ol_validator.validate(e)
        for run_id in {e["run"]["runId"] for e in receiver.events}:
            kinds = [e["eventType"] for e in receiver.events if e["run"]["runId"] == run_id]
            assert kinds == ["START", "COMPLETE"]

        # 3. with the backend up, a step's events go out right after its commit, no flush
        up = run_python(LOG_VERSIONS, "1", "up", env=proc_env, cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        run_id = up.stdout.split()[-1]
        assert [e["eventType"] for e in receiver.events if e["run"]["runId"] == run_id] == [
            "START",
            "COMPLETE",
        ]
    finally:
        receiver.stop()
    _, status = outbox(tmp_path)
    assert status == {**status, "pending": 0, "failed": 0, "delivered": 8}


def test_file_transport_configured_by_openlineage_yml(
    tmp_path: Path, proc_env: dict[str, str], ol_validator: OLValidator
) -> None:
    target = tmp_path / "ol" / "events.jsonl"
    target.parent.mkdir()
    (tmp_path / "openlineage.yml").write_text(
        f"transport:\n  type: file\n  log_file_path: {target}\n  append: true\n"
    )
    done = run_python(LOG_VERSIONS, "1", "filed", env=proc_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ref, run_id = done.stdout.split()
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(e["run"]["runId"], e["eventType"]) for e in written] == [
        (run_id, "START"),
        (run_id, "COMPLETE"),
    ]
    assert (
        written[1]["outputs"][0]["facets"]["symlinks"]["identifiers"][0]["name"]
        == ref.split("@")[0]
    )
    for e in written:
        ol_validator.validate(e)
    _, status = outbox(tmp_path)
    assert status["delivered"] == 2 and status["pending"] == 0
