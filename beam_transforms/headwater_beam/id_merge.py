"""``IdMerge``: entity resolution as a Beam graph that scales past one machine's memory.

Why this shape: the table path (``IdMergeStep.run_table``) holds every record in one process.
Here each stage of :mod:`headwater.steps.linkage` runs where the data is::

    records ─(record id)─GroupByKey─ drop missing/duplicate ids (dead letter)
      ─FlatMap(normalize_record → blocking_keys)─GroupByKey(block key)
      ─FlatMap(pairs_in_block → score_pair ≥ threshold)─Distinct          matched pairs
      ─ConnectedComponents (large/small-star rounds + exact residual)        (record id, label)
      ─CoGroupByKey(record id)─ user id = new_user_id(smallest record id of the person)

Normalised records travel inside their blocks, so a pair is scored where its block is grouped
(no join back to the records); a pair found in several blocks is scored in each and
de-duplicated after scoring, which gives the same matches because scoring is deterministic.
The IDs equal the table path's for a first merge (no ``previous`` mapping): a new person's ID is
derived from the smallest record id of its cluster, and the component label *is* that id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.display import DisplayDataItem

from headwater.errors import InvalidArgument
from headwater.steps.id_merge import IdMergeParams, IdMergeStep
from headwater.steps.linkage.blocking import blocking_keys, pairs_in_block, sort_key
from headwater.steps.linkage.clustering import new_user_id
from headwater.steps.linkage.normalize import normalize_record
from headwater.steps.linkage.scoring import score_pair
from headwater_beam.components import ConnectedComponents
from headwater_beam.metrics import counter
from headwater_beam.steps import DEAD_LETTER, OUTPUT, _StepComposite

__all__ = ["MAPPING", "IdMerge"]

MAPPING = "mapping"


class _KeyById(beam.DoFn):
    def __init__(self, id_column: str) -> None:
        self._col = id_column

    def setup(self) -> None:
        self._in = counter("id_merge", "records_in")
        self._dead = counter("id_merge", "dead_lettered")

    def process(self, record: dict[str, Any]) -> Iterator[Any]:
        self._in.inc()
        rid = record.get(self._col)
        if rid is None or str(rid) == "":
            self._dead.inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, {**record, "reason": "missing_record_id",
                                                    "column": self._col})
            return
        yield str(rid), record


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))


class _OnePerId(beam.DoFn):
    """Keeps one record per id (the smallest by canonical JSON: no input order in Beam)."""

    def __init__(self, id_column: str) -> None:
        self._col = id_column

    def setup(self) -> None:
        self._dead = counter("id_merge", "dead_lettered")

    def process(self, item: tuple[str, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        rid, records = item
        ordered = sorted(records, key=_canonical)
        yield rid, ordered[0]
        for extra in ordered[1:]:
            self._dead.inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, {**extra, "reason": "duplicate_record_id",
                                                    "column": self._col})


def _block_members(item: tuple[str, dict[str, Any]], roles: dict[str, str],
                   ) -> Iterator[tuple[str, tuple[str, str, dict[str, str]]]]:
    rid, record = item
    norm = normalize_record(record, roles)
    sk = sort_key(norm)
    for key in blocking_keys(norm):
        yield key, (sk, rid, norm)


class _ScoreBlock(beam.DoFn):
    """Candidate pairs of one block, scored; yields the matched ones ``(a, b)``, a < b."""

    def __init__(self, params: IdMergeParams) -> None:
        self._p = params

    def setup(self) -> None:
        self._candidates = counter("id_merge", "candidate_pairs_scored")

    def process(self, item: tuple[str, Iterable[tuple[str, str, dict[str, str]]]],
                ) -> Iterator[tuple[str, str]]:
        _, members = item
        rows = list(members)
        if len(rows) < 2:
            return
        norms = {rid: norm for _, rid, norm in rows}
        p = self._p
        n = 0
        for a, b in pairs_in_block([(sk, rid) for sk, rid, _ in rows],
                                   max_block_size=p.max_block_size, window=p.window):
            n += 1
            if score_pair(norms[a], norms[b]) >= p.threshold:
                yield a, b
        self._candidates.inc(n)


class _AttachId(beam.DoFn):
    """Joins each record with its component label and gives it the person's user id."""

    def __init__(self, params: IdMergeParams) -> None:
        self._p = params

    def setup(self) -> None:
        self._out = counter("id_merge", "records_out")
        self._persons = counter("id_merge", "persons")

    def process(self, item: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        rid, joined = item
        p = self._p
        labels = joined["label"]
        smallest = labels[0] if labels else rid
        uid = new_user_id(smallest, p.id_prefix)
        if smallest == rid:
            self._persons.inc()
        for record in joined["record"]:
            self._out.inc()
            yield {**record, p.user_id_column: uid}
            yield pvalue.TaggedOutput(MAPPING, {p.id_column: rid, p.user_id_column: uid})


class IdMerge(_StepComposite):
    """Add a stable ``user_id`` per person (see the module docstring for the graph).

    Outputs ``"output"`` (records + user id), ``"mapping"`` (record id → user id, the
    ``previous`` input of the next merge) and ``"dead_letter"`` (missing or duplicate record
    ids). ``rounds``: large/small-star rounds of the connected components.
    """

    STEP = IdMergeStep

    def __init__(self, params: IdMergeParams | None = None, *, rounds: int = 3,
                 label: str | None = None) -> None:
        params = params if params is not None else IdMergeParams()
        if not isinstance(params, IdMergeParams):
            raise InvalidArgument(f"IdMerge takes IdMergeParams, not {type(params).__name__}")
        if params.truth_column is not None:
            raise InvalidArgument("IdMerge: truth_column (quality stats) is for the table path")
        super().__init__(params, label)
        self.rounds = rounds
        self._components = ConnectedComponents(rounds=rounds)

    def expand(self, pcoll: beam.PCollection) -> dict[str, beam.PCollection]:
        p = self.params
        keyed = pcoll | "KeyById" >> beam.ParDo(_KeyById(p.id_column)).with_outputs(
            DEAD_LETTER, main="keyed")
        unique = (
            keyed["keyed"]
            | "GroupById" >> beam.GroupByKey()
            | "OnePerId" >> beam.ParDo(_OnePerId(p.id_column)).with_outputs(
                DEAD_LETTER, main="records")
        )
        records = unique["records"]
        matched = (
            records
            | "BlockKeys" >> beam.FlatMap(_block_members, p.role_map)
            | "GroupBlocks" >> beam.GroupByKey()
            | "ScoreBlocks" >> beam.ParDo(_ScoreBlock(p))
            | "DistinctPairs" >> beam.Distinct()
        )
        labels = matched | "Components" >> self._components
        out = (
            {"record": records, "label": labels}
            | "JoinLabels" >> beam.CoGroupByKey()
            | "AttachIds" >> beam.ParDo(_AttachId(p)).with_outputs(MAPPING, main=OUTPUT)
        )
        dead = (keyed[DEAD_LETTER], unique[DEAD_LETTER]) | "DeadLetters" >> beam.Flatten()
        return {OUTPUT: out[OUTPUT], MAPPING: out[MAPPING], DEAD_LETTER: dead}

    def display_data(self) -> dict[str, Any]:
        data = super().display_data()
        data["rounds"] = DisplayDataItem(self.rounds, label="Connected-component rounds")
        return data
