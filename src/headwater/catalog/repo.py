"""Catalog queries and writes that keep the invariants: gap-free numbers, atomic alias moves,
idempotent creation of namespaces, datasets and jobs under concurrency.

Functions take an open ``Session`` and never commit: the caller owns the transaction, so a
version row, its lineage edges and its outbox rows land together or not at all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater.catalog.models import (
    Alias,
    AliasMove,
    Dataset,
    Job,
    Namespace,
    Run,
    Version,
    VersionAnnotation,
    VersionParent,
    utcnow,
)
from headwater.errors import (
    AmbiguousReference,
    DatasetNotFound,
    InvalidArgument,
    VersionNotFound,
)
from headwater.refs import LATEST, DatasetName, VersionRef, check_alias


def _insert_ignore(session: Session, model: type[Any], values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    table = model.__table__
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise InvalidArgument(f"unsupported catalog database {dialect!r}")
    session.execute(stmt)


def ensure_namespace(session: Session, name: str) -> Namespace:
    ns = session.scalar(select(Namespace).where(Namespace.name == name))
    if ns is None:
        _insert_ignore(session, Namespace, {"name": name, "created_at": utcnow()})
        ns = session.scalars(select(Namespace).where(Namespace.name == name)).one()
    return ns


def find_dataset(session: Session, name: DatasetName) -> Dataset | None:
    return session.scalar(
        select(Dataset)
        .join(Namespace)
        .where(Namespace.name == name.namespace, Dataset.name == name.name)
    )


def get_dataset(session: Session, name: DatasetName) -> Dataset:
    ds = find_dataset(session, name)
    if ds is None:
        raise DatasetNotFound(
            f"no dataset named {name}{dataset_hint(session, name)}; `headwater ls` lists the "
            "datasets"
        )
    return ds


#: Names read to make a "did you mean": an error path, but bounded on a huge catalog.
SUGGEST_SCAN = 20_000


def close_names(word: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """The candidates a mistyped ``word`` most likely meant: difflib's close matches, then
    names that start with it (``prod`` for ``production`` is too short for difflib alone)."""
    names = sorted(set(candidates) - {word})
    scored = []
    for name in names:
        m = difflib.SequenceMatcher(None, word, name)
        if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6 and m.ratio() >= 0.6:
            scored.append((m.ratio(), name))
    scored.sort(key=lambda x: (-x[0], x[1]))
    # only the ones nearly as close as the best: users_split, not also users_clean
    found = [name for r, name in scored if r >= scored[0][0] - 0.1] if scored else []
    found += [c for c in names if word and c.startswith(word) and c not in found]
    return found[:n]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean a or b?)`` for a not-found message, or nothing when nothing is close."""
    found = close_names(word, candidates)
    return f" (did you mean {' or '.join(found)}?)" if found else ""


def dataset_hint(session: Session, name: DatasetName) -> str:
    """Why ``name`` is not found, as a suffix of the message: a close dataset name in its
    namespace, else the same name in another namespace, else a close namespace."""
    pairs = session.execute(
        select(Namespace.name, Dataset.name).join(Dataset.namespace).limit(SUGGEST_SCAN)
    ).all()
    namespaces = set(session.scalars(select(Namespace.name).limit(SUGGEST_SCAN)))
    if name.namespace not in namespaces:
        near = close_names(name.namespace, namespaces)
        if near:
            return f": no namespace {name.namespace!r} (did you mean {' or '.join(near)}?)"
    in_ns = [ds for ns, ds in pairs if ns == name.namespace]
    found = [f"{name.namespace}/{ds}" for ds in close_names(name.name, in_ns)]
    if not found:  # the right name in another namespace (``users`` for ``prod/users``)
        found = [f"{ns}/{ds}" for ns, ds in pairs if ds == name.name][:3]
    hint = f" (did you mean {' or '.join(found)}?)" if found else ""
    if namespaces and name.namespace not in namespaces:  # (an empty catalog has none at all)
        hint = f": no namespace {name.namespace!r}{hint}"
    return hint


