"""Test DAG: a Headwater Beam pipeline launched by a BashOperator through
``headwater_beam_pre_execute`` (the task becomes the Beam run's parent; the Beam subprocess gets
the task's Headwater settings and lineage transport). ``params.script`` is the pipeline script
(tests/beam/tiny_pipeline.py)."""

from __future__ import annotations

import sys
from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from headwater_airflow.beam import headwater_beam_pre_execute

with DAG("hw_beam_launch", start_date=datetime(2026, 1, 1), schedule=None, catchup=False,
         params={"script": "", "input_ref": "numbers@latest"}) as beam_launch:
    BashOperator(
        task_id="beam_bash",
        bash_command=(f"{sys.executable} {{{{ params.script }}}} "
                      "--input_ref {{ params.input_ref }} --output bash_out "
                      "--runner=FnApiRunner --job_name=tiny-bash $HEADWATER_BEAM_ARGS"),
        pre_execute=headwater_beam_pre_execute(),
    )
