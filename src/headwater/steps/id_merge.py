"""ID merge: entity resolution over user records, one stable user ID per person.

Why: the same person signs up several times with typos and differently formatted contact
details; downstream datasets need one ID per person, and that ID must not change when new
records arrive. The pipeline, each stage a pure function in ``steps/linkage/`` so Beam runs the
same code distributed (``headwater_beam.id_merge.IdMerge``)::

    normalise (roles, transliteration, placeholders) → value counts (term frequencies; values
    shared by many different people dropped) → blocking rules → comparison levels per pair →
    u from pseudo-random pairs, m and λ by EM → match weight with TF adjustment → connected
    components → consistency split (no chaining through a hub) → stable IDs

The table path (:mod:`headwater.steps.linkage.table`) runs it column-wise in one process.
Columns are mapped to roles by a parameter, so FEBRL's ``given_name``/``surname``/``suburb``,
split birth parts and our ``name``/``city`` all work.
"""

from __future__ import annotations

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
    register_step,
    require_columns,
)
from headwater.steps.linkage.blocking import BlockingRule, default_rules, parse_rule
from headwater.steps.linkage.clustering import assign_stable_ids
from headwater.steps.linkage.normalize import ROLES
from headwater.steps.linkage.table import LinkConfig, Linked, available_roles, link_table

__all__ = ["IdMergeParams", "IdMergeStep", "pair_quality"]


@dataclass(frozen=True)
class IdMergeParams(StepParams):
    """``roles``: ``((column, role), …)`` (a dict is accepted); ``id_column``: unique record id;
    ``blocking``: rules (see :mod:`headwater.steps.linkage.blocking`; empty = defaults for the
    mapped roles); ``threshold``: match weight in bits (prior included; 10 bits ≈ 0.999);
    ``max_block_size``/``window``: blocking caps (a block of up to ``max_block_size`` records
    is compared all-pairs, a larger one by a sorted window); ``random_pairs``: pairs measured
    for ``u``; ``placeholder_people``: a contact value (e-mail, phone, national
    id, address) shared by this many different people is a placeholder and weighs nothing;
    ``cannot_link_below``: a pair scoring below this (bits) is never put in one cluster;
    ``consistency``: split components that would chain strangers; ``tf_adjust``:
    term-frequency adjustment;
    ``truth_column``: optional ground-truth person id for quality stats."""

    STEP = "id_merge"

    roles: tuple[tuple[str, str], ...] = (
        ("name", "full_name"), ("email", "email"), ("phone", "phone"), ("address", "address"),
        ("city", "city"), ("dob", "dob"),
    )
    id_column: str = "record_id"
    blocking: tuple[str, ...] = ()
    threshold: float = 10.0
    max_block_size: int = 20
    window: int = 6
    random_pairs: int = 100_000
    em_iterations: int = 40
    placeholder_people: int = 5
    cannot_link_below: float = -4.0
    consistency: bool = True
    tf_adjust: bool = True
    max_component: int = 1000
    user_id_column: str = "user_id"
    id_prefix: str = "u_"
    truth_column: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.roles, Mapping):
            object.__setattr__(self, "roles", tuple(sorted(self.roles.items())))
        else:
            object.__setattr__(self, "roles", tuple(tuple(x) for x in self.roles))
        if isinstance(self.blocking, str):
            object.__setattr__(self, "blocking", (self.blocking,))
        else:
            object.__setattr__(self, "blocking", tuple(self.blocking))
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
        for name in ("random_pairs", "em_iterations", "placeholder_people", "max_component"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 2:
                raise self.bad(name, f"must be an int >= 2, got {v!r}")
        if self.user_id_column in (self.id_column, *(c for c, _ in self.roles)):
            raise self.bad("user_id_column", f"{self.user_id_column!r} is an input column")
        try:
            _ = self.rules
        except ValueError as e:
            raise self.bad("blocking", str(e)) from None

    @property
    def role_map(self) -> dict[str, str]:
        return dict(self.roles)

    @property
    def rules(self) -> tuple[BlockingRule, ...]:
        have = available_roles(self.role_map)
        texts = self.blocking or default_rules(have)
        return tuple(parse_rule(t, sorted(have)) for t in texts)

    def link_config(self) -> LinkConfig:
        return LinkConfig(
            roles=self.role_map, rules=self.rules, threshold=float(self.threshold),
            max_block_size=self.max_block_size, window=self.window,
            random_pairs=self.random_pairs, placeholder_people=self.placeholder_people,
            cannot_link_below=float(self.cannot_link_below), consistency=self.consistency,
            tf=self.tf_adjust, max_component=self.max_component,
            em_iterations=self.em_iterations)


def _prf(tp: int, predicted: int, actual: int) -> dict[str, float | int]:
    p = tp / predicted if predicted else 0.0
    r = tp / actual if actual else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "true_positives": tp, "predicted": predicted, "actual": actual}


