"""Differences between two versions: files always, rows and cells for keyed tables.

File diffs merge the two path-sorted manifests in one pass. Row diffs need a key (given, or the
one declared on the dataset when it was logged with ``key=``); they report counts of added,
removed and changed rows, schema changes, and a bounded sample of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from headwater.errors import InvalidArgument
from headwater.store.checkout import iter_manifest
from headwater.store.manifest import ManifestEntry
from headwater.version import VersionInfo

if TYPE_CHECKING:
    from headwater.api import Catalog

SAMPLE = 5


@dataclass
class RowDiff:
    key: list[str]
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    columns_retyped: dict[str, tuple[str, str]] = field(default_factory=dict)
    cells_changed: dict[str, int] = field(default_factory=dict)
    sample_added: list[dict[str, Any]] = field(default_factory=list)
    sample_removed: list[dict[str, Any]] = field(default_factory=list)
    sample_changed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class VersionDiff:
    a: str
    b: str
    added: list[ManifestEntry] = field(default_factory=list)
    removed: list[ManifestEntry] = field(default_factory=list)
    changed: list[tuple[ManifestEntry, ManifestEntry]] = field(default_factory=list)
    unchanged: int = 0
    rows: RowDiff | None = None
    #: two tables with no key given or declared: a column unique and never null in both, which
    #: ``--key`` would make a row diff of (None when there is none)
    suggested_key: str | None = None
    #: why no row diff was made (a key that is not unique, not a column), when the caller asked
    #: for the file and schema diff anyway (``strict=False``)
    rows_error: str | None = None
    #: columns added / removed between the two tables' schemas, when ``rows`` could not be made
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "a": self.a,
            "b": self.b,
            "files": {
                "added": [e.to_json() for e in self.added],
                "removed": [e.to_json() for e in self.removed],
                "changed": [
                    {"path": x.path, "old": x.to_json(), "new": y.to_json()}
                    for x, y in self.changed
                ],
                "unchanged": self.unchanged,
            },
        }
        if self.rows is not None:
            out["rows"] = _jsonable(self.rows.__dict__)
        if self.suggested_key is not None:
            out["suggested_key"] = self.suggested_key
        if self.rows_error is not None:
            out["rows_error"] = self.rows_error
            out["columns_added"], out["columns_removed"] = self.columns_added, self.columns_removed
        return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def diff_manifests(
    a: Iterable[ManifestEntry], b: Iterable[ManifestEntry], out: VersionDiff
) -> None:
    """Merge two path-sorted streams of entries in one pass; memory holds only the differences."""
    ia, ib = iter(a), iter(b)
    x, y = next(ia, None), next(ib, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x.path < y.path):
            out.removed.append(x)  # type: ignore[arg-type]  # x is not None here
            x = next(ia, None)
        elif x is None or y.path < x.path:
            out.added.append(y)
            y = next(ib, None)
        else:
            if x.digest == y.digest and x.size == y.size and x.source == y.source:
                out.unchanged += 1
            else:
                out.changed.append((x, y))
            x, y = next(ia, None), next(ib, None)


def diff_versions(
    cat: Catalog, a: VersionInfo, b: VersionInfo, *, key: Sequence[str] | None = None,
    sample: int = SAMPLE, strict: bool = True,
) -> VersionDiff:
    """Files always; rows when both are tables with a key (``sample``: rows of each kind kept).

    ``strict=False``: a key that cannot make a row diff (not unique, not a column) is reported
    in ``rows_error`` with the schema change, instead of raising and losing the file diff.
    """
    out = VersionDiff(a.ref, b.ref)
    diff_manifests(_stream(cat, a), _stream(cat, b), out)
    key_cols = list(key) if key else (b.metadata.get("key") or a.metadata.get("key"))
    if a.kind == "table" and b.kind == "table" and key_cols:
        try:
            out.rows = diff_tables(
                cat.read_table(a).to_pandas(), cat.read_table(b).to_pandas(), list(key_cols),
                sample=sample,
            )
        except InvalidArgument as exc:
            if strict:
                raise
            old_cols = [c["name"] for c in a.schema or []]
            new_cols = [c["name"] for c in b.schema or []]
            out.rows_error = str(exc)
            out.columns_added = [c for c in new_cols if c not in old_cols]
            out.columns_removed = [c for c in old_cols if c not in new_cols]
    elif a.kind == "table" and b.kind == "table" and not out.identical:
        out.suggested_key = likely_key(cat.read_table(a).to_pandas(), cat.read_table(b).to_pandas())
    elif key and not (a.kind == "table" and b.kind == "table"):
        raise InvalidArgument(
            f"a row diff needs two table versions; {a.ref} is {a.kind}, {b.ref} is {b.kind}"
        )
    return out


def _stream(cat: Catalog, v: VersionInfo) -> Iterator[ManifestEntry]:
    return iter_manifest(cat.store_for(v.store_url), v.digest, context=f"manifest of {v.ref}")


def likely_key(old: pd.DataFrame, new: pd.DataFrame) -> str | None:
    """A column unique and never null in both tables: an ``id``-like name first, then the
    leftmost. Why: without a key a table diff is only "file changed"; naming a key that works
    turns it into rows and cells."""
    shared = [c for c in new.columns if c in old.columns]
    unique = [c for c in shared
              if all(df[c].notna().all() and df[c].is_unique for df in (old, new))]
    named = [c for c in unique if str(c).lower() in ("id", "key") or str(c).lower().endswith(
        ("_id", "id", "_key", "uuid"))]
    return str((named or unique)[0]) if unique else None


def diff_tables(
    old: pd.DataFrame, new: pd.DataFrame, key: list[str], *, sample: int = SAMPLE
) -> RowDiff:
    for name, df in (("old", old), ("new", new)):
        missing = [k for k in key if k not in df.columns]
        if missing:
            raise InvalidArgument(f"key column(s) {missing} not in the {name} table")
        if df.duplicated(subset=key).any():
            raise InvalidArgument(f"key {key} is not unique in the {name} table")
    rd = RowDiff(key=key)
    rd.columns_added = [c for c in new.columns if c not in old.columns]
    rd.columns_removed = [c for c in old.columns if c not in new.columns]
    shared = [c for c in new.columns if c in old.columns and c not in key]
    rd.columns_retyped = {
        c: (str(old[c].dtype), str(new[c].dtype))
        for c in shared
        if str(old[c].dtype) != str(new[c].dtype)
    }
    o = old.set_index(key)
    n = new.set_index(key)
    added_idx = n.index.difference(o.index)
    removed_idx = o.index.difference(n.index)
    common = n.index.intersection(o.index)
    rd.added, rd.removed = len(added_idx), len(removed_idx)
    rd.sample_added = n.loc[added_idx[:sample]].reset_index().to_dict("records")
    rd.sample_removed = o.loc[removed_idx[:sample]].reset_index().to_dict("records")
    oc, nc = o.loc[common, shared], n.loc[common, shared]
    both_null = oc.isna() & nc.isna()
    differs = (oc.astype(object) != nc.astype(object)) & ~both_null
    changed_rows = differs.any(axis=1)
    rd.changed = int(changed_rows.sum())
    rd.unchanged = len(common) - rd.changed
    rd.cells_changed = {c: int(differs[c].sum()) for c in shared if differs[c].any()}
    for idx in list(changed_rows[changed_rows].index[:sample]):
        cols = [c for c in shared if differs.at[idx, c]]
        keyvals = idx if isinstance(idx, tuple) else (idx,)
        rd.sample_changed.append(
            {
                "key": dict(zip(key, keyvals, strict=True)),
                "cells": {c: [oc.at[idx, c], nc.at[idx, c]] for c in cols},
            }
        )
    return rd
