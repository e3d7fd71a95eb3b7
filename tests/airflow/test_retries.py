"""An Airflow retry aborts and links the try it replaces (issue 14, section 4).

Unit level, through the provider's own code path (``VersionedStepOperator.execute`` with a task
context): try 1 runs in a real process that is still alive but that Airflow has given up on (a
lost heartbeat, a partitioned worker), try 2 starts here. Try 1's run must be ABORTED at once
with the reason, try 2 must name it as ``retry_of``, and try 1 must not be able to commit later.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from headwater import Catalog
from headwater.catalog.models import LineageOutbox

TRY = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from types import SimpleNamespace
    from headwater_airflow.operators.versioned import VersionedStepOperator

    go = Path(sys.argv[2])

    def step():
        print("started", flush=True)
        while not go.exists():
            time.sleep(0.05)
        out = go.with_name("try1.txt")
        out.write_text("try 1\\n")
        return str(out)

    op = VersionedStepOperator(task_id="step", python_callable=step, outputs=["test/retried"])
    ti = SimpleNamespace(dag_id="hw_kill", task_id="step", run_id="manual__1",
                         try_number=int(sys.argv[1]), map_index=-1)
    op.execute({"ti": ti, "dag_run": None, "logical_date": None})
""")


def _context(try_number: int) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="hw_kill", task_id="step", run_id="manual__1",
                         try_number=try_number, map_index=-1)
    return {"ti": ti, "dag_run": None, "logical_date": None}


@pytest.fixture
def airflow_conn(catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> dict[str, str]:
    conn = json.dumps({"conn_type": "headwater", "extra": {
        "catalog_url": catalog_url, "store_url": str(tmp_path / "store")}})
    env = {"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW_CONN_HEADWATER_DEFAULT": conn, "OPENLINEAGE_DISABLED": "true",
           "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_a_new_try_aborts_and_links_the_try_still_running(
        airflow_conn: dict[str, str], catalog_url: str, tmp_path: Path) -> None:
    from headwater_airflow.operators.versioned import VersionedStepOperator

    go, log = tmp_path / "go", tmp_path / "try1.log"
    with log.open("w") as sink:
        try1 = subprocess.Popen([sys.executable, "-c", TRY, "1", str(go)],
                                env={**os.environ, **airflow_conn}, stdout=subprocess.PIPE,
                                stderr=sink, text=True)
    try:
        assert try1.stdout is not None
        for line in try1.stdout:  # Airflow's log lines come first
            if line.strip() == "started":
                break
        else:
            pytest.fail(f"try 1 never started its step:\n{log.read_text()[-3000:]}")

        out = tmp_path / "try2.txt"
        out.write_text("try 2\n")
        op = VersionedStepOperator(task_id="step", python_callable=lambda: str(out),
                                   outputs=["test/retried"])
        [published] = op.execute(_context(2))
    finally:
        go.touch()
        try1.communicate(timeout=120)
    err = log.read_text()

    cat = Catalog.open(catalog_url, store_url=str(tmp_path / "store"))
    try:
        runs = {r.engine["try_number"]: r for r in cat.runs(job="hw_kill.step")}
        assert runs[1].state == "ABORTED"
        assert f"superseded by run {runs[2].id}" in (runs[1].error or "")
        assert "try 2" in (runs[1].error or "")
        assert runs[2].state == "COMPLETED" and runs[2].retry_of == runs[1].id
        assert runs[2].to_dict()["retry_of"] == runs[1].id  # what `headwater runs --json` shows
        # try 1 woke up and tried to commit: refused, nothing of it is visible
        assert try1.returncode != 0 and "ABORTED" in err, err[-2000:]
        assert [v.number for v in cat.versions("test/retried")] == [1]
        assert published["ref"] == "test/retried@1"
        with cat.session() as s:
            types = [t for (t,) in s.execute(
                LineageOutbox.__table__.select().with_only_columns(LineageOutbox.event_type)
                .where(LineageOutbox.run_id == runs[1].id).order_by(LineageOutbox.id))]
        # Airflow's openlineage provider, when active, emits the task events instead of us
        assert types in (["START", "ABORT"], [])
    finally:
        cat.close()


def test_a_first_try_links_nothing(airflow_conn: dict[str, str], catalog_url: str,
                                   tmp_path: Path) -> None:
    from headwater_airflow.operators.versioned import VersionedStepOperator

    out = tmp_path / "once.txt"
    out.write_text("once\n")
    started = time.monotonic()
    VersionedStepOperator(task_id="step", python_callable=lambda: str(out),
                          outputs=["test/retried"]).execute(_context(1))
    assert time.monotonic() - started < 60
    with Catalog.open(catalog_url, store_url=str(tmp_path / "store")) as cat:
        [run] = cat.runs(job="hw_kill.step")
        assert run.state == "COMPLETED" and run.retry_of is None
