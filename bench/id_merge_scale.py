"""Scale benchmark of the ID merge: wall time and peak memory for 10k, 100k and 1M records.

Why: blocking must keep the work near-linear; this prints time per record at each size and the
growth ratio against the first size (a quadratic step would show a ratio near the size ratio).
Records are generated and cleaned once per size (cached as Parquet under ``bench/.cache``); the
merge then runs in a fresh child process so its peak RSS is the merge's own.

    .venv/bin/python bench/id_merge_scale.py            # 10k, 100k, 1M
    .venv/bin/python bench/id_merge_scale.py 10000 100000
    .venv/bin/python bench/id_merge_scale.py --synth 10000 100000   # split-field generator
    .venv/bin/python bench/id_merge_scale.py --fresh 1000000        # regenerate the cached input
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

CACHE = Path(__file__).resolve().parent / ".cache" / "id_merge_scale"


def prepare(n: int, synth: bool) -> tuple[Path, float, float]:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{'synth' if synth else 'users'}-{n}.parquet"
    if path.exists() and "--fresh" not in sys.argv:  # generated before: times not measured
        return path, float("nan"), float("nan")
    t0 = time.perf_counter()
    if synth:
        from headwater.steps.linkage.synth import generate_people
        t = generate_people(n, seed=7)
        t1 = time.perf_counter()
    else:
        from headwater.steps.clean import CleanStep
        from headwater.steps.sample import generate_users
        raw = generate_users(n_records=n, seed=7)
        t1 = time.perf_counter()
        t = CleanStep().run_table(raw).output
    pq.write_table(t, path)
    return path, t1 - t0, time.perf_counter() - t1


def merge(path: str, synth: bool) -> None:
    """Child process: the merge alone, its time and peak RSS as JSON."""
    from headwater.steps.id_merge import IdMergeParams, IdMergeStep
    from headwater.steps.linkage.synth import SYNTH_ROLES
    t = pq.read_table(path)
    params = (IdMergeParams(roles=tuple(sorted(SYNTH_ROLES.items())), truth_column="person_id")
              if synth
              else IdMergeParams(truth_column="_true_person_id"))
    t0 = time.perf_counter()
    res = IdMergeStep(params).run_table(t)
    secs = time.perf_counter() - t0
    q = res.stats["quality"]
    print(json.dumps({"rows": t.num_rows, "secs": secs, "cand": res.stats["candidate_pairs"],
                      "recall": q["blocking_recall"], "pf1": q["pairwise"]["f1"],
                      "cf1": q["clustered"]["f1"],
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--merge"]:
        merge(argv[1], argv[2] == "synth")
        return
    synth = "--synth" in argv
    sizes = [int(a) for a in argv if a.isdigit()] or [10_000, 100_000, 1_000_000]
    base: float | None = None
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"{'records':>9} {'generate s':>10} {'clean s':>8} {'merge s':>8} {'us/rec':>7} "
          f"{'x vs 1st':>8} {'cand pairs':>10} {'pairs/rec':>9} {'blk recall':>10} "
          f"{'pair F1':>7} {'clust F1':>8} {'merge RSS MB':>12}")
    for n in sizes:
        path, gen, clean = prepare(n, synth)
        out = subprocess.run([sys.executable, __file__, "--merge", str(path),
                              "synth" if synth else "users"],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        per = r["secs"] / r["rows"] * 1e6
        base = base or per
        print(f"{n:>9} {gen:>10.1f} {clean:>8.1f} {r['secs']:>8.1f} {per:>7.1f} "
              f"{per / base:>8.2f} {r['cand']:>10} {r['cand'] / r['rows']:>9.2f} "
              f"{r['recall']:>10.4f} {r['pf1']:>7.4f} "
              f"{r['cf1']:>8.4f} {r['rss_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
