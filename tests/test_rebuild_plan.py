"""The rebuild plan (headwater/rebuild/plan.py) on a catalog written the way the Airflow and Beam
adapters write it (runs with their ``engine`` records), and ``headwater rebuild --dry-run`` /
``headwater impact`` through the real CLI. The end-to-end run on a real scheduler is
tests/airflow/test_scheduler_rebuild.py."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from headwater import Catalog
from headwater.cli import main
from headwater.errors import InvalidArgument
from headwater.rebuild import plan_rebuild

DAG = "spam_dag"


def airflow_engine(task: str, run_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "airflow", "dag_id": DAG, "task_id": task, "run_id": run_id,
            "try_number": 1, "conf": conf or {"n_users": 50}}


def step(cat: Catalog, task: str, inputs: list[str], output: str, value: int, *,
         run_id: str = "manual__1", pins: dict[str, str] | None = None,
         engine: dict[str, Any] | None = None) -> str:
    with cat.run(f"{DAG}.{task}", inputs=inputs, pins=pins,
                 engine=engine or airflow_engine(task, run_id)) as run:
        run.log_output(pa.table({"x": [value]}), name=output)
    return run.outputs[0].ref


@pytest.fixture
def story(tmp_path: Path) -> Catalog:
    """corpus@1 (bad) -> train -> model@1 -> despam (+ users@1) -> clean@1; users@1 -> count ->
    counts@1 (not derived from the corpus); corpus@2 is the corrected corpus."""
    cat = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}", store_url=str(tmp_path / "store"))
    cat.log(pa.table({"text": ["a"], "label": [1]}), name="t/corpus")
    cat.log(pa.table({"id": [1, 2]}), name="t/users")
    step(cat, "train", ["t/corpus@1"], "t/model", 1)
    step(cat, "despam", ["t/users@1", "t/model@1"], "t/clean", 1)
    step(cat, "count", ["t/users@1"], "t/counts", 1)
    cat.log(pa.table({"text": ["a"], "label": [0]}), name="t/corpus")
    return cat


def test_plan_groups_the_dag_run_and_pins_the_corrected_version(story: Catalog) -> None:
    plan = plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@2")
    assert plan.pins == {"t/corpus": "t/corpus@2"}
    (entry,) = plan.entries
    assert (entry.engine, entry.dag_id, entry.dag_run_id) == ("airflow", DAG, "manual__1")
    assert entry.task_ids == ["train", "despam"]  # upstream first; `count` is not affected
    assert sorted(entry.rebuilds) == ["t/clean@1", "t/model@1"]
    assert entry.trigger_conf() == {"n_users": 50, "headwater_pins": {"t/corpus": "t/corpus@2"}}
    assert {d: i["rebuild"] for d, i in plan.datasets.items()} == {"t/clean": True,
                                                                   "t/model": True}


def test_the_printed_commands_are_scoped_to_the_dag_run_not_a_task_pattern(
        story: Catalog) -> None:
    """The old impact output, ``airflow tasks clear DAG -t '^(a|b)$'``, clears nothing on
    Airflow 3.3 (``-t`` is a substring) and has no DAG-run scope; the plan triggers a new DAG
    run whose conf carries the original conf and the pins."""
    plan = plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@2")
    cmds = plan.commands()
    assert cmds[0] == "headwater rebuild t/corpus@1 --with t/corpus@2"
    argv = shlex.split(cmds[1])
    assert argv[:4] == ["airflow", "dags", "trigger", DAG] and argv[4] == "--conf"
    assert json.loads(argv[5]) == {"n_users": 50, "headwater_pins": {"t/corpus": "t/corpus@2"}}
    assert not any("tasks clear" in c for c in cmds)


def test_after_the_rebuild_runs_a_second_plan_is_empty(story: Catalog) -> None:
    pins = {"t/corpus": "t/corpus@2"}
    step(story, "train", ["t/corpus@1"], "t/model", 2, run_id="rebuild__1", pins=pins)
    half = plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@2")
    assert [d for d, i in half.datasets.items() if i["rebuild"]] == ["t/clean"]
    step(story, "despam", ["t/users@1", "t/model@2"], "t/clean", 2, run_id="rebuild__1")
    again = plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@2")
    assert again.empty and again.commands() == []
    assert {d: i["latest"] for d, i in again.datasets.items()} == {"t/clean": "t/clean@2",
                                                                  "t/model": "t/model@2"}


def test_a_rebuilt_output_identical_to_the_old_one_counts_as_rebuilt(story: Catalog) -> None:
    """Deduplication: the rebuild of ``despam`` writes the same content as before, so no new
    version; a completed run that did not read the bad corpus produced it, so it is done."""
    pins = {"t/corpus": "t/corpus@2"}
    step(story, "train", ["t/corpus@1"], "t/model", 2, run_id="rebuild__1", pins=pins)
    step(story, "despam", ["t/users@1", "t/model@2"], "t/clean", 1, run_id="rebuild__1")
    assert story.get("t/clean").number == 1
    assert plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@2").empty
    # and status agrees: the version's derivation is the latest completed run that output it
    story.retract("t/corpus@1", reason="mislabelled")
    assert [s.status for s in story.status("t/clean@1")] == ["fresh"]
    assert [s.status for s in story.status("t/model@1")] == ["stale"]


def test_a_state_read_does_not_carry_the_bad_lineage(story: Catalog) -> None:
    """``merge`` reads its own previous mapping as state (as ID merge does): the rebuilt
    mapping read the old, corpus-derived one, yet it is not derived from the corpus (status.py
    does not propagate through state either), so a second rebuild has nothing to do."""
    def merge(clean: str, value: int, run_id: str) -> None:
        with story.run(f"{DAG}.merge", inputs=[clean], state_inputs=["t/mapping@latest"],
                       engine=airflow_engine("merge", run_id)) as run:
            run.log_output(pa.table({"m": [value]}), name="t/mapping")

    merge("t/clean@1", 1, "manual__1")
    pins = {"t/corpus": "t/corpus@2"}
    step(story, "train", ["t/corpus@1"], "t/model", 2, run_id="rebuild__1", pins=pins)
    step(story, "despam", ["t/users@1", "t/model@2"], "t/clean", 2, run_id="rebuild__1")
    merge("t/clean@2", 2, "rebuild__1")
    assert set(story.get_run(story.get("t/mapping@2").run_id).inputs) == {"t/clean@2",
                                                                          "t/mapping@1"}
    assert plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@2").empty


def test_substitute_without_with(story: Catalog, tmp_path: Path) -> None:
    # corpus@1 is not retracted and @2 is newer: the latest version replaces it
    assert plan_rebuild(story, "t/corpus@1").replacement == "t/corpus@2"
    story.retract("t/corpus@2", reason="also wrong")
    with pytest.raises(InvalidArgument, match="nothing replaces t/corpus@1"):
        plan_rebuild(story, "t/corpus@1")
    # the runs read the corpus through an alias that now points at a good version
    cat = Catalog.open(f"sqlite:///{tmp_path / 'd.db'}", store_url=str(tmp_path / "store2"))
    cat.log(pa.table({"v": [1]}), name="t/corpus")
    cat.alias("t/corpus@1", "production")
    step(cat, "train", ["t/corpus@production"], "t/model", 1)
    cat.log(pa.table({"v": [2]}), name="t/corpus")
    cat.log(pa.table({"v": [3]}), name="t/corpus")
    cat.alias("t/corpus@2", "production")
    assert plan_rebuild(cat, "t/corpus@1").replacement == "t/corpus@2"


def test_with_must_name_another_good_version_of_the_same_dataset(story: Catalog) -> None:
    with pytest.raises(InvalidArgument, match="another dataset"):
        plan_rebuild(story, "t/corpus@1", with_ref="t/users@1")
    with pytest.raises(InvalidArgument, match="itself"):
        plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@1")


def test_beam_and_plain_runs_are_entries_of_their_own(story: Catalog) -> None:
    beam = {"name": "beam", "job_name": "score_users", "pipeline_run_id": "pipe-1",
            "launch": {"python": "/usr/bin/python3", "module": "my.pipeline", "script": None,
                       "argv": ["--runner=FnApiRunner"], "cwd": "/", "pins": {}}}
    step(story, "score", ["t/clean@1"], "t/scores", 1, engine=beam)
    with story.run("notebook", inputs=["t/model@1"]) as run:
        run.log_output(pa.table({"y": [1]}), name="t/report")
    plan = plan_rebuild(story, "t/corpus@1", with_ref="t/corpus@2")
    kinds = [(e.engine, e.order) for e in plan.entries]
    assert kinds == [("airflow", 0), ("headwater", 1), ("beam", 2)]
    beam_entry = plan.entries[2]
    assert (beam_entry.pipeline_run_id, beam_entry.job_name) == ("pipe-1", "score_users")
    assert beam_entry.launch is not None and beam_entry.rebuilds == ["t/scores@1"]
    assert plan.entries[1].jobs == ["default/notebook"]


def test_cli_dry_run_json_and_impact(story: Catalog, tmp_path: Path) -> None:
    base = ["--catalog", story.settings.catalog_url, "--store", story.settings.store_url]
    runner = CliRunner()

    def hw(*args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
        r = runner.invoke(main, [*base, *args], env=env)
        assert r.exit_code == code, r.output
        return r.output

    plan = json.loads(hw("rebuild", "t/corpus@1", "--with", "t/corpus@2", "--dry-run", "--json"))
    (entry,) = plan["entries"]
    assert {k: entry[k] for k in ("dag_id", "dag_run_id", "task_ids", "pins")} == {
        "dag_id": DAG, "dag_run_id": "manual__1", "task_ids": ["train", "despam"],
        "pins": {"t/corpus": "t/corpus@2"}}
    assert plan["dry_run"] is True and plan["replacement"] == "t/corpus@2"
    text = hw("rebuild", "t/corpus@1", "--with", "t/corpus@2", "--dry-run")
    assert f"Airflow DAG {DAG}, run manual__1" in text and "train, despam" in text
    # running needs the api-server: one line saying how to give it
    err = hw("rebuild", "t/corpus@1", "--with", "t/corpus@2", code=2)
    assert "--airflow-url" in err and len(err.strip().splitlines()) == 1
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    err = hw("rebuild", "t/corpus@1", "--with", "t/corpus@2", "--json", "--airflow-url", url,
             code=2)
    assert "user and password" in err and len(err.strip().splitlines()) == 1
    err = hw("rebuild", "t/corpus@1", "--with", "t/corpus@2", "--json", "--airflow-url", url,
             code=2, env={"HEADWATER_AIRFLOW_USER": "u", "HEADWATER_AIRFLOW_PASSWORD": "p"})
    assert "not reachable" in err and len(err.strip().splitlines()) == 1
    impact = hw("impact", "t/corpus@1")
    assert "tasks clear" not in impact and "airflow dags trigger spam_dag --conf" in impact
    assert json.loads(hw("impact", "t/corpus@1", "--json"))["rebuild"]["entries"][0][
        "dag_run_id"] == "manual__1"
    assert "another dataset" in hw("rebuild", "t/corpus@1", "--with", "t/users@1", code=2)