def ensure_dataset(
    session: Session,
    name: DatasetName,
    *,
    type: str | None,
    default_type: str = "raw_data",
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Dataset:
    """The dataset ``name``, created with ``type`` (or ``default_type``) if it does not exist.

    ``type=None`` accepts whatever type an existing dataset has.
    """
    ds = find_dataset(session, name)
    if ds is None:
        ns = ensure_namespace(session, name.namespace)
        _insert_ignore(
            session,
            Dataset,
            {
                "namespace_id": ns.id,
                "name": name.name,
                "type": type or default_type,
                "description": description,
                "metadata": metadata or {},
                "version_count": 0,
                "created_at": utcnow(),
            },
        )
        ds = get_dataset(session, name)
    elif type and ds.type != type:
        raise InvalidArgument(
            f"dataset {name} has type {ds.type!r}; cannot log a version of type {type!r} to it"
        )
    return ds


def lock_dataset(session: Session, dataset_id: int) -> Dataset:
    """Lock the dataset row for the rest of the transaction (SQLite: BEGIN IMMEDIATE does)."""
    session.execute(select(Dataset.id).where(Dataset.id == dataset_id).with_for_update())
    ds = session.get(Dataset, dataset_id, populate_existing=True)
    if ds is None:
        raise DatasetNotFound(f"dataset id {dataset_id} vanished")
    return ds


def ensure_job(session: Session, namespace: str, name: str) -> Job:
    ns = ensure_namespace(session, namespace)
    job = session.scalar(select(Job).where(Job.namespace_id == ns.id, Job.name == name))
    if job is None:
        _insert_ignore(session, Job, {"namespace_id": ns.id, "name": name, "created_at": utcnow()})
        job = session.scalars(select(Job).where(Job.namespace_id == ns.id, Job.name == name)).one()
    return job


def latest_version(session: Session, dataset_id: int) -> Version | None:
    return session.scalar(
        select(Version)
        .where(Version.dataset_id == dataset_id, Version.state == "committed")
        .order_by(Version.number.desc())
        .limit(1)
    )


def next_number(session: Session, dataset: Dataset) -> int:
    """Hand out the next version number; call with the dataset row locked."""
    session.execute(
        update(Dataset)
        .where(Dataset.id == dataset.id)
        .values(version_count=Dataset.version_count + 1)
    )
    session.refresh(dataset, ["version_count"])
    return dataset.version_count


def resolve(session: Session, ref: VersionRef) -> Version:
    """The exact version a reference names, or a clear error."""
    ds = get_dataset(session, ref.dataset)
    base = select(Version).where(Version.dataset_id == ds.id, Version.state == "committed")
    kind = ref.kind
    if kind == "latest":
        v = latest_version(session, ds.id)
        if v is None:
            raise VersionNotFound(f"dataset {ref.dataset} has no versions yet")
        return v
    if kind == "number":
        v = session.scalar(base.where(Version.number == int(ref.selector)))
        if v is None:
            raise VersionNotFound(
                f"{ref} does not exist: {ref.dataset} has versions 1..{ds.version_count}"
            )
        return v
    if kind == "alias":
        v = session.scalar(
            select(Version)
            .join(Alias, Alias.version_id == Version.id)
            .where(Alias.dataset_id == ds.id, Alias.name == ref.selector)
        )
        if v is None:
            v = session.scalar(base.where(Version.label == ref.selector))
        if v is None:
            names = session.scalars(select(Alias.name).where(Alias.dataset_id == ds.id)).all()
            labels = session.scalars(
                base.where(Version.label.is_not(None)).with_only_columns(Version.label)
                .limit(SUGGEST_SCAN)
            ).all()
            hint = did_you_mean(ref.selector, [*names, *(x for x in labels if x)])
            raise VersionNotFound(
                f"{ref.dataset} has no alias or label {ref.selector!r}{hint}; "
                f"`headwater versions {ref.dataset}` shows them"
            )
        return v
    if ref.selector.isdigit():  # six or more digits: a version number if it exists
        v = session.scalar(base.where(Version.number == int(ref.selector)))
        if v is not None:
            return v
    matches = session.scalars(base.where(Version.digest.startswith(ref.selector)).limit(2)).all()
    if not matches:
        raise VersionNotFound(f"no version of {ref.dataset} has a digest starting {ref.selector}")
    if len(matches) > 1:
        raise AmbiguousReference(
            f"digest prefix {ref.selector} matches several versions of {ref.dataset}; "
            "give more characters"
        )
    return matches[0]


def aliases_of(session: Session, version_ids: Iterable[int]) -> dict[int, list[str]]:
    ids = list(version_ids)
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    for vid, name in session.execute(
        select(Alias.version_id, Alias.name).where(Alias.version_id.in_(ids)).order_by(Alias.name)
    ):
        out[vid].append(name)
    return out


def parents_of(session: Session, version_id: int) -> Sequence[Version]:
    return session.scalars(
        select(Version)
        .join(VersionParent, VersionParent.parent_id == Version.id)
        .where(VersionParent.child_id == version_id)
        .order_by(VersionParent.position)
    ).all()


def move_alias(session: Session, version: Version, alias: str, *, actor: str | None) -> int | None:
    """Point ``alias`` at ``version`` and record the move; returns the previous version id."""
    check_alias(alias)
    if alias == LATEST:
        raise InvalidArgument("'latest' is implicit (the highest version) and cannot be moved")
    lock_dataset(session, version.dataset_id)
    if label_taken(session, version.dataset_id, alias):
        raise InvalidArgument(
            f"{alias!r} is already a version label in this dataset; an alias of the same name "
            "would make references ambiguous"
        )
    current = session.scalar(
        select(Alias).where(Alias.dataset_id == version.dataset_id, Alias.name == alias)
    )
    previous = current.version_id if current else None
    if current is None:
        session.add(
            Alias(
                dataset_id=version.dataset_id,
                name=alias,
                version_id=version.id,
                updated_at=utcnow(),
            )
        )
    elif current.version_id != version.id:
        current.version_id = version.id
        current.updated_at = utcnow()
    else:
        return previous
    session.add(
        AliasMove(
            dataset_id=version.dataset_id,
            name=alias,
            from_version_id=previous,
            to_version_id=version.id,
            moved_at=utcnow(),
            actor=actor,
        )
    )
    return previous


def remove_alias(session: Session, dataset: Dataset, alias: str, *, actor: str | None) -> None:
    lock_dataset(session, dataset.id)
    current = session.scalar(
        select(Alias).where(Alias.dataset_id == dataset.id, Alias.name == alias)
    )
    if current is None:
        names = session.scalars(select(Alias.name).where(Alias.dataset_id == dataset.id)).all()
        raise VersionNotFound(
            f"{dataset.namespace.name}/{dataset.name} has no alias {alias!r}"
            f"{did_you_mean(alias, names)}"
        )
    session.add(
        AliasMove(
            dataset_id=dataset.id,
            name=alias,
            from_version_id=current.version_id,
            to_version_id=None,
            moved_at=utcnow(),
            actor=actor,
        )
    )
    session.delete(current)


def count_versions(session: Session, dataset_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Version).where(Version.dataset_id == dataset_id)
        )
        or 0
    )


