"""The README's main job: the reference pipeline run by real Airflow, then the rebuild story.

1. prepares a project-local ``AIRFLOW_HOME`` (``.airflow/``, its own SQLite metadata DB, the
   repository's ``dags/`` folder) — migrated once, reused afterwards — and the demo's own
   Headwater catalog (``.airflow/headwater``: SQLite + local disk, started afresh each time so
   the story replays);
2. runs ``airflow dags test headwater_reference_pipeline``, prints the versions it made and the
   lineage of the final split back to the spam corpus;
3. the spam corpus turns out mislabelled: logs a corrected copy, retracts the bad version, shows
   its impact and the stale status, reviews ``headwater rebuild --dry-run``, runs the plan's DAG
   run locally (``airflow dags test`` with the pins in its conf: there is no scheduler here;
   with one, ``headwater rebuild`` triggers it through the api-server), and shows that every
   dataset is fresh and a second rebuild has nothing to do.

Every command it runs is printed first (``$ ...``) and run exactly as printed, through the
shell, from the repository root: pasted into a shell there, each does the same.

Run: ``make demo`` or ``python -m headwater_airflow.demo [--n-users N] [--spam-threshold T]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

DAG_ID = "headwater_reference_pipeline"
REPO = Path(__file__).resolve().parents[2]
CORPUS = "reference/sms_spam_corpus"


def _rel(p: Path) -> str:
    """``p`` as printed: relative to the repository root (where commands run) when inside it."""
    full = p.resolve()
    return str(full.relative_to(REPO)) if full.is_relative_to(REPO) else str(full)


def _path(p: Path) -> str:
    return shlex.quote(_rel(p))


class Shell:
    """Prints each command, then runs exactly that text with bash from the repository root."""

    def __init__(self, airflow_home: Path, dags: Path, headwater_home: Path) -> None:
        bin_dir = Path(sys.executable).parent
        self.airflow = (f"AIRFLOW_HOME={_path(airflow_home)} AIRFLOW__CORE__DAGS_FOLDER="
                        f"{_path(dags)} AIRFLOW__CORE__LOAD_EXAMPLES=False "
                        f"{_path(bin_dir / 'airflow')}")
        self.hw_env = f"HEADWATER_HOME={_path(headwater_home)}"
        self.headwater = f"{self.hw_env} {_path(bin_dir / 'headwater')}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("HEADWATER_CATALOG_URL", "HEADWATER_STORE_URL", "HEADWATER_PINS")}
        self.env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"

    def run(self, command: str, *, show: bool = True) -> str:
        print(f"$ {command}", flush=True)
        proc = subprocess.run(["bash", "-c", command], cwd=REPO, env=self.env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"headwater demo: `{command}` failed (exit {proc.returncode}); "
                             "output above")
        if show:
            print(proc.stdout.rstrip(), flush=True)
        return proc.stdout + proc.stderr

    def hw(self, *args: str, show: bool = True) -> str:
        return self.run(f"{self.headwater} {shlex.join(args)}", show=show)

    def dags_test(self, conf: dict[str, object]) -> None:
        """One DAG run in this process; prints what each task committed or reused."""
        started = time.perf_counter()
        conf_arg = shlex.quote(json.dumps(conf, sort_keys=True))
        log = self.run(f"{self.hw_env} {self.airflow} dags test {DAG_ID} --conf {conf_arg}",
                       show=False)
        for line in log.splitlines():
            if any(f"] {w} reference/" in line for w in ("committed", "reused", "unchanged")):
                print("  " + line.split("]", 1)[1].split(" [airflow.task", 1)[0].strip())
        state = "success" if "state=success" in log else "see the log"
        print(f"DAG run finished ({state}) in {time.perf_counter() - started:.1f} s", flush=True)


def prepare(home: Path, dags: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / ".migrated"
    airflow = str(Path(sys.executable).with_name("airflow"))
    steps = [("db", "migrate")] if not stamp.exists() else []
    for args in [*steps, ("dags", "reserialize")]:
        if args[0] == "db":
            print(f"preparing Airflow metadata DB in {home} (once)…", flush=True)
        proc = subprocess.run([airflow, *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(f"headwater demo: `airflow {' '.join(args)}` failed")
    stamp.touch()


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def corrected_corpus(path: Path) -> int:
    """The shipped corpus with every 15th label flipped back: the team's correction (the
    story's premise is that those were mislabelled). Returns the number of labels changed."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from headwater.steps.spam_model import load_sms_spam

    corpus = load_sms_spam()
    flip = pa.array([i % 15 == 0 for i in range(corpus.num_rows)])
    labels = pc.if_else(flip, pc.subtract(1, corpus["label"]), corpus["label"]).cast(pa.int8())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(corpus.set_column(1, "label", labels), path)
    return int(pc.sum(flip.cast(pa.int64())).as_py() or 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--airflow-home", default=str(REPO / ".airflow"))
    ap.add_argument("--headwater-home", default=None,
                    help="the demo's catalog and store (default: AIRFLOW_HOME/headwater); "
                         "emptied at the start")
    ap.add_argument("--dags", default=str(REPO / "dags"))
    ap.add_argument("--n-users", type=int, default=5000)
    ap.add_argument("--spam-threshold", type=float, default=0.5)
    args = ap.parse_args(argv)

    from headwater import Catalog, Settings
    from headwater.rebuild import plan_rebuild

    airflow_home = Path(args.airflow_home)
    hw_home = Path(args.headwater_home or airflow_home / "headwater")
    shutil.rmtree(hw_home, ignore_errors=True)
    hw_home.mkdir(parents=True)
    prepare(airflow_home, Path(args.dags))
    sh = Shell(airflow_home, Path(args.dags), hw_home)
    print("(commands run from the repository root; paste them there to repeat a step)")

    conf = {"n_users": args.n_users, "spam_threshold": args.spam_threshold}
    section("1. the reference pipeline in Airflow")
    sh.dags_test(conf)
    env = {k: v for k, v in sh.env.items() if not k.startswith("HEADWATER_")}
    cat = Catalog.open(settings=Settings.resolve(environ={**env, "HEADWATER_HOME": str(hw_home)}))
    section("2. datasets, and the lineage of the final split back to the spam corpus")
    sh.hw("ls", "--namespace", "reference")
    sh.hw("lineage", "reference/users_split@latest")
    bad = cat.get(f"{CORPUS}@latest")
    model_before = cat.get("reference/spam_model@latest")

    section(f"3. {bad.ref} turns out mislabelled: log the correction, retract the bad version")
    fixed = hw_home / "corpus_corrected.parquet"
    n = corrected_corpus(fixed)
    print(f"(wrote {n} corrected labels to {_path(fixed)})")
    sh.hw("add", _rel(fixed), "--name", CORPUS, "--type", "raw_data")
    good = cat.get(f"{CORPUS}@latest")
    sh.hw("retract", bad.ref, "--reason", f"{n} labels were wrong; corrected in {good.ref}")
    section("4. impact: what came from it, and the rebuild plan")
    sh.hw("impact", bad.ref)
    section("5. status: everything derived from it is stale, with the cause")
    sh.hw("status", "reference")
    section("6. rebuild: review the plan, then run its DAG run")
    sh.hw("rebuild", bad.ref, "--with", good.ref, "--dry-run")
    plan = plan_rebuild(cat, bad.ref, with_ref=good.ref)
    print("(no scheduler here: the plan's DAG run runs locally, with the pins in its conf; "
          "against an api-server, `headwater rebuild` triggers it and --wait follows it)")
    for entry in plan.entries:
        if entry.engine == "airflow" and entry.dag_id == DAG_ID:
            sh.dags_test(entry.trigger_conf())
    section("7. afterwards: the rebuilt versions are fresh; a second rebuild has nothing to do")
    sh.hw("status", "reference")
    sh.hw("rebuild", bad.ref, "--with", good.ref, "--dry-run")

    section("8. quality recorded with the versions")
    model = cat.get("reference/spam_model@latest")
    for m in (model_before, model):
        print(f"{m.ref}: held-out precision {m.stats.get('precision'):.4f}, recall "
              f"{m.stats.get('recall'):.4f}, F1 {m.stats.get('f1'):.4f}")
    split = cat.get("reference/users_split@latest")
    print(f"{split.ref}: class balance per part {json.dumps(split.stats.get('class_histograms'))}")
    print("\nAirflow UI page: the `headwater` plugin serves /headwater/ under `airflow "
          "api-server`. Rebuild on a deployment: docs/rebuild.md. CLI: .venv/bin/headwater --help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
