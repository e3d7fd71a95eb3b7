"""The reference DAG on a real CeleryExecutor deployment (issue 19).

Scheduler, dag-processor, api-server and one ``airflow celery worker --skip-serve-logs`` as
separate processes on 127.0.0.1 (tests/airflow/cluster.py); Redis as the broker (a database
number of its own), PostgreSQL as result backend, metadata DB and Headwater catalog; the store
on S3 (moto). Two DAG runs with different inputs run at the same time; in one of them the
``clean`` task's first try is killed in the middle of its commit (the failpoint
``commit.before_db_commit``: objects and manifest written, the catalog transaction not yet
committed; the process exits at once) and Airflow retries it. Then:

* every output has one version per distinct content, and each task of each DAG run produced
  exactly one version per output (the killed try none);
* no version is mixed between runs: every input a task's catalog run read was produced by a
  task of the same DAG run — but for id_merge's state input, the latest ID mapping, which
  crosses runs on purpose (people keep their IDs) and is recorded as a state input;
* every Airflow process listens on loopback only (sampled while the runs go on);
* the dead try is recorded: ABORTED, with the reason, and the retry names it as ``retry_of``.

The failpoint is armed from an Airflow cluster policy (``airflow_local_settings.task_policy``)
that gives the reference DAG's tasks one retry and, for the task named in the DAG run's conf
(``hw_kill_task``), sets ``HEADWATER_FAILPOINTS`` in that task's own process on its first try.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from headwater import Catalog, Settings
from headwater.catalog.models import RunInput
from tests.airflow.cluster import AirflowCluster, start_cluster
from tests.emulators import EmulatorServer, new_s3_bucket
from tests.topology.conftest import is_loopback, listening_addresses

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.emulator,
              pytest.mark.xdist_group("topology")]

DAG = "headwater_reference_pipeline"
#: Redis database of these tests (0 is the launcher's default; other suites use their own)
REDIS_URL = os.environ.get("HEADWATER_TEST_CELERY_REDIS_URL", "redis://127.0.0.1:6379/13")
KILLED_TASK = "clean"
FAILPOINT = "commit.before_db_commit"

POLICY = textwrap.dedent(f'''
    """Test-only cluster policy (tests/topology/test_celery.py)."""
    import os
    from datetime import timedelta

    def _arm_failpoint(context):
        ti, dag_run = context["ti"], context["dag_run"]
        if (dag_run.conf or {{}}).get("hw_kill_task") == ti.task_id and ti.try_number == 1:
            os.environ["HEADWATER_FAILPOINTS"] = "{FAILPOINT}"

    def task_policy(task):
        if task.dag_id == "{DAG}":
            task.retries = 1
            task.retry_delay = timedelta(seconds=1)
            task._pre_execute_hook = _arm_failpoint
''')


def _flush_redis_db(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {url} is not reachable ({exc}); `scripts/ensure-redis` starts a "
                    f"local one (make test runs it)")
    finally:
        client.close()


@pytest.fixture
def celery_cluster(tmp_path: Path, s3_server: EmulatorServer) -> Iterator[AirflowCluster]:
    store = new_s3_bucket(s3_server)
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    (policy_dir / "airflow_local_settings.py").write_text(POLICY)
    pythonpath = os.pathsep.join(p for p in (str(policy_dir), os.environ.get("PYTHONPATH"))
                                 if p)
    _flush_redis_db(REDIS_URL)
    try:
        with start_cluster(tmp_path, executor="CeleryExecutor", redis_url=REDIS_URL,
                           extra_env={"PYTHONPATH": pythonpath,
                                      "HEADWATER_STORE_URL": store.url,
                                      "HEADWATER_STORE_OPTIONS": json.dumps(
                                          store.storage_options)}) as cluster:
            cluster.wait_for_dag(DAG)
            yield cluster
    finally:
        _flush_redis_db(REDIS_URL)


def _runs_by_dag_run(cat: Catalog) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for run in cat.runs(limit=1000):
        if run.engine.get("name") == "airflow" and run.engine.get("dag_id") == DAG:
            out[str(run.engine["run_id"])].append(run)
    return out


def test_celery_two_concurrent_runs_and_a_task_killed_mid_commit(
    celery_cluster: AirflowCluster,
) -> None:
    cluster = celery_cluster
    killed = cluster.trigger(DAG, conf={"n_users": 300, "seed": 1,
                                        "hw_kill_task": KILLED_TASK})
    other = cluster.trigger(DAG, conf={"n_users": 300, "seed": 2})
    # every Airflow process (and the task processes under the Celery worker) listens on
    # loopback only, if at all: sampled while the runs go on
    listening: dict[str, set[str]] = defaultdict(set)
    for dag_run in (killed, other):
        deadline = time.monotonic() + 600
        while cluster.dag_run(DAG, dag_run)["state"] not in ("success", "failed"):
            for name, proc in cluster.procs.items():
                listening[name] |= listening_addresses(proc.pid)
            assert time.monotonic() < deadline, cluster.tail()
            cluster.check_alive()
            time.sleep(2)
    assert cluster.wait(DAG, killed, timeout=60) == "success", cluster.tail()
    assert cluster.wait(DAG, other, timeout=60) == "success", cluster.tail()
    assert listening["api-server"], "the api-server was never seen listening"
    for name, addresses in listening.items():
        assert all(is_loopback(a) for a in addresses), (name, sorted(addresses))
    tries = cluster.api("GET", f"/dags/{DAG}/dagRuns/{killed}/taskInstances/{KILLED_TASK}")
    assert tries["try_number"] == 2 and tries["state"] == "success"

    settings = Settings.resolve(catalog_url=cluster.catalog_url,
                                store_url=cluster.env["HEADWATER_STORE_URL"],
                                store_options=json.loads(cluster.env["HEADWATER_STORE_OPTIONS"]),
                                lineage="off")
    with Catalog.open(settings=settings) as cat:
        by_run = _runs_by_dag_run(cat)
        assert set(by_run) == {killed, other}

        # the dead try: ABORTED with the reason, no outputs; the retry names it
        clean_runs = sorted((r for r in by_run[killed] if r.engine["task_id"] == KILLED_TASK),
                            key=lambda r: r.engine["try_number"])
        assert [(r.engine["try_number"], r.state) for r in clean_runs] == [
            (1, "ABORTED"), (2, "COMPLETED")], [(r.engine, r.state) for r in clean_runs]
        dead, retry = clean_runs
        assert dead.outputs == () and dead.error
        assert retry.retry_of == dead.id

        produced: dict[str, set[str]] = {}  # DAG run -> every version its tasks committed
        versions_of: dict[str, set[str]] = defaultdict(set)  # dataset -> refs the runs made
        for dag_run, runs in by_run.items():
            done = [r for r in runs if r.state == "COMPLETED"]
            per_task: dict[str, list[Any]] = defaultdict(list)
            for r in done:
                per_task[r.engine["task_id"]].append(r)
            # each of the 7 tasks completed once, and every other run of the DAG run is a
            # dead try
            assert len(per_task) == 7 and all(len(v) == 1 for v in per_task.values()), (
                dag_run, {t: len(v) for t, v in per_task.items()})
            assert all(r.state == "ABORTED" for r in runs if r.state != "COMPLETED")
            produced[dag_run] = {ref for r in done for ref in r.outputs}
            for r in done:
                datasets = [ref.rsplit("@", 1)[0] for ref in r.outputs]
                assert len(datasets) == len(set(datasets)), r.outputs  # one version per output
                for ref in r.outputs:
                    versions_of[ref.rsplit("@", 1)[0]].add(ref)

        # no version mixed between runs: a task read only what its own DAG run produced —
        # except id_merge's state, the latest ID mapping (whichever run committed it), read on
        # purpose so people keep their user IDs (IdMergeOperator; recorded as a state input)
        with cat.session() as s:
            state_inputs = dict(s.execute(
                select(RunInput.run_id, func.count()).where(RunInput.is_state.is_(True))
                .group_by(RunInput.run_id)).all())
        for dag_run, runs in by_run.items():
            for r in runs:
                if r.state != "COMPLETED":
                    continue
                foreign = set(r.inputs) - produced[dag_run]
                if r.engine["task_id"] == "id_merge":
                    assert {ref.rsplit("@", 1)[0] for ref in foreign} <= {
                        "reference/user_id_mapping"}, foreign
                    assert len(foreign) <= state_inputs.get(r.id, 0)
                else:
                    assert not foreign, (dag_run, r.engine["task_id"], foreign)
        # the two inputs differ, so does everything downstream of them; the corpus and the
        # model are the same content: one version, reused by the second run
        assert produced[killed] != produced[other]
        for dataset, refs in versions_of.items():
            assert [v.ref for v in cat.versions(dataset)] == sorted(
                refs, key=lambda ref: int(ref.rsplit("@", 1)[1])), dataset
        assert len(versions_of["reference/users_clean"]) == 2
        assert len(versions_of["reference/spam_model"]) == 1
        # the version the retry committed is whole: its rows are readable from S3
        (clean_ref,) = [ref for ref in retry.outputs if "users_clean" in ref]
        assert cat.get(clean_ref).to_arrow().num_rows == cat.get(clean_ref).row_count
