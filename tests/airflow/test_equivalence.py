"""Airflow and Beam commit the same data: the reference DAG (real ``airflow dags test``) and the
Beam reference pipeline (FnApiRunner), given the same input version and parameters, produce
outputs with the same rows: compared sorted, and by the layout-independent table fingerprint
(which must agree with the rows: issue 14 found an algorithm that did not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow.conftest import AirflowEnv
from tests.table_rows import sorted_rows

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("airflow")]


def test_airflow_dag_and_beam_pipeline_commit_identical_tables(
        airflow_env: AirflowEnv, hw_home: Path, open_catalog) -> None:
    from headwater_beam.pipeline import ReferenceParams, run

    from headwater import Settings
    from headwater.steps.clean import CleanParams
    from headwater.steps.despam import DespamParams
    from headwater.steps.id_merge import IdMergeParams
    from headwater.steps.sample import SAMPLE_ROLES
    from headwater.steps.split import SplitParams

    airflow_env.dags_test("headwater_reference_pipeline", hw_home=hw_home,
                          conf={"n_users": 500, "seed": 11})
    cat = open_catalog()
    raw, model = cat.get("reference/users_raw@1"), cat.get("reference/spam_model@1")
    # the DAG's parameters, as dags/reference_pipeline.py passes them to the steps
    params = ReferenceParams(
        despam=DespamParams(threshold=0.5),
        # (the DAG also names a truth column: it adds quality stats, not output rows)
        id_merge=IdMergeParams(roles=SAMPLE_ROLES, threshold=12.0),
        clean=CleanParams(),
        split=SplitParams(ratios=(0.6, 0.2, 0.2), label_column="job_seeker",
                          key_column="record_id"),
    )
    settings = Settings.resolve(catalog_url=f"sqlite:///{hw_home / 'catalog.db'}",
                                store_url=str(hw_home / "store"), lineage="off")
    _, beam = run([
        "--input-ref", raw.ref, "--model-ref", model.ref, "--output-prefix", "beam/users",
        "--runner=FnApiRunner", f"--headwater_catalog_url={settings.catalog_url}",
        f"--headwater_store_url={settings.store_url}", "--headwater_lineage=off",
    ], params=params)
    pairs = {"split": "reference/users_split@1", "spam": "reference/users_spam@1",
             "id_mapping": "reference/user_id_mapping@1"}
    for beam_name, airflow_ref in pairs.items():
        a = cat.get(airflow_ref)
        b = beam[beam_name]
        assert b.row_count == a.row_count, f"{beam_name}: Beam {b.ref} vs Airflow {a.ref}"
        assert sorted_rows(cat.read_table(b)) == sorted_rows(cat.read_table(a)), (
            f"{beam_name}: Beam {b.ref} holds other rows than Airflow {a.ref}")
        assert cat.same_table(a, b), f"{beam_name}: same rows, yet the fingerprints differ"
    # the Beam write runs read exactly the versions the Airflow DAG made
    assert raw.ref in cat.get_run(beam["split"].run_id or "").inputs
