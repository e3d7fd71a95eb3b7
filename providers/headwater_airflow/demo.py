"""The README's main job: the reference pipeline, run by real Airflow, on the embedded default.

1. prepares a project-local ``AIRFLOW_HOME`` (``.airflow/``, its own SQLite metadata DB, the
   repository's ``dags/`` folder) — migrated once, reused afterwards;
2. runs ``airflow dags test headwater_reference_pipeline`` (Headwater's catalog and store are the
   embedded default: SQLite + local disk under ``HEADWATER_HOME``, default ``~/.headwater``);
3. prints the versions the run made, the lineage of the final split back to the spam corpus, and
   what ``headwater impact`` says about that corpus.

Run: ``make demo`` or ``python -m headwater_airflow.demo [--n-users N] [--spam-threshold T]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DAG_ID = "headwater_reference_pipeline"
REPO = Path(__file__).resolve().parents[2]


def airflow_env(home: Path, dags: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    })
    return env


def airflow(env: dict[str, str], *args: str, quiet: bool = True
            ) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"headwater demo: `airflow {' '.join(args)}` failed "
                         f"(exit {proc.returncode}); output above")
    if not quiet:
        print(proc.stdout)
    return proc


def prepare(home: Path, dags: Path) -> dict[str, str]:
    env = airflow_env(home, dags)
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / ".migrated"
    if not stamp.exists():
        print(f"preparing Airflow metadata DB in {home} (once)…", flush=True)
        airflow(env, "db", "migrate")
        stamp.touch()
    airflow(env, "dags", "reserialize")
    return env


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--airflow-home", default=str(REPO / ".airflow"))
    ap.add_argument("--dags", default=str(REPO / "dags"))
    ap.add_argument("--n-users", type=int, default=5000)
    ap.add_argument("--spam-threshold", type=float, default=0.5)
    args = ap.parse_args(argv)

    from headwater import Catalog
    from headwater.catalog.db import safe_url
    from headwater.cli import main as cli

    env = prepare(Path(args.airflow_home), Path(args.dags))
    conf = {"n_users": args.n_users, "spam_threshold": args.spam_threshold}
    section(f"1. airflow dags test {DAG_ID} --conf '{json.dumps(conf)}'")
    started = time.perf_counter()
    proc = airflow(env, "dags", "test", DAG_ID, "--conf", json.dumps(conf))
    log = proc.stdout + proc.stderr
    for line in log.splitlines():
        if any(f"] {w} reference/" in line for w in ("committed", "reused", "unchanged")):
            print("  " + line.split("]", 1)[1].split(" [airflow.task", 1)[0].strip())
    state = "success" if "state=success" in log else "see the log"
    print(f"DAG run finished ({state}) in {time.perf_counter() - started:.1f} s")

    cat = Catalog.open()
    print(f"catalog {safe_url(cat.settings.catalog_url)}, store {cat.store.url}")
    section("2. datasets")
    cli(["ls", "--namespace", "reference"], standalone_mode=False)
    section("3. lineage of the final split, back to the spam corpus")
    cli(["lineage", "reference/users_split@latest"], standalone_mode=False)
    corpus = cat.get("reference/sms_spam_corpus@latest")
    section(f"4. impact: suppose {corpus.ref} turns out to be mislabelled")
    cli(["impact", corpus.ref], standalone_mode=False)
    model = cat.get("reference/spam_model@latest")
    split = cat.get("reference/users_split@latest")
    section("5. quality recorded with the versions")
    print(f"{model.ref}: held-out precision {model.stats.get('precision'):.4f}, recall "
          f"{model.stats.get('recall'):.4f}, F1 {model.stats.get('f1'):.4f}")
    merged = cat.get("reference/users_merged@latest")
    q = (merged.stats.get("quality") or {}).get("clustered") or {}
    if q:
        print(f"{merged.ref}: {merged.stats.get('persons')} people from "
              f"{merged.stats.get('rows_in')} records; pair F1 {q.get('f1')}")
    print(f"{split.ref}: class balance per part {json.dumps(split.stats.get('class_histograms'))}")
    print("\nAirflow UI page: the `headwater` plugin serves /headwater/ under `airflow "
          "api-server`. CLI: .venv/bin/headwater --help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
