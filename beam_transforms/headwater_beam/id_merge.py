"""``IdMerge``: entity resolution as a Beam graph that scales past one machine's memory.

Why this shape: the table path (``IdMergeStep.run_table``) holds every record in one process.
Here each stage of :mod:`headwater.steps.linkage` runs where the data is::

    records ─(record id)─GroupByKey─ drop missing/duplicate ids (dead letter)
      ─Map(normalize_record)
      ─GroupByKey((role, value)) value counts + people sharing it → placeholders dropped, TF
      ─GroupByKey(hash bucket of record id) pseudo-random pairs → level counts → u
      ─FlatMap(rule_keys)─GroupByKey(block key)─FlatMap(pairs_in_block → gamma)─Distinct
      ─CombineGlobally(pattern counts, per rule and overall) → fit_model (EM) ── model (side input)
      ─Map(score_pattern ≥ threshold, not vetoed)                          matched pairs
      ─ConnectedComponents (large/small-star rounds + exact residual)        (record id, label)
      ─GroupByKey(label) consistent_clusters (no chaining through a hub)
      ─CoGroupByKey(record id)─ user id = new_user_id(smallest record id of the person)

Normalised records travel inside their blocks, so a pair is compared where its block is grouped
(no join back to the records); a pair found in several blocks is compared in each and
de-duplicated after, which gives the same patterns because comparison is deterministic.
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
from headwater.steps.linkage.blocking import pairs_in_block, rule_keys, sort_key
from headwater.steps.linkage.clustering import consistent_clusters, new_user_id
from headwater.steps.linkage.model import (
    SHARED_ROLES,
    FSModel,
    count_levels,
    fit_model,
    gamma,
    random_bucket_count,
    score_pattern,
    training_sessions,
    vetoed,
)
from headwater.steps.linkage.normalize import normalize_record
from headwater.steps.linkage.table import model_roles, rid_bucket, signature
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


Profile = tuple[dict[str, str], dict[str, int]]  # (normalised record, value counts)


def _value_items(item: tuple[str, dict[str, str]], roles: tuple[str, ...]
                 ) -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    rid, norm = item
    sig = signature(norm)
    for r in roles:
        v = norm.get(r)
        if v:
            yield (r, v), (rid, sig)


def _value_stats(item: tuple[tuple[str, str], Iterable[tuple[str, str]]], people: int,
                 ) -> Iterator[tuple[str, tuple[str, int, bool]]]:
    (role, _), holders = item
    rows = list(holders)
    shared = role in SHARED_ROLES and len({sig for _, sig in rows}) >= people
    for rid, _ in rows:
        yield rid, (role, len(rows), shared)


def _profile(item: tuple[str, dict[str, list[Any]]]) -> Iterator[tuple[str, Profile]]:
    rid, joined = item
    for norm in joined["norm"]:
        clean = dict(norm)
        counts: dict[str, int] = {}
        for role, count, shared in joined["stats"]:
            if shared:
                clean.pop(role, None)
            else:
                counts[role] = count
        yield rid, (clean, counts)


def _bucketed(item: tuple[str, Profile], n: int, target: int
              ) -> tuple[int, tuple[str, dict[str, str]]]:
    rid, (norm, _) = item
    return rid_bucket(rid, random_bucket_count(n, target)), (rid, norm)


def _bucket_levels(item: tuple[int, Iterable[tuple[str, dict[str, str]]]],
                   roles: tuple[str, ...]) -> Iterator[tuple[int, ...]]:
    rows = sorted(item[1], key=lambda r: r[0])
    for i, (_, a) in enumerate(rows):
        for _, b in rows[i + 1:]:
            yield gamma(a, b, roles)


class _CountDict(beam.CombineFn):  # type: ignore[misc]
    """Counts of hashable items (comparison patterns or (role, level) pairs) as a dict."""

    def __init__(self, levels: bool = False) -> None:
        self._levels = levels

    def create_accumulator(self) -> dict[Any, int]:
        return {}

    def add_input(self, acc: dict[Any, int], pat: tuple[int, ...]) -> dict[Any, int]:
        keys = count_levels([pat]) if self._levels else {pat: 1}
        for k, v in keys.items():
            acc[k] = acc.get(k, 0) + v
        return acc

    def merge_accumulators(self, accs: Iterable[dict[Any, int]]) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for acc in accs:
            for k, v in acc.items():
                out[k] = out.get(k, 0) + v
        return out

    def extract_output(self, acc: dict[Any, int]) -> dict[Any, int]:
        return acc


def _block_members(item: tuple[str, Profile], params: IdMergeParams,
                   ) -> Iterator[tuple[str, tuple[str, str, dict[str, str], dict[str, int]]]]:
    rid, (norm, counts) = item
    sk = sort_key(norm)
    for key in rule_keys(norm, params.rules):
        yield key, (sk, rid, norm, counts)


Candidate = tuple[str, str, tuple[int, ...], tuple[int, ...]]  # a, b, pattern, counts of a
SESSION = "session"  # (rule no, pattern) of every pair a rule yields: the EM sessions


class _CompareBlock(beam.DoFn):
    """Candidate pairs of one block with their comparison pattern, ``a < b``."""

    def __init__(self, params: IdMergeParams) -> None:
        self._p = params
        self._roles = model_roles(params.role_map)

    def setup(self) -> None:
        self._candidates = counter("id_merge", "candidate_pairs_compared")

    def process(self, item: tuple[str, Iterable[tuple[str, str, dict[str, str],
                                                     dict[str, int]]]]) -> Iterator[Candidate]:
        key, members = item
        rows = list(members)
        if len(rows) < 2:
            return
        rule = self._p.rules[int(key.split(":", 1)[0])]
        prof = {rid: (norm, counts) for _, rid, norm, counts in rows}
        p = self._p
        n = 0
        for a, b in pairs_in_block([(sk, rid) for sk, rid, _, _ in rows],
                                   max_block_size=p.max_block_size, window=p.window,
                                   sorted_window=rule.sorted_window):
            n += 1
            (na, ca), (nb, _) = prof[a], prof[b]
            pat = gamma(na, nb, self._roles)
            yield a, b, pat, tuple(ca.get(r, 0) for r in self._roles)
            yield pvalue.TaggedOutput(SESSION, (self._rule_no(key), pat))
        self._candidates.inc(n)

    @staticmethod
    def _rule_no(key: str) -> int:
        return int(key.split(":", 1)[0])


def _score(cand: Candidate, model: FSModel, threshold: float
           ) -> Iterator[tuple[str, str, float]]:
    a, b, pat, counts = cand
    score = score_pattern(model, pat, counts)
    if score >= threshold and not vetoed(pat, model.roles):
        yield a, b, score


def _edge_by_vertex(e: tuple[str, str, float]) -> tuple[str, tuple[str, str, float]]:
    return e[0], e


def _split_component(item: tuple[str, dict[str, list[Any]]], model: FSModel,
                     params: IdMergeParams) -> Iterator[tuple[str, str]]:
    """The table path's consistency split of one component: ``(record id, new label)``."""
    label, joined = item
    members = sorted(joined["member"], key=lambda m: m[0])
    ids = [m[0] for m in members]
    if len(ids) <= 2 or not params.consistency or len(ids) > params.max_component:
        for rid in ids:
            yield rid, label
        return
    cannot = []
    for i, (x, nx, cx) in enumerate(members):
        for y, ny, _ in members[i + 1:]:
            pat = gamma(nx, ny, model.roles)
            score = score_pattern(model, pat, [cx.get(r, 0) for r in model.roles])
            if score < params.cannot_link_below or vetoed(pat, model.roles):
                cannot.append((x, y))
    for part in consistent_clusters(ids, [(s, a, b) for a, b, s in joined["edge"]], cannot):
        for rid in part:
            yield rid, part[0]


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
        roles = model_roles(p.role_map)
        n = records | "CountRecords" >> beam.combiners.Count.Globally()
        norm = records | "Normalise" >> beam.Map(
            lambda kv: (kv[0], normalize_record(kv[1], p.role_map)))
        value_stats = (
            norm
            | "Values" >> beam.FlatMap(_value_items, roles)
            | "GroupValues" >> beam.GroupByKey()
            | "ValueStats" >> beam.FlatMap(_value_stats, p.placeholder_people)
        )
        profiles = ({"norm": norm, "stats": value_stats} | "JoinValueStats" >> beam.CoGroupByKey()
                    | "Profiles" >> beam.FlatMap(_profile))
        random_levels = (
            profiles
            | "RandomBuckets" >> beam.Map(_bucketed, pvalue.AsSingleton(n), p.random_pairs)
            | "GroupBuckets" >> beam.GroupByKey()
            | "RandomPairs" >> beam.FlatMap(_bucket_levels, roles)
            | "CountLevels" >> beam.CombineGlobally(_CountDict(levels=True))
        )
        compared = (
            profiles
            | "BlockKeys" >> beam.FlatMap(_block_members, p)
            | "GroupBlocks" >> beam.GroupByKey()
            | "CompareBlocks" >> beam.ParDo(_CompareBlock(p)).with_outputs(SESSION, main="pairs")
        )
        candidates = compared["pairs"] | "DistinctPairs" >> beam.Distinct()
        sessions = training_sessions([r.roles for r in p.rules])
        session_patterns = compared[SESSION] | "CountSessionPatterns" >> beam.CombineGlobally(
            _CountDict())
        model = (
            candidates
            | "Patterns" >> beam.Map(lambda c: c[2])
            | "CountPatterns" >> beam.CombineGlobally(_CountDict())
            | "FitModel" >> beam.Map(
                lambda pats, sess, levels, count: fit_model(
                    roles, sess, sessions, pats, levels, count,
                    max_iterations=p.em_iterations, tf=p.tf_adjust),
                pvalue.AsSingleton(session_patterns), pvalue.AsSingleton(random_levels),
                pvalue.AsSingleton(n))
        )
        edges = candidates | "Score" >> beam.FlatMap(
            _score, pvalue.AsSingleton(model), float(p.threshold))
        components = (edges | "EdgePairs" >> beam.Map(lambda e: (e[0], e[1]))
                      | "Components" >> self._components)
        edge_labels = (
            {"edge": edges | "EdgeByVertex" >> beam.Map(_edge_by_vertex), "label": components}
            | "JoinEdgeLabels" >> beam.CoGroupByKey()
            | "EdgeOfLabel" >> beam.FlatMap(
                lambda kv: [(lab, e) for lab in kv[1]["label"] for e in kv[1]["edge"]])
        )
        member_labels = (
            {"profile": profiles, "label": components}
            | "JoinMemberLabels" >> beam.CoGroupByKey()
            | "MemberOfLabel" >> beam.FlatMap(
                lambda kv: [(lab, (kv[0], pr[0], pr[1])) for lab in kv[1]["label"]
                            for pr in kv[1]["profile"]])
        )
        labels = (
            {"member": member_labels, "edge": edge_labels}
            | "GroupComponents" >> beam.CoGroupByKey()
            | "SplitComponents" >> beam.FlatMap(_split_component, pvalue.AsSingleton(model), p)
        )
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
