"""The reference pipeline: spam corpus → spam model; raw users → de-spam → ID merge → clean →
balanced train/dev/test split. Every task is a versioned Headwater step.

Each task reads exactly the versions its upstream task produced in this DAG run (pinned through
XCom, never "whatever is latest now"), so concurrent runs cannot mix inputs. Run it twice with the
same parameters and every task reuses its earlier outputs; change one parameter and only the
tasks downstream of it recompute.

Parameters: ``n_users`` and ``seed`` of the generated raw records, ``spam_threshold`` for
de-spam, ``match_threshold`` for ID merge, ``split_ratios`` for the split, ``spam_corpus_path``
for a corrected spam corpus (the impact story: ``headwater impact`` on the bad corpus version
lists what to rebuild; rerunning with the corrected corpus recomputes exactly those tasks).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from airflow.sdk import DAG, Param
from headwater_airflow.operators.steps import (
    CleanOperator,
    DespamOperator,
    IdMergeOperator,
    SplitOperator,
    TrainSpamModelOperator,
)
from headwater_airflow.operators.versioned import VersionedStepOperator

from headwater.steps.sample import SAMPLE_ROLES, generate_users
from headwater.steps.spam_model import load_sms_spam

NS = "reference"


def produced(task_id: str, index: int = 0) -> str:
    """The exact version an upstream task of this DAG run produced (its XCom)."""
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}')[{index}]['ref'] }}}}"


def spam_corpus(corpus_path: str = "") -> pa.Table:
    """The labelled spam corpus: the SMS Spam Collection shipped with Headwater (see
    docs/steps.md), or a corrected copy (``text``, ``label`` columns, Parquet or CSV) — what a
    team logs after finding the original mislabelled."""
    if not corpus_path:
        return load_sms_spam()
    if corpus_path.endswith(".csv"):
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(corpus_path)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(corpus_path)
    missing = {"text", "label"} - set(table.column_names)
    if missing:
        raise ValueError(f"spam corpus {corpus_path} lacks column(s) {sorted(missing)}")
    return table.select(["text", "label"]).cast(pa.schema([("text", pa.string()),
                                                            ("label", pa.int8())]))


def raw_users(n_users: int, seed: int) -> pa.Table:
    """Stand-in for the raw user export: realistic records with spam, repeats, invalid rows."""
    return generate_users(n_records=int(n_users), seed=int(seed))


with DAG(
    "headwater_reference_pipeline",
    description="de-spam → ID merge → clean → split, every output a versioned dataset",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "n_users": Param(5000, type="integer", minimum=1),
        "seed": Param(7, type="integer"),
        "spam_threshold": Param(0.5, type="number", exclusiveMinimum=0, maximum=1),
        "match_threshold": Param(12.0, type="number"),
        "split_ratios": Param([0.6, 0.2, 0.2], type="array"),
        "spam_corpus_path": Param("", type="string",
                                  description="corrected corpus (Parquet/CSV); empty: shipped"),
    },
    tags=["headwater", "reference"],
) as dag:
    corpus = VersionedStepOperator(
        task_id="ingest_spam_corpus", python_callable=spam_corpus, namespace=NS,
        outputs=[{"name": f"{NS}/sms_spam_corpus", "type": "raw_data"}],
        step_params={"corpus_path": "{{ params.spam_corpus_path }}"},
    )
    users = VersionedStepOperator(
        task_id="ingest_raw_users", python_callable=raw_users, namespace=NS,
        outputs=[{"name": f"{NS}/users_raw", "type": "raw_data", "key": ["record_id"]}],
        step_params={"n_users": "{{ params.n_users }}", "seed": "{{ params.seed }}"},
    )
    model = TrainSpamModelOperator(
        task_id="train_spam_model", namespace=NS, input=produced("ingest_spam_corpus"),
        output=f"{NS}/spam_model",
    )
    despam = DespamOperator(
        task_id="despam", namespace=NS, input=produced("ingest_raw_users"),
        model=produced("train_spam_model"), output=f"{NS}/users_despammed",
        spam_output=f"{NS}/users_spam", step_params={"threshold": "{{ params.spam_threshold }}"},
    )
    merge = IdMergeOperator(
        task_id="id_merge", namespace=NS, input=produced("despam"),
        output=f"{NS}/users_merged", mapping_output=f"{NS}/user_id_mapping",
        step_params={"roles": SAMPLE_ROLES, "threshold": "{{ params.match_threshold }}",
                     "truth_column": "_true_person_id"},
    )
    clean = CleanOperator(
        task_id="clean", namespace=NS, input=produced("id_merge"),
        output=f"{NS}/users_clean", dead_letter=f"{NS}/users_rejected",
    )
    split = SplitOperator(
        task_id="split", namespace=NS, input=produced("clean"), output=f"{NS}/users_split",
        step_params={"ratios": "{{ params.split_ratios }}", "label_column": "job_seeker",
                     "key_column": "record_id"},
    )

    corpus >> model
    [users, model] >> despam >> merge >> clean >> split
