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
The IDs equal the table path's: a new person's ID is derived from the smallest record id of its
cluster (the component label *is* that id). With a ``previous`` mapping (the last version's
``mapping`` output), people keep their IDs: each record votes for its previous ID in its
component, votes are counted per (component, ID) with Beam, and only the resulting claims — one
small tuple per (person, previous ID) — are resolved together, by the same greedy rule as
:func:`headwater.steps.linkage.clustering.assign_stable_ids` (most votes first, ties to the
smallest record id; an ID goes to at most one person, and an old ID never to a new person).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.display import DisplayDataItem

from headwater.canonical import canonical_json
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
    return canonical_json(record)


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


def _resolve_claims(claims: list[tuple[str, str, int]], prev_ids: Iterable[str],
                    prefix: str) -> dict[str, Any]:
    """The table path's greedy rule on ``(label, previous id, votes)`` claims: which component
    keeps which previous ID, and the set of IDs a new person may not take."""
    owner: dict[str, str] = {}
    taken: set[str] = set()
    for _, label, uid in sorted((-n, label, uid) for label, uid, n in claims):
        if label not in owner and uid not in taken:
            owner[label] = uid
            taken.add(uid)
    return {"owner": owner, "taken": taken | set(prev_ids)}


class _AttachStableId(beam.DoFn):
    """Like :class:`_AttachId`, but a component keeps the previous ID it won."""

    def __init__(self, params: IdMergeParams) -> None:
        self._p = params

    def setup(self) -> None:
        self._out = counter("id_merge", "records_out")
        self._persons = counter("id_merge", "persons")
        self._kept = counter("id_merge", "ids_kept")

    def process(self, item: tuple[str, dict[str, list[Any]]], resolved: dict[str, Any]
                ) -> Iterator[Any]:
        rid, joined = item
        p = self._p
        labels = joined["label"]
        smallest = labels[0] if labels else rid
        uid = resolved["owner"].get(smallest)
        if uid is None:
            salt = 0
            uid = new_user_id(smallest, p.id_prefix)
            while uid in resolved["taken"]:
                salt += 1
                uid = new_user_id(smallest, p.id_prefix, salt)
        if smallest == rid:
            self._persons.inc()
            if smallest in resolved["owner"]:
                self._kept.inc()
        for record in joined["record"]:
            self._out.inc()
            yield {**record, p.user_id_column: uid}
            yield pvalue.TaggedOutput(MAPPING, {p.id_column: rid, p.user_id_column: uid})


def _votes(item: tuple[str, dict[str, list[Any]]]) -> Iterator[tuple[tuple[str, str], int]]:
    _, joined = item
    for label in joined["label"]:
        for uid in joined["prev"]:
            yield (label, uid), 1


class IdMerge(_StepComposite):
    """Add a stable ``user_id`` per person (see the module docstring for the graph).

    Outputs ``"output"`` (records + user id), ``"mapping"`` (record id → user id, the
    ``previous`` input of the next merge) and ``"dead_letter"`` (missing or duplicate record
    ids). ``rounds``: large/small-star rounds of the connected components.
    """

    STEP = IdMergeStep

    def __init__(self, params: IdMergeParams | None = None, *, rounds: int = 3,
                 previous: beam.PCollection | None = None, label: str | None = None) -> None:
        params = params if params is not None else IdMergeParams()
        if not isinstance(params, IdMergeParams):
            raise InvalidArgument(f"IdMerge takes IdMergeParams, not {type(params).__name__}")
        if params.truth_column is not None:
            raise InvalidArgument("IdMerge: truth_column (quality stats) is for the table path")
        super().__init__(params, label)
        self.rounds = rounds
        self.previous = previous
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
        joined = {"record": records, "label": labels} | "JoinLabels" >> beam.CoGroupByKey()
        if self.previous is None:
            out = joined | "AttachIds" >> beam.ParDo(_AttachId(p)).with_outputs(
                MAPPING, main=OUTPUT)
        else:
            out = self._attach_stable(joined, p)
        dead = (keyed[DEAD_LETTER], unique[DEAD_LETTER]) | "DeadLetters" >> beam.Flatten()
        return {OUTPUT: out[OUTPUT], MAPPING: out[MAPPING], DEAD_LETTER: dead}

    def _attach_stable(self, joined: beam.PCollection, p: IdMergeParams) -> Any:
        record_label = joined | "RecordLabels" >> beam.Map(
            lambda kv: (kv[0], kv[1]["label"][0] if kv[1]["label"] else kv[0]))
        prev = self.previous | "KeyPrevious" >> beam.Map(
            lambda m: (str(m[p.id_column]), str(m[p.user_id_column])))
        claims = (
            {"label": record_label, "prev": prev}
            | "JoinPrevious" >> beam.CoGroupByKey()
            | "Votes" >> beam.FlatMap(_votes)
            | "CountVotes" >> beam.CombinePerKey(sum)
            | "AsClaims" >> beam.Map(lambda kv: (kv[0][0], kv[0][1], kv[1]))
            | "GatherClaims" >> beam.combiners.ToList()
        )
        prev_ids = (prev | "PrevIds" >> beam.Values() | "DistinctPrevIds" >> beam.Distinct()
                    | "GatherPrevIds" >> beam.combiners.ToList())
        resolved = claims | "ResolveClaims" >> beam.Map(
            _resolve_claims, beam.pvalue.AsSingleton(prev_ids), p.id_prefix)
        return joined | "AttachStableIds" >> beam.ParDo(
            _AttachStableId(p), beam.pvalue.AsSingleton(resolved)).with_outputs(
                MAPPING, main=OUTPUT)

    def display_data(self) -> dict[str, Any]:
        data = super().display_data()
        data["rounds"] = DisplayDataItem(self.rounds, label="Connected-component rounds")
        data["previous"] = DisplayDataItem(self.previous is not None,
                                           label="Keeps previous user IDs")
        return data
