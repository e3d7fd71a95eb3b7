"""Splink 5 run unsupervised on one table, the way its tutorials do (DuckDB backend).

Run by ``bench/id_merge_quality.py`` inside its throwaway virtual environment
(``bench/.cache/splink-venv``), never imported by Headwater:

    python bench/splink_dedupe.py IN.parquet CONFIG.json OUT_PAIRS.parquet OUT_CLUSTERS.parquet

CONFIG: ``{"names": [...], "exact": [...], "email": col|null, "fuzzy": [...],
"blocking": [[col, ...], ...], "em": [[col, ...], ...], "deterministic": [[col, ...], ...]}``.
Predictions and clusters are taken at match probability 0.9.
"""

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on


def main(inp: str, config: str, out_pairs: str, out_clusters: str) -> None:
    cfg = json.loads(Path(config).read_text())
    df = pq.read_table(inp).to_pandas()
    comparisons = [cl.NameComparison(c).configure(term_frequency_adjustments=True)
                   for c in cfg["names"]]
    comparisons += [cl.ExactMatch(c) for c in cfg["exact"]]
    if cfg.get("email"):
        comparisons.append(cl.EmailComparison(cfg["email"]))
    comparisons += [cl.LevenshteinAtThresholds(c, 2) for c in cfg["fuzzy"]]
    settings = SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="unique_id", comparisons=comparisons,
        blocking_rules_to_generate_predictions=[block_on(*b) for b in cfg["blocking"]],
        retain_intermediate_calculation_columns=False)
    db = DuckDBAPI()
    linker = Linker(db.register(df), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*b) for b in cfg["deterministic"]], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    for b in cfg["em"]:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*b))
    pred = linker.inference.predict(threshold_match_probability=0.9)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.9)
    pairs = pred.as_pandas_dataframe()[["unique_id_l", "unique_id_r"]]
    pq.write_table(pa.Table.from_pandas(pairs, preserve_index=False), out_pairs)
    cl_df = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    pq.write_table(pa.Table.from_pandas(cl_df.astype(str), preserve_index=False), out_clusters)


if __name__ == "__main__":
    main(*sys.argv[1:5])
