"""ID merge: entity resolution over user records, one stable user ID per person.

Why: the same person signs up several times with typos and differently formatted contact
details; downstream datasets need one ID per person, and that ID must not change when new
records arrive. The pipeline is normalise → block → score pairs → union-find → stable IDs, each
stage a pure function in ``steps/linkage/`` so Beam can run it distributed:

    records ─Map(normalize_record)─FlatMap(blocking_keys)─GroupByKey─FlatMap(pairs_in_block)
      ─(join both records)─Map(score_pair)─Filter(>= threshold)─CombineGlobally(UnionFind)
      ─assign_stable_ids(previous mapping)

The table path below runs the same functions in one process. Columns are mapped to roles by a
parameter, so FEBRL's ``given_name``/``surname``/``suburb`` and our ``name``/``city`` both work.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from headwater.steps.base import (
    InvalidStepParameter,
    Record,
    Step,
    StepParams,
    StepResult,
    dead_letter_schema,
    records_to_table,
    register_step,
    require_columns,
)
from headwater.steps.linkage.blocking import group_blocks, pairs_in_block
from headwater.steps.linkage.clustering import assign_stable_ids, clusters_from_pairs
from headwater.steps.linkage.normalize import ROLES, NormRecord, normalize_record
from headwater.steps.linkage.scoring import score_pair

__all__ = ["IdMergeParams", "IdMergeStep", "LinkResult", "link_records", "pair_quality"]


@dataclass(frozen=True)
class IdMergeParams(StepParams):
    """``roles``: ``((column, role), …)`` (a dict is accepted); ``id_column``: unique record
    id; ``threshold``: match weight in bits; ``max_block_size``/``window``: blocking caps;
    ``truth_column``: optional ground-truth person id for quality stats."""

    STEP = "id_merge"

    roles: tuple[tuple[str, str], ...] = (
        ("name", "full_name"), ("email", "email"), ("phone", "phone"), ("address", "address"),
        ("city", "city"), ("dob", "dob"),
    )
    id_column: str = "record_id"
    threshold: float = 12.0
    max_block_size: int = 50
    window: int = 8
    user_id_column: str = "user_id"
    id_prefix: str = "u_"
    truth_column: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.roles, Mapping):
            object.__setattr__(self, "roles", tuple(sorted(self.roles.items())))
        else:
            object.__setattr__(self, "roles", tuple(tuple(x) for x in self.roles))
        super().__post_init__()

    def validate(self) -> None:
        if not self.roles:
            raise self.bad("roles", "must map at least one column to a role")
        for item in self.roles:
            if len(item) != 2:
                raise self.bad("roles", f"entries must be (column, role), got {item!r}")
            if item[1] not in ROLES:
                raise self.bad("roles", f"{item[1]!r} (for column {item[0]!r}) is not a role; "
                                        f"roles are {ROLES}")
        if not isinstance(self.threshold, (int, float)):
            raise self.bad("threshold", f"must be a number of bits, got {self.threshold!r}")
        if not isinstance(self.max_block_size, int) or self.max_block_size < 2:
            raise self.bad("max_block_size", f"must be an int >= 2, got {self.max_block_size!r}")
        if not isinstance(self.window, int) or not 2 <= self.window <= self.max_block_size:
            raise self.bad("window", f"must be an int in [2, max_block_size], got {self.window!r}")

    @property
    def role_map(self) -> dict[str, str]:
        return dict(self.roles)


@dataclass
class LinkResult:
    """Everything the table path computes (ids are row positions)."""

    norm: list[NormRecord]
    candidate_pairs: int
    pairs: np.ndarray  # (k, 2) int64 row positions, a < b
    scores: np.ndarray  # (k,) float64
    matched: np.ndarray  # (k,) bool
    clusters: list[list[int]]
    block_sizes: Counter[int]


def link_records(
    records: Sequence[Mapping[str, Any]], params: IdMergeParams
) -> LinkResult:
    """Normalise, block, score and cluster ``records`` in one process."""
    roles = params.role_map
    norm = [normalize_record(r, roles) for r in records]
    blocks = group_blocks(enumerate(norm))
    n = len(norm)
    codes = array("q")
    sizes: Counter[int] = Counter()
    for members in blocks.values():
        sizes[min(len(members), params.max_block_size + 1)] += 1
        if len(members) < 2:
            continue
        for a, b in pairs_in_block(members, max_block_size=params.max_block_size,
                                   window=params.window):
            codes.append(a * n + b)
    uniq = np.unique(np.frombuffer(codes, dtype=np.int64)) if codes else np.empty(0, np.int64)
    width = max(n, 1)
    pairs = np.stack([uniq // width, uniq % width], axis=1).astype(np.int64)
    pair_list: list[list[int]] = pairs.tolist()
    scores = np.fromiter((score_pair(norm[a], norm[b]) for a, b in pair_list),
                         dtype=np.float64, count=len(pairs))
    matched = scores >= params.threshold
    clusters_raw = clusters_from_pairs(
        (str(i) for i in range(n)),  # str ids keep UnionFind's ordering simple
        ((str(a), str(b)) for a, b in pairs[matched].tolist()),
    )
    clusters = [sorted(int(x) for x in c) for c in clusters_raw]
    return LinkResult(norm, len(codes), pairs.astype(np.int64), scores, matched, clusters, sizes)


def _prf(tp: int, predicted: int, actual: int) -> dict[str, float | int]:
    p = tp / predicted if predicted else 0.0
    r = tp / actual if actual else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "true_positives": tp, "predicted": predicted, "actual": actual}


def pair_quality(
    labels: Sequence[Any], pairs: np.ndarray, clusters: Sequence[Sequence[int]]
) -> dict[str, Any]:
    """Pair precision/recall/F1 of the matched ``pairs`` and of the ``clusters`` against
    ground-truth ``labels`` (one per row; None = unknown person, never matches)."""
    lab = list(labels)
    actual = sum(c * (c - 1) // 2 for k, c in Counter(lab).items() if k is not None)
    tp = sum(1 for a, b in pairs.tolist() if lab[a] is not None and lab[a] == lab[b])
    c_pred = sum(len(c) * (len(c) - 1) // 2 for c in clusters)
    c_tp = 0
    for c in clusters:
        counts = Counter(lab[i] for i in c if lab[i] is not None)
        c_tp += sum(k * (k - 1) // 2 for k in counts.values())
    return {"pairwise": _prf(tp, len(pairs), actual), "clustered": _prf(c_tp, c_pred, actual)}


def _previous_mapping(previous: Mapping[str, str] | pa.Table | None) -> dict[str, str]:
    if previous is None:
        return {}
    if isinstance(previous, pa.Table):
        cols = previous.column_names
        if len(cols) < 2:
            raise InvalidStepParameter("id_merge", "previous",
                                       "must be a table of (record id, user id)")
        return dict(zip(previous.column(0).to_pylist(), previous.column(1).to_pylist(),
                        strict=True))
    return dict(previous)


@register_step
class IdMergeStep(Step):
    """Adds ``user_id``; ``previous`` (record id → user id, a mapping or a 2-column table from
    the last version's ``mapping`` side output) keeps existing persons' IDs."""

    NAME: ClassVar[str] = "id_merge"
    VERSION: ClassVar[str] = "1"
    PARAMS: ClassVar[type[StepParams]] = IdMergeParams
    SOURCE_MODULES: ClassVar[tuple[str, ...]] = (
        "headwater.steps.linkage.normalize", "headwater.steps.linkage.blocking",
        "headwater.steps.linkage.scoring", "headwater.steps.linkage.clustering",
    )
    params: IdMergeParams

    def __init__(self, params: StepParams | None = None, *,
                 previous: Mapping[str, str] | pa.Table | None = None) -> None:
        super().__init__(params)
        self.previous = _previous_mapping(previous)

    @property
    def input_schema(self) -> pa.Schema:
        cols = [self.params.id_column, *(c for c, _ in self.params.roles)]
        return pa.schema([(c, pa.string()) for c in dict.fromkeys(cols)])

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([(self.params.user_id_column, pa.string())])

    def process_batch(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """Merge a batch that holds every record to be merged (Beam should use the linkage
        functions stage by stage instead, see the module docstring)."""
        good, dead, _ = self._run(records)
        return good, dead

    def _run(self, records: Sequence[Record]) -> tuple[list[Record], list[Record], dict[str, Any]]:
        p = self.params
        ok: list[Record] = []
        dead: list[Record] = []
        seen: set[str] = set()
        for r in records:
            rid = r.get(p.id_column)
            if rid is None or str(rid) == "":
                dead.append({**r, "reason": "missing_record_id", "column": p.id_column})
            elif str(rid) in seen:
                dead.append({**r, "reason": "duplicate_record_id", "column": p.id_column})
            else:
                seen.add(str(rid))
                ok.append(r)
        link = link_records(ok, p)
        ids = [str(r[p.id_column]) for r in ok]
        # clusters of record ids, each sorted by record id, for stable assignment
        clusters = sorted((sorted(ids[i] for i in c) for c in link.clusters), key=lambda c: c[0])
        mapping, id_counts = assign_stable_ids(clusters, self.previous, prefix=p.id_prefix)
        good = [{**r, p.user_id_column: mapping[i]} for r, i in zip(ok, ids, strict=True)]
        sizes = Counter(len(c) for c in link.clusters)
        stats: dict[str, Any] = {
            "rows_in": len(records), "rows_out": len(good), "rows_dead_letter": len(dead),
            "candidate_pairs": len(link.pairs), "matched_pairs": int(link.matched.sum()),
            "persons": len(link.clusters), "ids_kept": id_counts["kept"],
            "ids_new": id_counts["new"], "ids_split": id_counts["split"],
            "cluster_size_histogram": {str(k): v for k, v in sorted(sizes.items())},
            "threshold": p.threshold,
        }
        if p.truth_column is not None:
            labels = [r.get(p.truth_column) for r in ok]
            stats["quality"] = pair_quality(labels, link.pairs[link.matched], link.clusters)
            cand_tp = sum(1 for a, b in link.pairs.tolist() if labels[a] == labels[b])
            actual = stats["quality"]["pairwise"]["actual"]
            stats["quality"]["blocking_recall"] = round(cand_tp / actual, 4) if actual else 0.0
        return good, dead, stats

    def run_table(self, table: pa.Table) -> StepResult:
        p = self.params
        cols = [p.id_column, *(c for c, _ in p.roles)]
        if p.truth_column:
            cols.append(p.truth_column)
        require_columns(self.NAME, table.schema, cols)
        good, dead, stats = self._run(table.to_pylist())
        schema = table.schema.append(pa.field(p.user_id_column, pa.string()))
        out = records_to_table(good, schema)
        mapping = pa.table({
            p.id_column: pa.array([str(r[p.id_column]) for r in good], pa.string()),
            p.user_id_column: pa.array([r[p.user_id_column] for r in good], pa.string()),
        })
        return StepResult(output=out, dead_letter=records_to_table(dead, dead_letter_schema(
            table.schema)), stats=stats, side_outputs={"mapping": mapping})
