"""The Beam reference pipeline the way Flink, Spark and Dataflow run Python: a separate job
service, an external SDK worker pool, the catalog on PostgreSQL and the store on S3 (moto).

The launcher (this test process) only submits the job; the job service runs it and the SDK
workers — processes the worker pool starts — read and write the store and commit the versions.
The outputs hold the same rows as the steps run one after another on whole tables (the Airflow
DAG's path; tests/airflow/test_equivalence.py ties that path to the DAG itself).
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from headwater_beam.pipeline import run as run_reference

from headwater import Catalog, Settings
from headwater.steps.sample import generate_users
from headwater.steps.spam_model import SpamModel, load_sms_spam, train_spam_model
from headwater.tables import table_fingerprint
from headwater.tables.fingerprint import same_rows
from tests.beam.test_pipeline import _table_path
from tests.emulators import RemoteStore
from tests.table_rows import sorted_rows
from tests.topology.conftest import BeamServices, is_loopback, listening_addresses

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.emulator,
              pytest.mark.xdist_group("topology")]


@contextmanager
def _sampling(pids: list[int]) -> Iterator[set[str]]:
    """Collect, every 0.2 s while the block runs, what the processes listen on."""
    seen: set[str] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in pids:
                seen.update(listening_addresses(pid))
            stop.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        stop.set()
        t.join()


def test_reference_pipeline_through_job_service_and_worker_pool(
    beam_services: BeamServices, topology_pg_url: str, s3_store: RemoteStore
) -> None:
    settings = Settings(catalog_url=topology_pg_url, store_url=s3_store.url,
                        store_options=s3_store.storage_options, lineage="off")
    users = generate_users(n_records=800, seed=3)
    corpus = load_sms_spam()
    model = train_spam_model(corpus["text"].to_pylist(), corpus["label"].to_pylist())
    with tempfile.TemporaryDirectory() as tmp, Catalog.open(settings=settings) as cat:
        model.save(tmp)
        raw = cat.log(users, name="raw_users")
        model_v = cat.log(tmp, name="spam_model", type="model")
        model = SpamModel.load(Path(tmp))

    pids = [beam_services.job_service.proc.pid, beam_services.worker_pool.proc.pid]
    with _sampling(pids) as listening:
        report, versions = run_reference([
            "--input-ref", raw.ref, "--model-ref", model_v.ref, "--output-prefix", "users",
            "--job_name", "users-topology", *beam_services.pipeline_options,
            f"--headwater_catalog_url={settings.catalog_url}",
            f"--headwater_store_url={settings.store_url}",
            f"--headwater_store_options={json.dumps(dict(settings.store_options))}",
            "--headwater_lineage=off",
        ])
    assert report.state == "DONE", beam_services.tail()

    # the work ran in the SDK workers the pool started, not in this process
    assert "Starting worker with command" in beam_services.worker_pool.log.read_text(), (
        beam_services.tail())
    # every server of the topology listened on the loopback interface only
    assert listening and all(is_loopback(a) for a in listening), sorted(listening)

    expected = _table_path(users, model)
    with Catalog.open(settings=settings) as cat:
        for name in ("split", "spam", "id_mapping"):
            v = versions[name]
            assert v.store_url == s3_store.url, name
            assert v.row_count == expected[name].num_rows, name
            assert sorted_rows(cat.read_table(v)) == sorted_rows(expected[name]), name
            assert same_rows(v.table_fingerprint or "", table_fingerprint(expected[name])), name
        assert users.num_rows == (versions["split"].row_count + versions["spam"].row_count
                                  + versions["dead_letter"].row_count)
        pipeline_run = cat.get_run(report.run_id)
        assert pipeline_run.state == "COMPLETED"
        assert pipeline_run.engine["runner"] == "PortableRunner"
        assert set(pipeline_run.inputs) == {raw.ref, model_v.ref}
        for v in versions.values():
            assert cat.get_run(v.run_id or "").state == "COMPLETED"
