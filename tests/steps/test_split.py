"""Split: exact stratified counts, determinism, order independence."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from headwater.steps.split import SplitParams, SplitStep, allocate


def _table(n: int = 100, positives: int = 30) -> pa.Table:
    return pa.table({
        "record_id": [f"r{i}" for i in range(n)],
        "label": [1 if i < positives else 0 for i in range(n)],
    })


def test_allocate_largest_remainder() -> None:
    assert allocate(30, (0.6, 0.2, 0.2)) == [18, 6, 6]
    assert allocate(70, (0.6, 0.2, 0.2)) == [42, 14, 14]
    assert allocate(7, (0.6, 0.2, 0.2)) == [4, 2, 1]
    assert sum(allocate(1001, (0.7, 0.2, 0.1))) == 1001


def test_60_20_20_with_30_positives_gives_18_6_6() -> None:
    res = SplitStep(SplitParams(label_column="label")).run_table(_table())
    h = res.stats["class_histograms"]
    assert h["train"]["1"] == 18 and h["dev"]["1"] == 6 and h["test"]["1"] == 6
    assert h["train"]["0"] == 42 and h["dev"]["0"] == 14 and h["test"]["0"] == 14
    assert res.stats["part_sizes"] == {"train": 60, "dev": 20, "test": 20}


def test_deterministic_and_seeded() -> None:
    t = _table()
    a = SplitStep(SplitParams(label_column="label", seed=1)).run_table(t).output
    b = SplitStep(SplitParams(label_column="label", seed=1)).run_table(t).output
    c = SplitStep(SplitParams(label_column="label", seed=2)).run_table(t).output
    assert a.equals(b)
    assert a["split"].to_pylist() != c["split"].to_pylist()


def test_input_order_does_not_matter() -> None:
    t = _table()
    rows = t.to_pylist()
    random.Random(0).shuffle(rows)
    step = SplitStep(SplitParams(label_column="label"))
    a = dict(zip(*step.run_table(t).output.select(["record_id", "split"]).to_pydict().values(),
                 strict=True))
    b = dict(zip(*step.run_table(pa.Table.from_pylist(rows)).output.select(
        ["record_id", "split"]).to_pydict().values(), strict=True))
    assert a == b


def test_batch_and_table_agree() -> None:
    t = _table()
    step = SplitStep(SplitParams(label_column="label"))
    good, dead = step.process_batch(t.to_pylist())
    table_parts = dict(zip(t["record_id"].to_pylist(),
                           step.run_table(t).output["split"].to_pylist(), strict=True))
    assert dead == []
    assert {r["record_id"]: r["split"] for r in good} == table_parts


def test_duplicate_keys_rejected() -> None:
    t = pa.table({"record_id": ["a", "a"], "label": [0, 1]})
    with pytest.raises(ValueError, match="duplicate"):
        SplitStep(SplitParams(label_column="label")).run_table(t)
