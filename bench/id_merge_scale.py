"""Scale benchmark of the ID merge: wall time for 10k, 100k and 1M generated records.

Why: blocking must keep the work near-linear; this prints time per record at each size and the
growth ratio against the 10k run measured in the same process (a quadratic step would show a
ratio near the size ratio squared). Generation and cleaning are timed apart from the merge.

    .venv/bin/python bench/id_merge_scale.py            # 10k, 100k, 1M
    .venv/bin/python bench/id_merge_scale.py 10000 100000
"""

from __future__ import annotations

import resource
import sys
import time

from headwater.steps.clean import CleanStep
from headwater.steps.id_merge import IdMergeParams, IdMergeStep
from headwater.steps.sample import generate_users


def main(sizes: list[int]) -> None:
    base: float | None = None
    print(f"{'records':>9} {'generate s':>10} {'clean s':>8} {'merge s':>8} {'us/rec':>7} "
          f"{'x vs 1st':>8} {'cand pairs':>10} {'pair F1':>7} {'clust F1':>8} {'maxRSS MB':>9}")
    for n in sizes:
        t0 = time.perf_counter()
        raw = generate_users(n_records=n, seed=7)
        t1 = time.perf_counter()
        clean = CleanStep().run_table(raw).output
        t2 = time.perf_counter()
        res = IdMergeStep(IdMergeParams(truth_column="_true_person_id")).run_table(clean)
        t3 = time.perf_counter()
        merge = t3 - t2
        per = merge / clean.num_rows * 1e6
        base = base or per
        q = res.stats["quality"]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>9} {t1 - t0:>10.1f} {t2 - t1:>8.1f} {merge:>8.1f} {per:>7.1f} "
              f"{per / base:>8.2f} {res.stats['candidate_pairs']:>10} "
              f"{q['pairwise']['f1']:>7.4f} {q['clustered']['f1']:>8.4f} {rss:>9.0f}", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])
