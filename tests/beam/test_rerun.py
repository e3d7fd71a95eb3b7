"""The Beam half of a rebuild: every Beam run records how to launch it again; ``rerun`` launches
it with inputs pinned (``--headwater_pins``) on the runner it used; exactly the Beam-derived
datasets get new versions whose upstream holds the corrected corpus; a second rerun makes none.
Tested on FnApiRunner and on the portable runner with a separate job service and worker pool."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from headwater_beam import HeadwaterOptions, rerun, settings_from_options
from headwater_beam.launch import launch_record
from headwater_beam.pipeline import run as run_reference
from headwater_beam.rerun import relaunch_command

from headwater import Catalog, Settings
from headwater.errors import InvalidArgument
from headwater.steps.spam_model import load_sms_spam
from tests.beam.conftest import FNAPI, settings_for

PREFIX = "users"
DERIVED = [f"default/{PREFIX}_spam_model", f"default/{PREFIX}_split", f"default/{PREFIX}_spam",
           f"default/{PREFIX}_id_mapping", f"default/{PREFIX}_dead_letter"]
SOURCES = ["default/raw_users", "spam/corpus"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the launch record -------------------------------------------------------------------------
def test_launch_record_drops_per_run_options_and_secrets_and_names_the_settings(
        tmp_path: Path) -> None:
    settings = Settings(catalog_url="postgresql://hw:s3cret@127.0.0.1/hw",
                        store_url=str(tmp_path / "store"), pins={"spam/corpus": "spam/corpus@1"})
    argv = ["--input-ref", "raw_users@latest", "--runner=FnApiRunner", "--api_token", "abc",
            "--headwater_pins={\"a/b\": \"a/b@1\"}", "--headwater_parent_run_id", "x",
            "--headwater_parent_job=dag.task", "--headwater_root_job", "dag",
            "--headwater_catalog_url=sqlite:///old.db"]
    rec = launch_record(PipelineOptions(argv), settings, entry_point="my.pipeline", argv=argv)
    assert rec["module"] == "my.pipeline" and rec["script"] is None
    assert rec["runner"] == "FnApiRunner" and rec["pins"] == {"spam/corpus": "spam/corpus@1"}
    assert rec["argv"][:3] == ["--input-ref", "raw_users@latest", "--runner=FnApiRunner"]
    joined = " ".join(rec["argv"])
    for gone in ("abc", "s3cret", "headwater_parent", "headwater_root", "a/b@1", "old.db"):
        assert gone not in joined
    assert f"--headwater_store_url={tmp_path / 'store'}" in rec["argv"]
    assert rec["redacted"] == ["--api_token", "--headwater_catalog_url"]

    # a relaunch fills a redacted Headwater option from the caller's settings; an unknown
    # secret stays a placeholder and the reason says so
    command, _, problems = relaunch_command({"launch": rec}, {"spam/corpus": "spam/corpus@2"},
                                            settings=settings)
    assert command[:3] == [rec["python"], "-m", "my.pipeline"]
    assert "--headwater_catalog_url=postgresql://hw:s3cret@127.0.0.1/hw" in command
    assert "--api_token=<REDACTED>" in command
    assert command[-1] == '--headwater_pins={"spam/corpus": "spam/corpus@2"}'
    assert problems == ["--api_token held a secret and was not recorded: fill it in"]


def test_rerun_launches_nothing_and_says_why_when_the_runner_or_entry_point_is_missing(
        tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    dead = _free_port()
    argv = ["--runner=PortableRunner", f"--job_endpoint=localhost:{dead}",
            "--environment_type=LOOPBACK"]
    rec = launch_record(PipelineOptions(argv), settings, entry_point="headwater_beam.pipeline",
                        argv=argv)
    out = rerun({"launch": rec}, {"spam/corpus": "spam/corpus@2"}, wait=True)
    assert not out.launched and out.returncode is None
    assert f"job service at localhost:{dead}" in (out.reason or "")
    assert out.shell.startswith("cd ") and "--headwater_pins=" in out.shell

    rec = launch_record(PipelineOptions(FNAPI), settings, entry_point="no_such_module.pipe",
                        argv=FNAPI)
    out = rerun({"launch": rec}, {}, wait=True)
    assert not out.launched and "no_such_module.pipe is not importable" in (out.reason or "")
    with pytest.raises(InvalidArgument, match="no launch record"):
        rerun({"name": "beam"}, {}, wait=True)


def test_headwater_pins_option_reaches_settings_and_overrides_the_environment(
        tmp_path: Path) -> None:
    opts = PipelineOptions([f"--headwater_catalog_url=sqlite:///{tmp_path}/c.db",
                            '--headwater_pins={"corpus": "corpus@2"}',
                            "--headwater_namespace=spam"])
    assert settings_from_options(opts).pins == {"spam/corpus": "spam/corpus@2"}
    opts.view_as(HeadwaterOptions).headwater_pins = '{"corpus": "other@2"}'
    with pytest.raises(InvalidArgument, match="--headwater_pins"):
        settings_from_options(opts)


# -- the rebuild story -------------------------------------------------------------------------
def _corpora(tmp_path: Path) -> tuple[Path, Path]:
    """A mislabelled corpus (a third of the labels flipped) and the corrected one."""
    good = load_sms_spam()
    labels = good["label"].to_pylist()
    flipped = [1 - x if i % 3 == 0 else x for i, x in enumerate(labels)]
    bad = good.set_column(good.schema.get_field_index("label"), "label",
                          pa.array(flipped, good.schema.field("label").type))
    import pyarrow.parquet as pq

    pq.write_table(bad, tmp_path / "bad.parquet")
    pq.write_table(good, tmp_path / "good.parquet")
    return tmp_path / "bad.parquet", tmp_path / "good.parquet"


def _latest(cat: Catalog) -> dict[str, int]:
    out = {}
    for name in [*SOURCES, *DERIVED]:
        try:
            out[name] = cat.versions(name)[-1].info().number
        except LookupError:
            out[name] = 0
    return out


def _rebuild_story(tmp_path: Path, users: pa.Table, runner_args: list[str], *,
                   second_rerun: bool = True) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    bad, good = _corpora(tmp_path)
    with Catalog.open(settings=settings) as cat:
        cat.log(users, name="raw_users")
        bad_v = cat.log(str(bad), name="spam/corpus").info()
    report, versions = run_reference([
        "--input-ref", "raw_users@latest", "--corpus-ref", "spam/corpus@latest",
        "--output-prefix", PREFIX, "--job_name", "users-beam", *runner_args,
        f"--headwater_catalog_url={settings.catalog_url}",
        f"--headwater_store_url={settings.store_url}"])
    with Catalog.open(settings=settings) as cat:
        good_v = cat.log(str(good), name="spam/corpus").info()
        before = _latest(cat)
        pipeline_run = cat.get_run(report.run_id)
        launch = pipeline_run.engine["launch"]
        # every write run records the same launch and names its pipeline run
        # and so does the model training the launcher ran: a rebuild from the corpus finds the
        # pipeline to rerun from any of them
        (train,) = cat.runs(job=f"{PREFIX}_spam_model.train")
        for run in [*(cat.get_run(v.run_id or "") for v in versions.values()), train]:
            assert run.engine["launch"] == launch
            assert run.engine["pipeline_run_id"] == report.run_id
    assert launch["module"] == "headwater_beam.pipeline"
    assert launch["runner"] == runner_args[0].split("=", 1)[1]
    assert "--corpus-ref" in launch["argv"] and launch["cwd"] == str(Path.cwd())

    pins = {"spam/corpus": good_v.ref}
    plan = rerun(pipeline_run.engine, pins, wait=False, dry_run=True)
    assert not plan.launched and plan.reason is None, plan.reason
    out = rerun(pipeline_run.engine, pins, wait=True, timeout=900)
    assert out.launched and out.returncode == 0, out.output
    assert json.loads(out.command[-1].split("=", 1)[1]) == pins

    with Catalog.open(settings=settings) as cat:
        after = _latest(cat)
        assert {n: after[n] for n in SOURCES} == {n: before[n] for n in SOURCES}
        for name in DERIVED:  # every Beam-derived dataset has a new version...
            assert after[name] == before[name] + 1, (name, before, after)
            up = cat.lineage(f"{name}@{after[name]}", direction="up").versions()
            # ...whose upstream holds the corrected corpus and not the bad one
            assert good_v.ref in up and bad_v.ref not in up, (name, up)
        relaunched = [r for r in cat.runs(job=f"{PREFIX}_reference_pipeline", limit=10)
                      if r.id != report.run_id]
        assert len(relaunched) == 1 and relaunched[0].state == "COMPLETED"
        assert relaunched[0].engine["launch"]["pins"] == pins
        assert good_v.ref in relaunched[0].inputs or any(
            good_v.ref in cat.get_run(cat.get(m).info().run_id or "").inputs
            for m in relaunched[0].inputs if "spam_model" in m)

    if not second_rerun:
        return
    again = rerun(pipeline_run.engine, pins, wait=True, timeout=900)
    assert again.returncode == 0, again.output
    with Catalog.open(settings=settings) as cat:
        assert _latest(cat) == after  # nothing changed: no new versions


@pytest.mark.slow
def test_rebuild_reruns_the_beam_pipeline_with_the_corrected_corpus_on_fnapi(
        tmp_path: Path, users: pa.Table) -> None:
    _rebuild_story(tmp_path, users, FNAPI)


@pytest.fixture(scope="module")
def portable_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """A Beam job service and a worker pool in their own processes (FACTS.md: the portable
    path across processes). The pool starts each worker as ``python`` from its PATH: put this
    environment's first, or the workers die on ``import apache_beam`` and the job hangs."""
    job_port, pool_port = _free_port(), _free_port()
    logs = tmp_path_factory.mktemp("beam-services")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    procs = [
        subprocess.Popen([sys.executable, "-m",
                          "apache_beam.runners.portability.local_job_service_main",
                          "--port", str(job_port)],
                         stdout=subprocess.DEVNULL, stderr=(logs / "job.log").open("wb")),
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                          "--service_port", str(pool_port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=(logs / "pool.log").open("wb")),
    ]
    try:
        deadline = time.monotonic() + 60
        for port in (job_port, pool_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        yield ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
               "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
@pytest.mark.xdist_group("beam_portable_services")
def test_rebuild_reruns_the_beam_pipeline_on_a_separate_job_service_and_worker_pool(
        tmp_path: Path, users: pa.Table, portable_services: list[str]) -> None:
    # the no-op second rerun is the FnApiRunner test's: each portable run costs ~1.5 min here
    _rebuild_story(tmp_path, users, portable_services, second_rerun=False)
