"""Retractions and stale status: is a version fresh, stale or retracted, and why.

Why here: retraction entries and the staleness walk are queries over the lineage tables
(``run_inputs``, ``versions.run_id``), which belong in ``catalog/`` (ADR 0004).

* A retraction is an append-only entry (``version_retractions``); the newest entry of a version
  says whether it is retracted now, and ``unretract`` appends, so the history stays whole.
* Staleness is computed by ONE recursive query: the seeds are the versions retracted now and the
  versions with a cause of their own (an input reference that now resolves elsewhere, or a newer
  run of the producing job with other code or parameters); the recursion follows
  ``version -> run that read it -> version that run derived`` downstream. No per-node round trips.
  A version's derivation is the latest completed run that output it: a rerun with other inputs
  whose output was identical (deduplicated) derives it anew, as a rebuild does.
  State inputs (a step's own previous output) neither move nor propagate: the step supersedes them.

docs/retract-status.md describes the causes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from headwater.catalog.models import (
    Alias,
    Dataset,
    Namespace,
    RunInput,
    Version,
    VersionRetraction,
    utcnow,
)
from headwater.errors import InvalidArgument, RetractedInput
from headwater.refs import VersionRef

RETRACT = "retract"
UNRETRACT = "unretract"
MAX_REASON = 4000

__all__ = [
    "VersionStatus",
    "add_retraction",
    "record_inputs",
    "refuse_retracted",
    "retracted_ids",
    "retraction_history",
    "status_of",
]


# -- retractions ---------------------------------------------------------------------------------
def retracted_ids(session: Session, version_ids: Iterable[int]) -> set[int]:
    """The versions among ``version_ids`` whose newest retraction entry is a retract."""
    ids = list(set(version_ids))
    if not ids:
        return set()
    rows = session.execute(
        select(VersionRetraction.version_id, VersionRetraction.action)
        .where(VersionRetraction.version_id.in_(ids))
        .order_by(VersionRetraction.version_id, VersionRetraction.id)
    ).all()
    last: dict[int, str] = {}
    for vid, action in rows:
        last[vid] = action
    return {vid for vid, action in last.items() if action == RETRACT}


def add_retraction(
    session: Session, version: Version, action: str, *, reason: str, actor: str | None
) -> VersionRetraction:
    """Append a retract/unretract entry. Retracting a retracted version (or unretracting one
    that is not) is refused: the history would say something that did not change."""
    if action not in (RETRACT, UNRETRACT):
        raise InvalidArgument(f"action must be {RETRACT!r} or {UNRETRACT!r}, not {action!r}")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidArgument(f"{action} needs a reason (--reason TEXT): it is kept in the history")
    if len(reason) > MAX_REASON:
        raise InvalidArgument(f"reason is {len(reason)} characters; at most {MAX_REASON}")
    is_retracted = version.id in retracted_ids(session, [version.id])
    ref = f"{version.dataset.namespace.name}/{version.dataset.name}@{version.number}"
    if action == RETRACT and is_retracted:
        raise InvalidArgument(f"{ref} is already retracted; `headwater unretract` undoes it")
    if action == UNRETRACT and not is_retracted:
        raise InvalidArgument(f"{ref} is not retracted")
    entry = VersionRetraction(
        version_id=version.id, action=action, actor=actor, reason=reason, at=utcnow()
    )
    session.add(entry)
    session.flush()
    return entry


def retraction_history(session: Session, version_id: int) -> list[dict[str, Any]]:
    """Every retract/unretract entry of a version, oldest first."""
    rows = session.scalars(
        select(VersionRetraction)
        .where(VersionRetraction.version_id == version_id)
        .order_by(VersionRetraction.id)
    ).all()
    return [
        {"action": r.action, "actor": r.actor, "reason": r.reason, "at": r.at.isoformat()}
        for r in rows
    ]


def refuse_retracted(
    session: Session, versions: Sequence[Version], refs: Sequence[str], *, allow: bool
) -> None:
    """Raise :class:`RetractedInput` if an input is retracted and the run did not opt in."""
    if allow or not versions:
        return
    bad = retracted_ids(session, [v.id for v in versions])
    for v, ref in zip(versions, refs, strict=False):
        if v.id in bad:
            last = retraction_history(session, v.id)[-1]
            raise RetractedInput(
                f"input {ref} is {v.dataset.namespace.name}/{v.dataset.name}@{v.number}, "
                f"retracted by {last['actor'] or 'unknown'} at {last['at']}: {last['reason']} "
                "(pass allow_retracted=True to use it anyway)"
            )


def record_inputs(
    session: Session,
    run_id: str,
    inputs: Sequence[tuple[str, Version]],
    state: Sequence[tuple[str, Version]] = (),
    *,
    default_namespace: str,
) -> None:
    """The run -> input edges, each with the reference it was resolved from (once per version:
    the first reference naming it wins; a version that is both input and state is an input)."""
    seen: set[int] = set()
    for is_state, pairs in ((False, inputs), (True, state)):
        for ref, v in pairs:
            if v.id in seen:
                continue
            seen.add(v.id)
            try:
                selector: str | None = VersionRef.parse(
                    ref, default_namespace=default_namespace
                ).selector
            except ValueError:
                selector = None
            session.add(RunInput(run_id=run_id, version_id=v.id, ref=ref[:400],
                                 selector=selector, is_state=is_state))


# -- stale status --------------------------------------------------------------------------------
#: Versions with a cause of their own, one row per cause: (vid, cause, input_vid, detail).
_SEEDS = """
  SELECT vr.version_id AS vid, 'retracted' AS cause, vr.version_id AS input_vid,
         vr.reason AS detail
    FROM version_retractions vr
   WHERE vr.action = 'retract'
     AND vr.id = (SELECT max(v2.id) FROM version_retractions v2
                   WHERE v2.version_id = vr.version_id)
  UNION ALL
  SELECT p.vid, 'alias_moved', ri.version_id, ri.selector
    FROM producer p
    JOIN run_inputs ri ON ri.run_id = p.rid
    JOIN versions iv ON iv.id = ri.version_id
    JOIN aliases a ON a.dataset_id = iv.dataset_id AND a.name = ri.selector
   WHERE (ri.is_state IS NULL OR ri.is_state = :false) AND a.version_id <> iv.id
  UNION ALL
  SELECT p.vid, 'newer_input', ri.version_id, ri.selector
    FROM producer p
    JOIN run_inputs ri ON ri.run_id = p.rid
    JOIN versions iv ON iv.id = ri.version_id
   WHERE ri.selector = 'latest' AND (ri.is_state IS NULL OR ri.is_state = :false)
     AND EXISTS (SELECT 1 FROM versions nv WHERE nv.dataset_id = iv.dataset_id
                    AND nv.state = 'committed' AND nv.number > iv.number)
  UNION ALL
  SELECT p.vid, CASE WHEN COALESCE(r.code_fingerprint, '') <> COALESCE(n.code_fingerprint, '')
                    THEN 'code_changed' ELSE 'params_changed' END,
         NULL, n.id
    FROM producer p
    JOIN runs r ON r.id = p.rid
    JOIN runs n ON n.id = (SELECT r2.id FROM runs r2
                            WHERE r2.job_id = r.job_id AND r2.state = 'COMPLETED'
                            ORDER BY r2.started_at DESC, r2.id DESC LIMIT 1)
   WHERE n.id <> r.id
     AND (COALESCE(r.code_fingerprint, '') <> COALESCE(n.code_fingerprint, '')
          OR {params_differ})