def _same(labels: np.ndarray, pairs: np.ndarray) -> int:
    if not len(pairs):
        return 0
    la, lb = labels[pairs[:, 0]], labels[pairs[:, 1]]
    return int(((la == lb) & (la >= 0)).sum())


def _codes(labels: Sequence[Any]) -> np.ndarray:
    seen: dict[Any, int] = {}
    return np.array([-1 if x is None else seen.setdefault(x, len(seen)) for x in labels],
                    dtype=np.int64)


def pair_quality(
    labels: Sequence[Any], pairs: np.ndarray, clusters: Sequence[Sequence[int]]
) -> dict[str, Any]:
    """Pair precision/recall/F1 of the matched ``pairs`` and of the ``clusters`` against
    ground-truth ``labels`` (one per row; None = unknown person, never matches)."""
    lab = _codes(labels)
    counts = np.bincount(lab[lab >= 0]) if (lab >= 0).any() else np.zeros(0, np.int64)
    actual = int((counts * (counts - 1) // 2).sum())
    tp = _same(lab, np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    c_pred = sum(len(c) * (len(c) - 1) // 2 for c in clusters)
    c_tp = 0
    for c in clusters:
        if len(c) > 1:
            cnt = Counter(int(lab[i]) for i in c if lab[i] >= 0)
            c_tp += sum(k * (k - 1) // 2 for k in cnt.values())
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
    the last version's ``mapping`` side output) keeps existing persons' IDs. An input that
    already has the ``user_id`` column (ID merge run on its own output) has that column
    replaced, and its IDs serve as ``previous`` when none is given: one ``user_id`` column."""

    NAME: ClassVar[str] = "id_merge"
    VERSION: ClassVar[str] = "2"
    PARAMS: ClassVar[type[StepParams]] = IdMergeParams
    SOURCE_MODULES: ClassVar[tuple[str, ...]] = (
        "headwater.steps.linkage.normalize", "headwater.steps.linkage.blocking",
        "headwater.steps.linkage.model", "headwater.steps.linkage.clustering",
        "headwater.steps.linkage.table",
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
        """Merge a batch that holds every record to be merged (Beam uses ``IdMerge``)."""
        res = self.run_table(pa.Table.from_pylist(list(records)))
        return res.output.to_pylist(), res.dead_letter.to_pylist()

    def _split_ids(self, table: pa.Table) -> tuple[list[int], list[tuple[int, str]]]:
        """Row numbers of the records to merge, and of the dead letters with their reason."""
        col = self.params.id_column
        ok: list[int] = []
        dead: list[tuple[int, str]] = []
        seen: set[str] = set()
        for i, rid in enumerate(table.column(col).to_pylist()):
            if rid is None or str(rid) == "":
                dead.append((i, "missing_record_id"))
            elif str(rid) in seen:
                dead.append((i, "duplicate_record_id"))
            else:
                seen.add(str(rid))
                ok.append(i)
        return ok, dead

    def _stats(self, rows_in: int, rows_out: int, rows_dead: int, link: Linked,
               id_counts: Mapping[str, int], truth: Sequence[Any] | None) -> dict[str, Any]:
        p = self.params
        sizes = Counter(len(c) for c in link.clusters)
        stats: dict[str, Any] = {
            "rows_in": rows_in, "rows_out": rows_out, "rows_dead_letter": rows_dead,
            "candidate_pairs": len(link.pairs), "matched_pairs": int(link.matched.sum()),
            "blocking": {r.text: n for r, n in zip(p.rules, link.rule_pairs, strict=True)},
            "persons": len(link.clusters), "ids_kept": id_counts["kept"],
            "ids_new": id_counts["new"], "ids_split": id_counts["split"],
            "components_split_for_consistency": link.split_components,
            "placeholder_values": link.placeholders,
            "cluster_size_histogram": {str(k): v for k, v in sorted(sizes.items())},
            "threshold": p.threshold, "model": link.model.to_dict(),
        }
        if truth is not None:
            lab = _codes(truth)
            q = pair_quality(truth, link.pairs[link.matched], link.clusters)
            actual = q["pairwise"]["actual"]
            cand = _same(lab, link.pairs)
            q["blocking_recall"] = round(cand / actual, 4) if actual else 0.0
            q["components"] = pair_quality(truth, link.pairs[link.matched],
                                           link.components)["clustered"]
            stats["quality"] = q
        return stats

    def run_table(self, table: pa.Table) -> StepResult:
        """Column-wise: no per-row dicts, so 1M records fit in a few GB."""
        p = self.params
        cols = [p.id_column, *(c for c, _ in p.roles)]
        if p.truth_column:
            cols.append(p.truth_column)
        require_columns(self.NAME, table.schema, cols)
        ok_rows, dead_rows = self._split_ids(table)
        good = table.take(pa.array(ok_rows, pa.int64())) if dead_rows else table
        ids = [str(x) for x in good.column(p.id_column).to_pylist()]
        previous = self.previous
        stats_extra: dict[str, Any] = {}
        if p.user_id_column in good.column_names:
            if not previous:  # ID merge run on its own output: keep those IDs
                previous = {r: str(u) for r, u in zip(
                    ids, good.column(p.user_id_column).to_pylist(), strict=True) if u is not None}
            good = good.drop_columns([p.user_id_column])
            stats_extra["replaced_column"] = p.user_id_column
        columns = {c: good.column(c) for c in dict.fromkeys(c for c, _ in p.roles)}
        truth = good.column(p.truth_column).to_pylist() if p.truth_column else None
        link = link_table(columns, ids, p.link_config())
        # clusters of record ids, each sorted by record id, for stable assignment
        clusters = sorted((sorted(ids[i] for i in c) for c in link.clusters), key=lambda c: c[0])
        mapping, id_counts = assign_stable_ids(clusters, previous, prefix=p.id_prefix)
        uids = pa.array([mapping[i] for i in ids], pa.string())
        out = good.append_column(pa.field(p.user_id_column, pa.string()), uids)
        dead_schema = dead_letter_schema(table.schema)
        if dead_rows:
            dt = table.take(pa.array([i for i, _ in dead_rows], pa.int64()))
            dt = dt.select([n for n in dt.column_names if n not in ("reason", "column")])
            dt = dt.append_column("reason", pa.array([r for _, r in dead_rows], pa.string()))
            dt = dt.append_column("column", pa.array([p.id_column] * len(dead_rows), pa.string()))
            dead = dt.cast(dead_schema)
        else:
            dead = dead_schema.empty_table()
        stats = self._stats(table.num_rows, out.num_rows, len(dead_rows), link, id_counts, truth)
        stats.update(stats_extra)
        mapping_t = pa.table({p.id_column: pa.array(ids, pa.string()), p.user_id_column: uids})
        return StepResult(output=out, dead_letter=dead, stats=stats,
                          side_outputs={"mapping": mapping_t})
