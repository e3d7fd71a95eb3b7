"""The README's Airflow block is a DAG that runs as written under ``airflow dags test``."""

from __future__ import annotations

from pathlib import Path

from headwater import Catalog
from tests.readme_blocks import blocks
from tests.test_readme import run_python_api_block


def test_the_airflow_block_runs_under_airflow_dags_test(airflow_env, tmp_path: Path) -> None:
    home = run_python_api_block(tmp_path)  # raw/users@production, as the README made it
    (code,) = blocks("python")["Airflow"]
    dags = Path(airflow_env.env["AIRFLOW__CORE__DAGS_FOLDER"])
    (dags / "readme_users_clean.py").write_text(code)
    airflow_env.dags_test("users_clean", hw_home=home)
    cat = Catalog.open(f"sqlite:///{home / 'catalog.db'}", store_url=str(home / "store"))
    sample = cat.get("raw/users_sample@latest")
    assert sample.to_arrow().num_rows == 3
    # params.alias = production -> raw/users@1, not @latest (2)
    assert cat.get_run(sample.run_id or "").inputs == ("raw/users@1",)
    clean = cat.get_run(cat.get("clean/users@latest").run_id or "")
    assert clean.engine["name"] == "airflow" and clean.engine["task_id"] == "clean"
    assert clean.inputs == ("raw/users_sample@1",)
    assert cat.get("clean/users_rejected@latest").to_arrow().num_rows == 1