"""

#: Each version's derivation: the latest completed run that output it (``run_outputs``; run ids
#: are UUIDv7, so the greatest is the latest: a rerun whose output was identical to the version,
#: deduplicated, derives it again, e.g. the rebuild of a step whose result did not change,
#: docs/rebuild.md), else the run that created it. One hash aggregate, no per-version lookup.
_PRODUCER = """
  SELECT v.id, COALESCE(o.rid, v.run_id)
    FROM versions v
    LEFT JOIN (SELECT ro.version_id AS vid, max(ro.run_id) AS rid
                 FROM run_outputs ro JOIN runs r ON r.id = ro.run_id
                WHERE r.state = 'COMPLETED' GROUP BY ro.version_id) o ON o.vid = v.id
   WHERE COALESCE(o.rid, v.run_id) IS NOT NULL
"""

#: Downstream closure of the seeds: (vid, root, via). ``root`` is the retracted version a row
#: descends from (NULL for other causes); ``via`` the direct input it came through (NULL: a seed).
#: The edges are those catalog/graph.py walks downstream: input -> the versions created by the
#: runs that read it (not as state), and parent -> child (``version_parents``). They are one
#: non-recursive CTE so the recursive step has one recursive reference (PostgreSQL's rule) and
#: a plain hash join (a LATERAL per frontier row was 5x slower in bench/status.py).
_STATUS = """
WITH RECURSIVE producer(vid, rid) AS MATERIALIZED ({producer}),
seeds(vid, cause, input_vid, detail) AS ({seeds}),
edges(src, dst) AS MATERIALIZED (
  SELECT ri.version_id, p.vid
    FROM run_inputs ri JOIN producer p ON p.rid = ri.run_id
   WHERE (ri.is_state IS NULL OR ri.is_state = :false) AND p.vid <> ri.version_id
  UNION ALL
  SELECT vp.parent_id, vp.child_id FROM version_parents vp
),
down(vid, root, via) AS (
  SELECT DISTINCT vid, CASE WHEN cause = 'retracted' THEN vid END, CAST(NULL AS INTEGER)
    FROM seeds
  UNION
  SELECT e.dst, d.root, d.vid FROM down d JOIN edges e ON e.src = d.vid
)
SELECT 0 AS kind, vid, cause, input_vid, CAST(detail AS TEXT) AS detail, NULL AS via
  FROM seeds
