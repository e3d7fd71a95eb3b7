"""What a table version records about itself: schema, row count, null counts, fingerprint."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from headwater.tables.fingerprint import TableFingerprinter, type_family


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    return [
        {"name": f.name, "type": str(f.type), "family": type_family(f.type), "nullable": f.nullable}
        for f in schema
    ]


@dataclass(frozen=True)
class TableProfile:
    format: str
    rows: int
    schema: list[dict[str, Any]]
    null_counts: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""

    def stats(self) -> dict[str, Any]:
        """The part of a version's ``stats`` this profile fills (see :meth:`recorded`)."""
        return {
            "null_counts": dict(self.null_counts),
            "table_fingerprint": self.fingerprint,
            "format": self.format,
        }

    @classmethod
    def recorded(cls, *, rows: int | None, schema: list[dict[str, Any]] | None,
                 stats: dict[str, Any] | None, fingerprint: str | None) -> TableProfile:
        """The profile a committed version's row was written from (the inverse of how a run
        stores a profile: ``row_count``, ``schema``, ``table_fingerprint`` and :meth:`stats`)."""
        stats = stats or {}
        return cls(format=str(stats.get("format", "")), rows=int(rows or 0),
                   schema=list(schema or []), null_counts=dict(stats.get("null_counts", {})),
                   fingerprint=fingerprint or "")


class TableProfiler:
    """Streams record batches of every part into one profile."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._fp = TableFingerprinter()
        self._schema: pa.Schema | None = None
        self._nulls: dict[str, int] = {}

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._schema is None:
            self._schema = batch.schema
        else:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                self._schema = pa.unify_schemas(
                    [self._schema, batch.schema], promote_options="permissive"
                )
        for name in batch.schema.names:
            self._nulls[name] = self._nulls.get(name, 0) + batch.column(name).null_count
        self._fp.update(batch)

    def merge(self, other: TableProfiler) -> TableProfiler:
        """Fold the profile of other parts (profiled elsewhere, e.g. on another Beam worker)
        into this one: schemas unify, null counts add up, fingerprints merge. Returns ``self``.
        """
        if other._schema is not None:
            if self._schema is None:
                self._schema = other._schema
            else:
                with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):
                    self._schema = pa.unify_schemas(
                        [self._schema, other._schema], promote_options="permissive"
                    )
        for name, n in other._nulls.items():
            self._nulls[name] = self._nulls.get(name, 0) + n
        self._fp.merge(other._fp)
        return self

    def result(self) -> TableProfile:
        schema = self._schema or pa.schema([])
        return TableProfile(
            format=self.fmt,
            rows=self._fp.rows,
            schema=schema_to_json(schema),
            null_counts=dict(self._nulls),
            fingerprint=self._fp.hexdigest(),
        )


def profile_table(batches: Iterable[pa.RecordBatch | pa.Table], fmt: str = "arrow") -> TableProfile:
    prof = TableProfiler(fmt)
    for b in batches:
        prof.update(b)
    return prof.result()