def label_taken(session: Session, dataset_id: int, label: str) -> Version | None:
    return session.scalar(
        select(Version).where(Version.dataset_id == dataset_id, Version.label == label)
    )


def alias_exists(session: Session, dataset_id: int, name: str) -> bool:
    return session.scalar(
        select(Alias.id).where(Alias.dataset_id == dataset_id, Alias.name == name)
    ) is not None


def current_annotation(session: Session, version_id: int) -> VersionAnnotation | None:
    return session.scalar(
        select(VersionAnnotation).where(VersionAnnotation.version_id == version_id)
        .order_by(VersionAnnotation.id.desc()).limit(1)
    )


def find_run(session: Session, run_id: str) -> Run:
    """The run ``run_id`` names: its full id, or a prefix of one (``runs`` prints 13
    characters). Raises ``VersionNotFound`` or ``AmbiguousReference``."""
    run = session.get(Run, run_id)
    if run is not None:
        return run
    matches = session.scalars(
        select(Run).where(Run.id.startswith(run_id, autoescape=True)).limit(2)
    ).all() if len(run_id) >= 4 else []
    if not matches:
        raise VersionNotFound(f"no run with id {run_id}; `headwater runs` lists recent runs")
    if len(matches) > 1:
        raise AmbiguousReference(f"run id prefix {run_id} matches several runs; give more")
    return matches[0]