UNION ALL
SELECT 1, vid, NULL, root, NULL, via FROM down WHERE via IS NOT NULL
"""


@dataclass
class VersionStatus:
    """A version's status (``fresh``, ``stale``, ``retracted``) and the causes."""

    ref: str
    id: int
    status: str = "fresh"
    causes: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime | None = None
    #: aliases pointing at this version: flagged with it when it is stale or retracted
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "status": self.status, "causes": self.causes,
                "aliases": self.aliases}


def _params_differ(session: Session) -> str:
    # jsonb compares by value on PostgreSQL; SQLite compares the stored JSON text
    if session.get_bind().dialect.name == "postgresql":
        return "r.params::jsonb IS DISTINCT FROM n.params::jsonb"
    return "COALESCE(CAST(r.params AS TEXT), '') <> COALESCE(CAST(n.params AS TEXT), '')"


def _causes(session: Session) -> dict[int, list[tuple[str, int | None, str | None]]]:
    """vid -> [(cause, version id, detail)] for every non-fresh version (one statement)."""
    sql = _STATUS.format(producer=_PRODUCER,
                         seeds=_SEEDS.format(params_differ=_params_differ(session)))
    if session.get_bind().dialect.name == "postgresql":
        # The recursive CTE's row estimate is huge (millions), which triggers PostgreSQL's JIT:
        # compiling it took 1.2 s of a 1.4 s query over 10,000 datasets (bench/status.py,
        # EXPLAIN ANALYZE); the query itself runs in ~0.2 s. Off for this transaction only.
        session.execute(text("SET LOCAL jit = off"))
    out: dict[int, list[tuple[str, int | None, str | None]]] = {}
    stmt = text(sql).bindparams(bindparam("false", value=False))
    for kind, vid, cause, input_vid, detail, via in session.execute(stmt):
        lst = out.setdefault(vid, [])
        if kind == 0:
            lst.append((cause, input_vid, detail))
        elif input_vid is not None:  # descends from a retracted version
            lst.append(("input_retracted", input_vid, None if via == input_vid else str(via)))
        else:
            lst.append(("upstream_stale", via, None))
    return out


