"""The rebuild story on a real Airflow deployment (tests/airflow/cluster.py: scheduler,
dag-processor and api-server on 127.0.0.1, LocalExecutor, metadata DB on PostgreSQL).

Run the reference DAG; the spam corpus turns out mislabelled: log a corrected corpus, retract
the bad one, review ``headwater rebuild --dry-run --json``, then ``headwater rebuild BAD --with
GOOD --wait`` through the api-server. Exactly the datasets derived from the corpus get new
versions, whose upstream holds the corrected corpus and not the bad one; ``status`` is fresh
everywhere; a second rebuild is a no-op. The ``headwater`` CLI runs as a user would run it: the
installed console script in a subprocess, configured by ``HEADWATER_*`` variables only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from headwater import Catalog
from headwater.lineage import NullLineage
from tests.airflow.cluster import AirflowCluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("airflow-cluster")]

DAG = "headwater_reference_pipeline"
CONF = {"n_users": 300, "seed": 5}
NS = "reference"
BAD, GOOD = f"{NS}/sms_spam_corpus@1", f"{NS}/sms_spam_corpus@2"
REPORT_DAG = "headwater_class_balance_report"  # dags/split_report.py, on users_clean's Asset
DERIVED = {"spam_model", "users_despammed", "users_spam", "users_merged", "user_id_mapping",
           "users_clean", "users_rejected", "users_split", "users_clean_class_balance"}
HEADWATER = str(Path(sys.executable).with_name("headwater"))


def hw(cluster: AirflowCluster, *args: str, code: int = 0) -> str:
    env = {k: v for k, v in cluster.env.items() if not k.startswith("AIRFLOW")}
    env.update({"HEADWATER_AIRFLOW_URL": cluster.api_url,
                "HEADWATER_AIRFLOW_USER": cluster.username,
                "HEADWATER_AIRFLOW_PASSWORD": cluster.password})
    proc = subprocess.run([HEADWATER, *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == code, f"headwater {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def versions(cat: Catalog) -> dict[str, int]:
    return {f"{NS}/{d.name}": d.versions for d in cat.datasets(namespace=NS)}


def data_upstream(cat: Catalog, ref: str) -> set[str]:
    """The versions upstream of ``ref`` through data inputs: not through id_merge's read of its
    own previous mapping (a state input: it keeps IDs stable, and neither status nor rebuild
    propagates through it, docs/rebuild.md)."""
    graph = cat.lineage(ref, direction="up")
    into: dict[str, list[str]] = {}
    for src, dst, _kind in graph.edges:
        if not (src.startswith(f"version:{NS}/user_id_mapping@") and dst.startswith("run:")):
            into.setdefault(dst, []).append(src)
    seen, todo = {graph.root}, [graph.root]
    while todo:
        for src in into.get(todo.pop(), ()):
            if src not in seen:
                seen.add(src)
                todo.append(src)
    return {n.removeprefix("version:") for n in seen if n.startswith("version:")}


def wait_for_report(cluster: AirflowCluster, n: int) -> None:
    """Until ``n`` runs of the Asset-triggered report DAG exist and have ended."""
    deadline = time.monotonic() + 180
    while True:
        runs = cluster.api("GET", f"/dags/{REPORT_DAG}/dagRuns")["dag_runs"]
        if len(runs) >= n and all(r["state"] in ("success", "failed") for r in runs):
            assert {r["state"] for r in runs} == {"success"}, runs
            return
        assert time.monotonic() < deadline, runs
        time.sleep(1)


def test_rebuild_through_the_api_server(airflow_cluster: AirflowCluster) -> None:
    from headwater.steps.spam_model import load_sms_spam

    cluster = airflow_cluster
    first = cluster.trigger(DAG, conf=CONF)
    assert cluster.wait(DAG, first) == "success", cluster.task_states(DAG, first)
    wait_for_report(cluster, 1)
    # inside Airflow, the provider's hook gives the same client from an Airflow connection
    conn = json.dumps({"conn_type": "http", "host": "127.0.0.1",
                       "port": int(cluster.api_url.rsplit(":", 1)[1]),
                       "login": cluster.username, "password": cluster.password})
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from headwater_airflow.hooks.headwater import "
         "HeadwaterHook; print(HeadwaterHook().airflow_api().dag_run(*sys.argv[1:])['state'])",
         DAG, first], env={**cluster.env, "AIRFLOW_CONN_HEADWATER_AIRFLOW_API": conn},
        capture_output=True, text=True, timeout=300)
    assert probe.stdout.strip() == "success", probe.stderr[-3000:]
    cat = Catalog.open(cluster.catalog_url, store_url=cluster.store_url, lineage=NullLineage())
    before = versions(cat)
    assert before == {f"{NS}/{n}": 1 for n in [*DERIVED, "sms_spam_corpus", "users_raw"]}

    # the corpus is found mislabelled: a corrected copy is logged, the bad one retracted
    corpus = load_sms_spam()
    flip = pa.array([i % 7 == 0 for i in range(corpus.num_rows)])
    fixed = corpus.set_column(1, "label", pc.if_else(flip, pc.subtract(1, corpus["label"]),
                                                    corpus["label"]).cast(pa.int8()))
    assert cat.log(fixed, name=f"{NS}/sms_spam_corpus", type="raw_data").ref == GOOD
    hw(cluster, "retract", BAD, "--reason", "labels flipped", "--actor", "test")
    stale = json.loads(hw(cluster, "status", NS, "--json"))
    assert {s["ref"].split("@")[0].split("/")[1] for s in stale if s["status"] == "stale"} \
        == DERIVED

    # review the plan: this DAG run, these tasks, the corpus pinned to the corrected version
    plan = json.loads(hw(cluster, "rebuild", BAD, "--with", GOOD, "--dry-run", "--json"))
    entry, report = plan["entries"]  # the DAG run, then the report DAG run that read its output
    assert (report["dag_id"], report["task_ids"]) == (REPORT_DAG, ["class_balance"])
    assert report["conf"] == {"headwater_pins": {f"{NS}/sms_spam_corpus": GOOD}}
    assert (entry["engine"], entry["dag_id"], entry["dag_run_id"]) == ("airflow", DAG, first)
    assert set(entry["task_ids"]) == {"train_spam_model", "despam", "id_merge", "clean",
                                      "split"}
    assert entry["task_ids"][0] == "train_spam_model"
    assert entry["pins"] == plan["pins"] == {f"{NS}/sms_spam_corpus": GOOD}
    assert entry["conf"] == {**CONF, "headwater_pins": {f"{NS}/sms_spam_corpus": GOOD}}
    assert plan["dry_run"] is True and versions(cat) == {**before, f"{NS}/sms_spam_corpus": 2}

    out = json.loads(hw(cluster, "rebuild", BAD, "--with", GOOD, "--wait", "--json"))
    launched, report_run = out["launched"]
    assert launched["state"] == "success" and launched["dag_id"] == DAG
    assert report_run["state"] == "success" and report_run["dag_id"] == REPORT_DAG
    wait_for_report(cluster, 3)  # ours, and the one the new users_clean's Asset event started
    rebuild_run = launched["dag_run_id"]
    assert set(cluster.task_states(DAG, rebuild_run).values()) == {"success"}
    after = versions(cat)
    changed = {name.split("/")[1] for name, n in after.items() if n != before[name]}
    # exactly what the corpus fed gets new versions (the corpus itself: the one logged here)
    assert changed - {"sms_spam_corpus"} <= DERIVED
    assert {"spam_model", "users_despammed", "users_split"} <= changed
    assert after[f"{NS}/users_raw"] == 1 and after[f"{NS}/sms_spam_corpus"] == 2
    assert sorted(out["new_versions"]) == sorted(
        f"{name}@{n}" for name, n in after.items() if name.split("/")[1] in changed - {
            "sms_spam_corpus"})
    for name in changed - {"sms_spam_corpus"}:
        up = data_upstream(cat, f"{NS}/{name}@latest")
        assert GOOD in up and BAD not in up, (name, up)
    # the unaffected ingest tasks ran in the new DAG run and reused their outputs
    raw_runs = [r for r in cat.runs(job=f"{DAG}.ingest_raw_users")
                if r.engine.get("run_id") == rebuild_run]
    assert len(raw_runs) == 1 and raw_runs[0].reused_run_id
    model = cat.get_run(cat.get(f"{NS}/spam_model@latest").run_id)
    assert model.inputs == (GOOD,) and model.engine["run_id"] == rebuild_run

    # every latest version is fresh; impact of the bad corpus is superseded; rebuild is a no-op
    statuses = json.loads(hw(cluster, "status", NS, "--json"))
    assert {s["ref"]: s["status"] for s in statuses} == {
        f"{name}@{n}": "fresh" for name, n in after.items()}
    impact = json.loads(hw(cluster, "impact", BAD, "--json"))
    assert impact["rebuild"]["entries"] == []
    assert not any(d["rebuild"] for d in impact["rebuild"]["datasets"].values())
    runs_before = _dag_runs(cluster)
    again = hw(cluster, "rebuild", BAD, "--with", GOOD, "--wait")
    assert "nothing to rebuild" in again
    assert _dag_runs(cluster) == runs_before and versions(cat) == after


def _dag_runs(cluster: AirflowCluster) -> list[str]:
    got: dict[str, Any] = cluster.api("GET", f"/dags/{DAG}/dagRuns")
    return sorted(r["dag_run_id"] for r in got["dag_runs"])
