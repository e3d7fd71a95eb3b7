"""The provider under real ``airflow dags test`` runs (Airflow 3.3, SQLite metadata DB)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from tests.airflow.conftest import AirflowEnv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("airflow")]

DAG = "headwater_reference_pipeline"
SMALL = {"n_users": 600, "seed": 3}
OUTPUTS = ["sms_spam_corpus", "users_raw", "spam_model", "users_despammed", "users_spam",
           "users_merged", "user_id_mapping", "users_clean", "users_rejected", "users_split"]


def counts(cat) -> dict[str, int]:
    return {d.name: d.versions for d in cat.datasets(namespace="reference")}


def test_provider_is_registered(airflow_env: AirflowEnv, hw_home: Path) -> None:
    out = airflow_env.run("providers", "list", hw_home=hw_home).stdout
    assert "headwater" in out


def test_reference_dag_end_to_end_reuse_and_partial_recompute(
        airflow_env: AirflowEnv, hw_home: Path, open_catalog) -> None:
    airflow_env.dags_test(DAG, hw_home=hw_home, conf=SMALL)
    cat = open_catalog()
    assert counts(cat) == dict.fromkeys(OUTPUTS, 1)
    split = cat.get("reference/users_split")
    lineage = cat.lineage(split, direction="up")
    assert {"reference/sms_spam_corpus@1", "reference/users_raw@1", "reference/spam_model@1",
            "reference/users_clean@1"} <= set(lineage.versions())
    run = cat.get_run(split.run_id)
    assert run.inputs == ("reference/users_clean@1",)
    assert run.engine["dag_id"] == DAG and run.engine["task_id"] == "split"
    assert run.engine["try_number"] == 1 and run.engine["map_index"] == -1
    assert run.engine["logical_date"]
    despam = cat.get_run(cat.get("reference/users_despammed").run_id)
    assert set(despam.inputs) == {"reference/users_raw@1", "reference/spam_model@1"}
    assert set(despam.outputs) == {"reference/users_despammed@1", "reference/users_spam@1"}
    model = cat.get("reference/spam_model")
    assert model.type == "model" and model.stats["f1"] > 0.9
    assert {"model.pkl", "model.json"} == set(model.files())
    assert split.type == "split" and set(split.stats["class_histograms"]) == {
        "train", "dev", "test"}

    # each reference step logged its reports with its output version
    def names(ref: str) -> set[str]:
        return {r.name for r in cat.reports(ref)}

    assert {"confusion_matrix_heldout", "f1"} <= names("reference/spam_model")
    assert {"spam_score", "samples"} <= names("reference/users_despammed")
    assert {"cluster_sizes", "merged_clusters"} <= names("reference/users_merged")
    assert "dead_letter_reasons" in names("reference/users_clean")
    assert {"class_balance_train", "class_balance_dev", "class_balance_test",
            "class_counts"} <= names("reference/users_split")

    # the same parameters again: every task reuses its outputs, nothing new is committed
    out = airflow_env.dags_test(DAG, hw_home=hw_home, conf=SMALL)
    assert counts(cat) == dict.fromkeys(OUTPUTS, 1)
    assert out.count("unchanged since run") == 7 and " committed " not in out
    reused = [r for r in cat.runs(limit=100) if r.reused_run_id]
    assert len(reused) == 7

    # one parameter changed: only de-spam and what follows it recompute
    airflow_env.dags_test(DAG, hw_home=hw_home, conf={**SMALL, "spam_threshold": 0.9})
    after = counts(cat)
    for unchanged in ("sms_spam_corpus", "users_raw", "spam_model"):
        assert after[unchanged] == 1, unchanged
    for changed in ("users_despammed", "users_spam", "users_merged", "users_clean",
                    "users_split"):
        assert after[changed] == 2, changed
    # people keep their user IDs across versions (the mapping is read as state)
    v1 = cat.get("reference/users_merged@1").to_arrow().to_pandas().set_index("record_id")
    v2 = cat.get("reference/users_merged@2").to_arrow().to_pandas().set_index("record_id")
    common = v1.index.intersection(v2.index)
    assert len(common) > 0
    assert (v1.loc[common, "user_id"] == v2.loc[common, "user_id"]).all()

    # the asset-scheduled report DAG was queued by the new clean version, with the version
    # in the asset event's extra
    queued = airflow_env.query("select target_dag_id from asset_dag_run_queue")
    assert ("headwater_class_balance_report",) in queued
    extras = [json.loads(e) for (e,) in airflow_env.query(
        "select e.extra from asset_event e join asset a on a.id = e.asset_id "
        "where a.uri = 'headwater://reference/users_clean'")]
    refs = {x["headwater"]["ref"] for x in extras}
    assert {"reference/users_clean@1", "reference/users_clean@2"} <= refs


def test_retry_after_writing_gives_exactly_one_version(
        airflow_env: AirflowEnv, hw_home: Path, open_catalog, tmp_path: Path) -> None:
    airflow_env.dags_test("hw_retry", hw_home=hw_home,
                          extra_env={"HW_TEST_MARKER": str(tmp_path / "marker")})
    cat = open_catalog()
    assert [v.number for v in cat.versions("test/flaky")] == [1]
    runs = sorted(cat.runs(job="hw_retry.flaky"), key=lambda r: r.engine["try_number"])
    assert [(r.state, r.engine["try_number"]) for r in runs] == [("FAILED", 1), ("COMPLETED", 2)]
    assert "failing after writing" in (runs[0].error or "")
    assert runs[0].outputs == () and runs[1].outputs == ("test/flaky@1",)
    assert runs[1].retry_of == runs[0].id and runs[0].retry_of is None  # try 2 names try 1


def test_generic_operator_decorator_and_templated_inputs(
        airflow_env: AirflowEnv, hw_home: Path, open_catalog) -> None:
    airflow_env.dags_test("hw_generic", hw_home=hw_home, conf={"n": 8, "alias": "latest"})
    cat = open_catalog()
    even = cat.get("test/even")
    assert even.row_count == 4 and even.metadata.get("key") == ["id"]
    assert cat.get_run(even.run_id).params == {"modulus": 2}
    cat.alias("test/numbers@1", "pinned")
    airflow_env.dags_test("hw_generic", hw_home=hw_home, conf={"n": 20, "alias": "pinned"})
    assert cat.get("test/numbers").number == 2  # n changed: a new version of numbers
    # but `even` read numbers@pinned (= @1) as templated, so it reused its earlier output
    assert cat.get("test/even").number == 1


def test_impact_of_a_mislabelled_corpus_and_rebuild(
        airflow_env: AirflowEnv, hw_home: Path, open_catalog, tmp_path: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from headwater.steps.spam_model import load_sms_spam

    airflow_env.dags_test(DAG, hw_home=hw_home, conf=SMALL)
    cat = open_catalog()
    report = cat.impact("reference/sms_spam_corpus@1")
    assert set(report.versions) == {f"reference/{n}" for n in OUTPUTS} - {
        "reference/sms_spam_corpus", "reference/users_raw"}
    assert {t.task_id for t in report.tasks} == {"train_spam_model", "despam", "id_merge",
                                                "clean", "split"}
    from headwater.rebuild import plan_rebuild

    # the rebuild plan names this DAG run (not a task-id pattern over every run)
    (entry,) = plan_rebuild(cat, "reference/sms_spam_corpus@1", require_replacement=False).entries
    assert entry.dag_id == DAG and entry.dag_run_id and entry.dag_run_id.startswith("manual__")
    assert set(entry.task_ids) == {t.task_id for t in report.tasks}
    assert entry.conf is not None and entry.conf["n_users"] == SMALL["n_users"]

    # the corpus is fixed (here: 20 labels flipped back) and the DAG rerun with it
    corpus = load_sms_spam()
    flip = pa.array([i < 20 for i in range(corpus.num_rows)])
    fixed = corpus.set_column(1, "label", pc.if_else(flip, pc.subtract(1, corpus["label"]),
                                                    corpus["label"]).cast(pa.int8()))
    pq.write_table(fixed, tmp_path / "corpus_fixed.parquet")
    out = airflow_env.dags_test(DAG, hw_home=hw_home, conf={
        **SMALL, "spam_corpus_path": str(tmp_path / "corpus_fixed.parquet")})
    after = counts(cat)
    assert after["users_raw"] == 1 and after["sms_spam_corpus"] == 2
    assert after["spam_model"] == 2
    assert "reused reference/users_raw@1" in out
    model = cat.get_run(cat.get("reference/spam_model@2").run_id)
    assert model.inputs == ("reference/sms_spam_corpus@2",)
