"""The catalog reads a rebuild plan needs (headwater/rebuild/plan.py, docs/rebuild.md).

* :func:`latest_committed`: the latest committed version of each of a few datasets, one query;
* :func:`derived_elsewhere`: which versions some completed run outside a set of runs also output
  (a rebuild run whose output was identical to the old version deduplicates to it: the version is
  then vouched for by a run that did not read the bad input, and needs no further rebuild);
* :func:`state_reads`: which inputs of some runs were read as the step's own state (the previous
  ID mapping): as in catalog/status.py, staleness does not travel through them — a step
  supersedes its state — so a rebuild does not either;
* :func:`substitute_for`: what replaces a bad version when ``--with`` is not given — the target of
  an alias the affected runs read it through, if the alias now points elsewhere, else the latest
  committed version of its dataset that is not retracted (older than the bad one only if the bad
  one is retracted).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from headwater.catalog.models import Alias, Dataset, Namespace, Run, RunInput, RunOutput, Version
from headwater.catalog.status import retracted_ids

__all__ = ["derived_elsewhere", "latest_committed", "state_reads", "substitute_for"]


def latest_committed(session: Session, datasets: Iterable[str]) -> dict[str, Version]:
    """``{"ns/name": latest committed version}`` for the named datasets (absent: none)."""
    pairs = {tuple(d.split("/", 1)) for d in datasets if "/" in d}
    if not pairs:
        return {}
    named = or_(*(and_(Namespace.name == ns, Dataset.name == name) for ns, name in pairs))
    top = (select(Version.dataset_id, func.max(Version.number).label("n"))
           .join(Dataset, Version.dataset_id == Dataset.id)
           .join(Namespace, Dataset.namespace_id == Namespace.id)
           .where(Version.state == "committed", named)
           .group_by(Version.dataset_id).subquery())
    rows = session.scalars(select(Version).join(
        top, and_(Version.dataset_id == top.c.dataset_id, Version.number == top.c.n))).all()
    return {f"{v.dataset.namespace.name}/{v.dataset.name}": v for v in rows}


def derived_elsewhere(session: Session, version_ids: Iterable[int],
                      excluded_runs: Iterable[str]) -> set[int]:
    """The versions among ``version_ids`` that a COMPLETED run not in ``excluded_runs`` created
    or output (deduplicated)."""
    ids = sorted(set(version_ids))
    if not ids:
        return set()
    excluded = sorted(set(excluded_runs))
    outputs = (select(RunOutput.version_id).join(Run, Run.id == RunOutput.run_id)
               .where(RunOutput.version_id.in_(ids), Run.state == "COMPLETED"))
    created = (select(Version.id).join(Run, Run.id == Version.run_id)
               .where(Version.id.in_(ids), Run.state == "COMPLETED"))
    if excluded:
        outputs = outputs.where(RunOutput.run_id.not_in(excluded))
        created = created.where(Version.run_id.not_in(excluded))
    return {int(v) for v in session.scalars(outputs.union(created))}


def substitute_for(session: Session, bad: Version) -> Version | None:
    """The version a rebuild reads instead of ``bad`` when the user names none (see the module
    docstring); ``None`` when there is nothing else to read."""
    selectors = set(session.scalars(
        select(RunInput.selector).where(RunInput.version_id == bad.id,
                                        RunInput.selector.is_not(None))))
    if selectors:
        moved = session.scalars(
            select(Version).join(Alias, Alias.version_id == Version.id)
            .where(Alias.dataset_id == bad.dataset_id, Alias.name.in_(sorted(selectors)),
                   Alias.version_id != bad.id)
            .order_by(Version.number.desc())).all()
        bad_ids = retracted_ids(session, [v.id for v in moved])
        for v in moved:
            if v.id not in bad_ids:
                return v
    candidates = session.scalars(
        select(Version).where(Version.dataset_id == bad.dataset_id, Version.id != bad.id,
                              Version.state == "committed")
        .order_by(Version.number.desc()).limit(50)).all()
    bad_ids = retracted_ids(session, [v.id for v in candidates] + [bad.id])
    for v in candidates:
        if v.id not in bad_ids:
            # an older version only replaces a retracted one (a rollback the user asked for by
            # retracting); a version that is merely suspect is replaced by a newer one only
            return v if v.number > bad.number or bad.id in bad_ids else None
    return None


def state_reads(session: Session, run_ids: Iterable[str]) -> set[tuple[str, str]]:
    """``(version ref "ns/name@N", run id)`` of every state input among ``run_ids``' inputs."""
    ids = sorted(set(run_ids))
    out: set[tuple[str, str]] = set()
    for i in range(0, len(ids), 5000):
        rows = session.execute(
            select(RunInput.run_id, Namespace.name, Dataset.name, Version.number)
            .join(Version, Version.id == RunInput.version_id)
            .join(Dataset, Version.dataset_id == Dataset.id)
            .join(Namespace, Dataset.namespace_id == Namespace.id)
            .where(RunInput.run_id.in_(ids[i:i + 5000]), RunInput.is_state.is_(True)))
        out.update((f"{ns}/{name}@{n}", rid) for rid, ns, name, n in rows)
    return out
