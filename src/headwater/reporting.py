"""The catalog side of reports, labels' companions (descriptions, properties) and their history.

Mixed into :class:`headwater.api.Catalog`. Payload building is in :mod:`headwater.reports`;
here payloads are written to the store (content-addressed) and their rows to the catalog, in that
order, so a row never points at a missing object (a crash in between leaves an orphan for gc).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from headwater.catalog import repo, stores
from headwater.catalog import reports as catalog_reports
from headwater.catalog.models import Dataset, Report, Version, VersionAnnotation, utcnow
from headwater.errors import InvalidArgument, VersionNotFound
from headwater.reports import (
    DEFAULT_MAX_BYTES,
    ReportInfo,
    ReportPayload,
    build_payload,
    check_size,
)
from headwater.store.objects import ObjectStore

if TYPE_CHECKING:
    from headwater.version import VersionInfo


@dataclass(frozen=True)
class StoredReport:
    """A payload whose objects are already in the store, ready for its catalog row."""

    payload: ReportPayload
    digest: str | None
    body: dict[str, Any]
    store_url: str


def max_report_bytes() -> int:
    raw = os.environ.get("HEADWATER_REPORT_MAX_BYTES")
    return int(raw) if raw and raw.isdigit() else DEFAULT_MAX_BYTES


def store_payload(store: ObjectStore, payload: ReportPayload, *, max_bytes: int | None = None
                  ) -> StoredReport:
    check_size(payload, max_bytes if max_bytes is not None else max_report_bytes())
    digest = store.put_bytes(payload.blob) if payload.blob is not None else None
    body = dict(payload.body)
    if payload.extra_blobs:
        digests = [store.put_bytes(blob) for blob, _ in payload.extra_blobs]
        items = []
        for item in body.get("items", []):
            item = dict(item)
            if "blob_index" in item:
                item["digest"] = digests[item.pop("blob_index")]
            items.append(item)
        body["items"] = items
    return StoredReport(payload, digest, body, store.url)


def insert_report(session: Session, version_id: int, stored: StoredReport, *,
                  run_id: str | None) -> Report:
    p = stored.payload
    row = Report(version_id=version_id, run_id=run_id, name=p.name, kind=p.kind,
                 digest=stored.digest,
                 store_url=stores.recorded(stored.store_url, stores.catalog_url_of(session)),
                 media_type=p.media_type,
                 size=p.size, body=stored.body, created_at=utcnow())
    session.add(row)
    return row


def report_info(row: Report, ref: str) -> ReportInfo:
    return ReportInfo(id=row.id, version=ref, name=row.name, kind=row.kind, body=row.body or {},
                      digest=row.digest, media_type=row.media_type, size=row.size,
                      created_at=row.created_at, run_id=row.run_id)


def report_digests(body: Mapping[str, Any], digest: str | None) -> list[str]:
    """Every object a report row keeps alive (for gc)."""
    out = [digest] if digest else []
    out += [i["digest"] for i in body.get("items", []) if isinstance(i, Mapping) and
            i.get("digest")]
    return out


class ReportsMixin:
    """Reports, descriptions and properties on versions (``Catalog`` methods)."""

    if TYPE_CHECKING:
        @property
        def store(self) -> ObjectStore: ...
        def session(self) -> AbstractContextManager[Session]: ...
        def _resolve_row(self, s: Session, ref: str) -> Version: ...
        def store_for(self, url: str) -> ObjectStore: ...

    def report(self, ref: str | VersionInfo, name: str, kind: str, data: Any = None,
               **options: Any) -> ReportInfo:
        """Attach a report to a committed version (its content digest does not change).

        ``kind``: ``table`` (Arrow/DataFrame/CSV), ``histogram`` (values or ``counts=``,
        ``x_title=``, ``y_title=``, ``bins=``), ``figure`` (matplotlib figure, Vega-Lite dict,
        PNG/SVG), ``samples`` (records, texts, files, each with a ``caption``), ``scalar``.
        """
        text = ref if isinstance(ref, str) else ref.ref
        if kind == "histogram" and data is None and "counts" not in options:
            raise InvalidArgument(f"report {name!r}: give values or counts")
        stored = store_payload(self.store, build_payload(name, kind, data, **options))
        with self.session() as s:
            v = self._resolve_row(s, text)
            row = insert_report(s, v.id, stored, run_id=None)
            s.flush()
            return report_info(row, _ref(v))

    def reports(self, ref: str | VersionInfo, *, name: str | None = None) -> list[ReportInfo]:
        """A version's reports, newest first."""
        text = ref if isinstance(ref, str) else ref.ref
        with self.session() as s:
            v = self._resolve_row(s, text)
            rows = catalog_reports.reports_of(s, v.id, name=name)
            return [report_info(r, _ref(v)) for r in rows]

    def report_payload(self, report: ReportInfo, *, item: int | None = None) -> bytes:
        """The stored bytes of a report (or of one of its sample ``item``s), verified."""
        with self.session() as s:
            row = s.get(Report, report.id)
            if row is None:
                raise VersionNotFound(f"report {report.name!r} no longer exists")
            store = self.store_for(row.store_url or self.store.url)
            if item is not None:
                items = (row.body or {}).get("items", [])
                if not 0 <= item < len(items) or not items[item].get("digest"):
                    raise InvalidArgument(f"report {report.name!r} has no stored item {item}")
                return store.read_bytes(items[item]["digest"], context=f"report {row.name}")
            if row.digest is None:
                raise InvalidArgument(f"report {report.name!r} ({row.kind}) has no payload "
                                      "object; its content is in .body")
            return store.read_bytes(row.digest, context=f"report {row.name}")

    def scalar_series(self, dataset: str, name: str) -> list[tuple[int, float]]:
        """``(version number, value)`` of the newest scalar report ``name`` on each version."""
        with self.session() as s:
            ds = repo.get_dataset(s, self.dataset_name(dataset))  # type: ignore[attr-defined]
            rows = catalog_reports.scalar_bodies(s, ds.id, name)
        latest: dict[int, float] = {}
        for number, body in rows:
            latest[number] = float(body["value"])
        return sorted(latest.items())

    # -- descriptions and properties ------------------------------------------------------------
    def annotate(self, ref: str | VersionInfo, *, description: str | None = None,
                 properties: Mapping[str, Any] | None = None, replace: bool = False,
                 actor: str | None = None) -> VersionInfo:
        """Edit a version's description and/or properties; every edit is kept in its history.

        Properties are merged into the current ones (a ``None`` value deletes a key) unless
        ``replace=True``.
        """
        text = ref if isinstance(ref, str) else ref.ref
        with self.session() as s:
            v = self._resolve_row(s, text)
            write_annotation(s, v.id, description=description, properties=properties,
                             replace=replace, actor=actor)
        return self.get(text)  # type: ignore[attr-defined,no-any-return]

    def annotation_history(self, ref: str | VersionInfo) -> list[dict[str, Any]]:
        text = ref if isinstance(ref, str) else ref.ref
        with self.session() as s:
            v = self._resolve_row(s, text)
            rows = catalog_reports.annotation_history(s, v.id)
            return [{"description": r.description, "properties": r.properties,
                     "at": r.created_at.isoformat(), "actor": r.actor} for r in rows]


def write_annotation(session: Session, version_id: int, *, description: str | None,
                     properties: Mapping[str, Any] | None, replace: bool = False,
                     actor: str | None = None) -> None:
    if description is None and properties is None:
        raise InvalidArgument("give a description and/or properties to record")
    current = repo.current_annotation(session, version_id)
    props = {} if (replace or current is None) else dict(current.properties or {})
    for key, value in (properties or {}).items():
        if value is None:
            props.pop(str(key), None)
        else:
            props[str(key)] = value
    session.add(VersionAnnotation(
        version_id=version_id,
        description=description if description is not None else (
            current.description if current else None),
        properties=props, created_at=utcnow(), actor=actor))


def _ref(v: Version) -> str:
    ds: Dataset = v.dataset
    return f"{ds.namespace.name}/{ds.name}@{v.number}"
