"""Test DAGs for the provider's generic operator, decorator, retries and Asset scheduling."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from airflow.sdk import DAG
from headwater_airflow.assets import dataset_asset
from headwater_airflow.decorators.versioned import versioned_task
from headwater_airflow.operators.versioned import VersionedStepOperator


def make_numbers(n: int) -> pa.Table:
    return pa.table({"id": list(range(n)), "value": [i * i for i in range(n)]})


def keep_even(numbers: pa.Table, modulus: int = 2) -> pa.Table:
    return numbers.filter(pc.equal(pc.bit_wise_and(numbers["id"], modulus - 1), 0))


with DAG("hw_generic", start_date=datetime(2026, 1, 1), schedule=None, catchup=False,
         render_template_as_native_obj=True,
         params={"n": 10, "alias": "latest"}) as generic:
    produce = VersionedStepOperator(
        task_id="produce", python_callable=make_numbers, outputs=["test/numbers"],
        step_params={"n": "{{ params.n }}"},
    )

    @versioned_task(inputs={"numbers": "test/numbers@{{ params.alias }}"},
                    outputs=[{"name": "test/even", "type": "table", "key": ["id"]}],
                    step_params={"modulus": 2})
    def even(numbers: pa.Table, modulus: int, run) -> pa.Table:
        assert run.inputs[0].name == "test/numbers"
        return keep_even(numbers, modulus)

    produce >> even()


def flaky_write(run) -> None:
    """Writes its output, then fails on the first try: the retry must make exactly one version."""
    marker = os.environ["HW_TEST_MARKER"]
    run.log_output(pa.table({"x": [1, 2, 3]}), name="test/flaky")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("failing after writing, on purpose")


with DAG("hw_retry", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as retry:
    VersionedStepOperator(task_id="flaky", python_callable=flaky_write,
                          outputs=["test/flaky"], retries=1, retry_delay=timedelta(seconds=0))


def describe(even: pa.Table) -> pa.Table:
    return pa.table({"rows": [even.num_rows]})


with DAG("hw_on_even", start_date=datetime(2026, 1, 1), schedule=[dataset_asset("test/even")],
         catchup=False) as on_even:
    VersionedStepOperator(task_id="describe", python_callable=describe,
                          inputs={"even": "test/even@latest"}, outputs=["test/even_summary"])
