"""The reference pipeline's catalog state, built quickly with the core API and the steps.

Same datasets, jobs and edges as ``dags/reference_pipeline.py`` (spam corpus → spam model; raw
users → de-spam → ID merge → clean → split), with Airflow-like engine facts on each run, but
in a couple of seconds and without Airflow.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from headwater import Catalog
from headwater.steps import make_step
from headwater.steps.sample import SAMPLE_ROLES, generate_users
from headwater.steps.spam_model import SpamModel, load_sms_spam

NS = "reference"
DAG = "headwater_reference_pipeline"


def _engine(task: str) -> dict[str, Any]:
    return {"name": "airflow", "version": "3.3.2", "dag_id": DAG, "task_id": task}


def build_reference(cat: Catalog, *, n_users: int = 200, seed: int = 7) -> dict[str, str]:
    """Run the pipeline once; returns the exact refs of its outputs by short name."""
    refs: dict[str, str] = {}
    with cat.run("ingest_spam_corpus", namespace=NS, engine=_engine("ingest_spam_corpus")) as r:
        r.log_output(load_sms_spam(), name=f"{NS}/sms_spam_corpus", type="raw_data")
    refs["corpus"] = r.outputs[0].ref
    with cat.run("ingest_raw_users", namespace=NS, engine=_engine("ingest_raw_users"),
                 params={"n_users": n_users, "seed": seed}) as r:
        r.log_output(generate_users(n_records=n_users, seed=seed), name=f"{NS}/users_raw",
                     type="raw_data", key=["record_id"])
    refs["users_raw"] = r.outputs[0].ref
    with cat.run("train_spam_model", namespace=NS, inputs=[refs["corpus"]],
                 engine=_engine("train_spam_model")) as r:
        result = make_step("train_spam_model").run_table(r.inputs[0].to_arrow())
        with tempfile.TemporaryDirectory() as tmp:
            for name, blob in result.artifacts.items():
                (Path(tmp) / name).write_bytes(blob)
            r.log_output(tmp, name=f"{NS}/spam_model", type="model", stats=result.stats)
    refs["model"] = r.outputs[0].ref
    with cat.run("despam", namespace=NS, inputs=[refs["users_raw"], refs["model"]],
                 engine=_engine("despam"), params={"threshold": 0.5}) as r:
        with tempfile.TemporaryDirectory() as tmp:
            model = SpamModel.load(r.inputs[1].checkout(Path(tmp) / "model"))
        result = make_step("despam", {"threshold": 0.5}, model=model).run_table(
            r.inputs[0].to_arrow())
        r.log_output(result.output, name=f"{NS}/users_despammed", type="table",
                     stats=result.stats)
    refs["despammed"] = r.outputs[0].ref
    with cat.run("id_merge", namespace=NS, inputs=[refs["despammed"]],
                 engine=_engine("id_merge")) as r:
        result = make_step("id_merge", {"roles": SAMPLE_ROLES, "threshold": 12.0,
                                        "truth_column": "_true_person_id"}).run_table(
            r.inputs[0].to_arrow())
        r.log_output(result.output, name=f"{NS}/users_merged", type="table", stats=result.stats)
    refs["merged"] = r.outputs[0].ref
    with cat.run("clean", namespace=NS, inputs=[refs["merged"]], engine=_engine("clean")) as r:
        result = make_step("clean").run_table(r.inputs[0].to_arrow())
        r.log_output(result.output, name=f"{NS}/users_clean", type="table", stats=result.stats)
        r.log_output(result.dead_letter, name=f"{NS}/users_rejected", type="table")
    refs["clean"] = r.outputs[0].ref
    with cat.run("split", namespace=NS, inputs=[refs["clean"]], engine=_engine("split")) as r:
        result = make_step("split", {"label_column": "job_seeker", "key_column": "record_id"}
                           ).run_table(r.inputs[0].to_arrow())
        r.log_output(result.output, name=f"{NS}/users_split", type="split", stats=result.stats)
    refs["split"] = r.outputs[0].ref
    hist = result.stats.get("class_histograms") or {}
    for part, counts in hist.items():
        cat.report(refs["split"], f"class_balance_{part}", "histogram", counts=counts,
                   x_title="class", y_title="rows")
    return refs
