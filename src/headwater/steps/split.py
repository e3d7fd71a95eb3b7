"""Split: deterministic, seedable, stratified train/dev/test assignment.

Why: a split that depends on row order or on a global random state gives different test sets on
re-runs and across engines, which makes versioned results meaningless. Here each record's place
depends only on ``(seed, its key)`` and on the class counts: within each class the part sizes are
fixed by largest-remainder allocation (60/20/20 of 30 positives is exactly 18/6/6), and records
are ordered by a keyed BLAKE2b hash of their key to decide which records fill which part.

For Beam: group records by class (:func:`stratum_of`), then call :func:`assign_stratum` on each
group — the same function the table path uses, so both give identical assignments.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from headwater.canonical import canonical_json
from headwater.steps.base import (
    COLUMN,
    DEAD_LETTER_COLUMNS,
    REASON,
    Record,
    Step,
    StepParams,
    StepResult,
    claim_columns,
    dead_letter_schema,
    records_to_table,
    register_step,
    require_columns,
)

__all__ = ["SplitParams", "SplitStep", "allocate", "assign_stratum", "record_hash", "stratum_of"]


@dataclass(frozen=True)
class SplitParams(StepParams):
    """``ratios`` (summing to 1) for the ``parts``; ``label_column`` to stratify on (None: one
    stratum); ``key_column`` that identifies a record (None: the whole record's canonical JSON);
    ``seed`` changes the assignment; ``split_column`` names the output column."""

    STEP = "split"

    ratios: tuple[float, ...] = (0.6, 0.2, 0.2)
    parts: tuple[str, ...] = ("train", "dev", "test")
    label_column: str | None = None
    key_column: str | None = "record_id"
    seed: int = 0
    split_column: str = "split"

    def validate(self) -> None:
        if len(self.ratios) != len(self.parts) or not self.parts:
            raise self.bad("ratios",
                           f"must have one ratio per part {self.parts}, got {self.ratios}")
        if any(not isinstance(r, (int, float)) or r < 0 or math.isnan(r) for r in self.ratios):
            raise self.bad("ratios", f"must be non-negative numbers, got {self.ratios}")
        if abs(sum(self.ratios) - 1.0) > 1e-9:
            raise self.bad("ratios", f"must sum to 1, got {self.ratios} (sum {sum(self.ratios)})")
        if len(set(self.parts)) != len(self.parts) or not all(self.parts):
            raise self.bad("parts", f"must be distinct non-empty names, got {self.parts}")
        if not isinstance(self.seed, int):
            raise self.bad("seed", f"must be an int, got {self.seed!r}")
        if not self.split_column or self.split_column in DEAD_LETTER_COLUMNS:
            raise self.bad("split_column", f"must be a name other than {DEAD_LETTER_COLUMNS}, "
                           f"got {self.split_column!r}")

    def added_columns(self) -> dict[str, str | None]:
        """The columns split adds (its part column; dead letters' reason/column on Beam)."""
        return {self.split_column: "split_column", REASON: None, COLUMN: None}


def allocate(n: int, ratios: Sequence[float]) -> list[int]:
    """Largest-remainder allocation of ``n`` items to parts; ties go to the earlier part."""
    quotas = [n * r for r in ratios]
    counts = [math.floor(q + 1e-9) for q in quotas]
    order = sorted(range(len(ratios)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def record_hash(key: str, seed: int) -> bytes:
    """Keyed digest that orders records inside a stratum."""
    return hashlib.blake2b(key.encode(), digest_size=16, key=str(seed).encode()).digest()


def _key(record: Record, key_column: str | None) -> str:
    if key_column is not None:
        return str(record[key_column])
    return canonical_json(record)


def stratum_of(record: Record, params: SplitParams) -> str:
    """The grouping key Beam should group by before :func:`assign_stratum`."""
    if params.label_column is None:
        return ""
    return json.dumps(record.get(params.label_column), default=str)


def assign_stratum(records: Sequence[Record], params: SplitParams) -> list[Record]:
    """Assign every record of one stratum to a part; returns records with the split column.

    The result is sorted by hash, so it does not depend on the order records arrive in.
    """
    keyed = sorted(
        ((record_hash(k, params.seed), k, r)
         for r in records for k in [_key(r, params.key_column)]),
        key=lambda t: (t[0], t[1]),
    )
    counts = allocate(len(keyed), params.ratios)
    out: list[Record] = []
    pos = 0
    for part, c in zip(params.parts, counts, strict=True):
        for _, _, r in keyed[pos:pos + c]:
            out.append({**r, params.split_column: part})
        pos += c
    return out


@register_step
class SplitStep(Step):
    """Adds a ``split`` column; per-part class histograms go into the stats."""

    NAME: ClassVar[str] = "split"
    VERSION: ClassVar[str] = "1"
    PARAMS: ClassVar[type[StepParams]] = SplitParams
    params: SplitParams

    @property
    def input_schema(self) -> pa.Schema:
        cols = [c for c in (self.params.key_column, self.params.label_column) if c]
        return pa.schema([(c, pa.string()) for c in cols])

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([(self.params.split_column, pa.string())])

    def process_batch(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """Split a batch that holds *all* records (a stratum needs every member for exact
        counts); Beam should group by :func:`stratum_of` and call :func:`assign_stratum`."""
        groups: dict[str, list[Record]] = defaultdict(list)
        for r in records:
            groups[stratum_of(r, self.params)].append(r)
        out: list[Record] = []
        for s in sorted(groups):
            out.extend(assign_stratum(groups[s], self.params))
        return out, []

    def run_table(self, table: pa.Table) -> StepResult:
        p = self.params
        cols = [c for c in (p.key_column, p.label_column) if c]
        require_columns(self.NAME, table.schema, cols)
        claim_columns(self.NAME, table.schema, p.added_columns())
        if p.key_column is not None:
            keys = table.column(p.key_column).to_pylist()
            if len(set(keys)) != len(keys):
                raise self.params.bad("key_column", f"{p.key_column!r} has duplicate values; "
                                      "the split needs a unique key per record")
        rows = table.to_pylist()
        index = {id(r): i for i, r in enumerate(rows)}
        assigned, _ = self.process_batch(rows)
        # keep the input's row order in the table (the assignment itself is order-free)
        parts_by_row = [""] * len(rows)
        for r, orig in zip(assigned, _originals(rows, assigned, p), strict=True):
            parts_by_row[index[id(orig)]] = r[p.split_column]
        good = [{**r, p.split_column: part} for r, part in zip(rows, parts_by_row, strict=True)]
        schema = table.schema.append(pa.field(p.split_column, pa.string()))
        out = records_to_table(good, schema)
        hist: dict[str, dict[str, int]] = {part: {} for part in p.parts}
        labels = [
            "all" if p.label_column is None else json.dumps(r.get(p.label_column), default=str)
            for r in good
        ]
        for part, counter in _histograms(good, labels, p.split_column).items():
            hist[part] = dict(sorted(counter.items()))
        stats: dict[str, Any] = {
            "rows_in": table.num_rows, "rows_out": out.num_rows, "rows_dead_letter": 0,
            "part_sizes": {part: sum(hist[part].values()) for part in p.parts},
            "class_histograms": hist, "ratios": list(p.ratios), "seed": p.seed,
        }
        empty = records_to_table([], dead_letter_schema(table.schema))
        return StepResult(output=out, dead_letter=empty, stats=stats)


def _originals(rows: list[Record], assigned: list[Record], p: SplitParams) -> list[Record]:
    """Map each assigned record back to its input record (by key, or by canonical JSON)."""
    by_key: dict[str, list[Record]] = defaultdict(list)
    for r in rows:
        by_key[_key(r, p.key_column)].append(r)
    drop = p.split_column
    return [by_key[_key({k: v for k, v in a.items() if k != drop}, p.key_column)].pop()
            for a in assigned]


def _histograms(rows: list[Record], labels: list[str], col: str) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for r, lab in zip(rows, labels, strict=True):
        out[r[col]][lab] += 1
    return out