def status_of(
    session: Session,
    *,
    namespace: str | None = None,
    version_ids: Sequence[int] | None = None,
    all_versions: bool = False,
) -> list[VersionStatus]:
    """Status of the latest version of every dataset (of ``namespace``), every version with
    ``all_versions``, or exactly ``version_ids``."""
    causes = _causes(session)
    q = (
        select(Version.id, Namespace.name, Dataset.name, Version.number, Version.created_at)
        .join(Dataset, Version.dataset_id == Dataset.id)
        .join(Namespace, Dataset.namespace_id == Namespace.id)
        .where(Version.state == "committed")
        .order_by(Namespace.name, Dataset.name, Version.number)
    )
    if version_ids is not None:
        q = q.where(Version.id.in_(list(version_ids)))
    if namespace is not None:
        q = q.where(Namespace.name == namespace)
    rows = session.execute(q).all()
    if version_ids is None and not all_versions:
        latest: dict[tuple[str, str], Any] = {}
        for row in rows:
            latest[(row[1], row[2])] = row
        rows = list(latest.values())
    wanted = {int(r[0]) for r in rows}
    named = {i for vid in wanted for _, i, _ in causes.get(vid, ()) if i is not None}
    named |= {int(d) for vid in wanted for c, _, d in causes.get(vid, ())
              if c == "input_retracted" and d is not None}
    refs = _refs(session, named)
    aliases: dict[int, list[str]] = {}
    for i in range(0, len(wanted), 5000):
        chunk = sorted(wanted)[i:i + 5000]
        for vid, name in session.execute(select(Alias.version_id, Alias.name)
                                         .where(Alias.version_id.in_(chunk))
                                         .order_by(Alias.name)):
            aliases.setdefault(vid, []).append(name)
    out = []
    for vid, ns, ds, number, created_at in rows:
        st = VersionStatus(ref=f"{ns}/{ds}@{number}", id=vid, created_at=created_at,
                           aliases=aliases.get(vid, []))
        seen: set[tuple[str, str | None, str | None]] = set()
        for cause, other, detail in causes.get(vid, ()):
            if cause == "retracted":
                st.status = "retracted"
                item: dict[str, Any] = {"cause": cause, "reason": detail}
            elif cause in ("code_changed", "params_changed"):
                item = {"cause": cause, "newer_run": detail}
            elif cause == "input_retracted":
                item = {"cause": cause, "input": refs.get(other or 0)}
                if detail is not None:
                    item["via"] = refs.get(int(detail))
            elif cause in ("alias_moved", "newer_input"):
                item = {"cause": cause, "input": refs.get(other or 0), "selector": detail}
            else:
                item = {"cause": cause, "input": refs.get(other or 0)}
            key = (cause, item.get("input"), item.get("via"))
            if key in seen:
                continue
            seen.add(key)
            st.causes.append(item)
        if st.causes and st.status != "retracted":
            st.status = "stale"
        out.append(st)
    return out


def _refs(session: Session, ids: Iterable[int]) -> dict[int, str]:
    ids = list(set(ids))
    if not ids:
        return {}
    rows = session.execute(
        select(Version.id, Namespace.name, Dataset.name, Version.number)
        .join(Dataset, Version.dataset_id == Dataset.id)
        .join(Namespace, Dataset.namespace_id == Namespace.id)
        .where(Version.id.in_(ids))
    ).all()
    return {vid: f"{ns}/{ds}@{n}" for vid, ns, ds, n in rows}


def retracted_aliases(session: Session, dataset_ids: Iterable[int]) -> set[tuple[int, str]]:
    """(dataset id, alias) pairs whose alias points at a retracted version."""
    ids = list(set(dataset_ids))
    if not ids:
        return set()
    rows = session.execute(
        select(Alias.dataset_id, Alias.name, Alias.version_id).where(Alias.dataset_id.in_(ids))
    ).all()
    bad = retracted_ids(session, [r[2] for r in rows])
    return {(d, n) for d, n, vid in rows if vid in bad}
