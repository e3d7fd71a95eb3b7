"""Scheduled on the clean users dataset's Asset: every new version gets a class-balance report.

The asset event's ``extra`` names the exact version that triggered the run; the report task reads
that version (not "latest"), so a late run still reports on what triggered it.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from airflow.sdk import DAG
from headwater_airflow.assets import dataset_asset
from headwater_airflow.operators.versioned import VersionedStepOperator

CLEAN = "reference/users_clean"
TRIGGER_REF = (
    "{{ (triggering_asset_events.values() | first | last).extra['headwater']['ref'] "
    "if triggering_asset_events else '" + CLEAN + "@latest' }}"
)


def class_balance(users: pa.Table, label_column: str) -> pa.Table:
    counts = users.group_by(label_column).aggregate([(label_column, "count")])
    total = max(users.num_rows, 1)
    labels = counts.column(label_column).to_pylist()
    n = counts.column(f"{label_column}_count").to_pylist()
    return pa.table({"label": [str(x) for x in labels], "rows": n,
                     "share": [round(c / total, 4) for c in n]}).sort_by("label")


with DAG("headwater_class_balance_report", start_date=datetime(2026, 1, 1),
         schedule=[dataset_asset(CLEAN)], catchup=False, tags=["headwater", "reference"]) as dag:
    VersionedStepOperator(
        task_id="class_balance", python_callable=class_balance, namespace="reference",
        inputs={"users": TRIGGER_REF}, step_params={"label_column": "job_seeker"},
        outputs=[{"name": "reference/users_clean_class_balance", "type": "table"}],
    )
