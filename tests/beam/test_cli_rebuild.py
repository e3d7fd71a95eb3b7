"""``headwater rebuild`` on a Beam pipeline run: the plan makes the pipeline's runs (model
training, the pipeline run, its writes) one Beam entry and relaunches it through
``headwater_beam.rerun`` on the runner it used (FnApiRunner here); exactly the Beam-derived
datasets get new versions from the corrected corpus; a second rebuild is a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from headwater_beam.pipeline import run as run_reference

from headwater import Catalog
from headwater.cli import main
from headwater.steps.spam_model import load_sms_spam
from tests.beam.conftest import FNAPI, settings_for

pytestmark = [pytest.mark.slow]

DERIVED = ["default/users_spam_model", "default/users_split", "default/users_spam",
           "default/users_id_mapping", "default/users_dead_letter"]


def test_headwater_rebuild_relaunches_the_beam_pipeline(tmp_path: Path, users: pa.Table) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    good = load_sms_spam()
    labels = good["label"].to_pylist()
    bad = good.set_column(1, "label", pa.array([1 - x if i % 3 == 0 else x
                                                for i, x in enumerate(labels)], pa.int8()))
    pq.write_table(bad, tmp_path / "bad.parquet")
    pq.write_table(good, tmp_path / "good.parquet")
    with Catalog.open(settings=settings) as cat:
        cat.log(users, name="raw_users")
        cat.log(str(tmp_path / "bad.parquet"), name="spam/corpus")
    report, _ = run_reference([
        "--input-ref", "raw_users@latest", "--corpus-ref", "spam/corpus@latest",
        "--output-prefix", "users", "--job_name", "users-beam", *FNAPI,
        f"--headwater_catalog_url={settings.catalog_url}",
        f"--headwater_store_url={settings.store_url}"])
    with Catalog.open(settings=settings) as cat:
        cat.log(str(tmp_path / "good.parquet"), name="spam/corpus")
        before = {n: cat.get(n).number for n in DERIVED}

    runner = CliRunner()
    base = ["--catalog", settings.catalog_url, "--store", settings.store_url]

    def hw(*args: str) -> str:
        r = runner.invoke(main, [*base, *args])
        assert r.exit_code == 0, r.output
        return r.output

    plan = json.loads(hw("rebuild", "spam/corpus@1", "--with", "spam/corpus@2", "--dry-run",
                         "--json"))
    (entry,) = plan["entries"]
    assert (entry["engine"], entry["pipeline_run_id"]) == ("beam", report.run_id)
    assert sorted(r.rsplit("@", 1)[0] for r in entry["rebuilds"]) == sorted(DERIVED)
    (cmd,) = entry["commands"]
    assert "-m headwater_beam.pipeline" in cmd and '"spam/corpus": "spam/corpus@2"' in cmd

    out = json.loads(hw("rebuild", "spam/corpus@1", "--with", "spam/corpus@2", "--wait",
                        "--json"))
    (launched,) = out["launched"]
    assert launched["engine"] == "beam" and launched["state"] == "DONE", launched
    with Catalog.open(settings=settings) as cat:
        after = {n: cat.get(n).number for n in DERIVED}
        assert after == {n: before[n] + 1 for n in DERIVED}
        assert sorted(out["new_versions"]) == sorted(f"{n}@{after[n]}" for n in DERIVED)
        up = cat.lineage("users_split@latest", direction="up").versions()
        assert "spam/corpus@2" in up and "spam/corpus@1" not in up
    assert "nothing to rebuild" in hw("rebuild", "spam/corpus@1", "--with", "spam/corpus@2")
