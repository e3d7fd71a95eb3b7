"""One version: its facts, manifest, files, sample rows, diffs against others, and reports.

Why a module of its own: these are the reads that touch the object store (manifests, table
files), so they carry the size limits and the "external versions have no data here" rule.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from headwater.api import Catalog
from headwater.catalog import listings as queries
from headwater.catalog.models import Report, Run, Version
from headwater.catalog.reports import report_count
from headwater.errors import InvalidArgument, VersionNotFound
from headwater.server.deps import (
    CatalogDep,
    Limit,
    NameP,
    NamespaceP,
    Offset,
    Read,
    SelectorP,
    Write,
    split_ref,
    version_ref,
)
from headwater.server.download import content_disposition, verified_response
from headwater.server.ingest import EXTERNAL
from headwater.server.redact import redact
from headwater.tables.detect import table_files
from headwater.tables.formats import read_table
from headwater.version import Version as VersionHandle

router = APIRouter(tags=["versions"])
BASE = "/versions/{namespace}/{name}/{selector}"
MAX_SAMPLE_FILE = 256 * 1024 * 1024
MAX_CELL = 2000


def _resolve(catalog: Catalog, namespace: str, name: str, selector: str) -> VersionHandle:
    return catalog.get(version_ref(namespace, name, selector))


def _stored(v: VersionHandle) -> VersionHandle:
    if v.kind == EXTERNAL:
        raise InvalidArgument(
            f"{v.ref} is an external version (recorded from OpenLineage): its data is not in a "
            "Headwater store, so it has no manifest, files or rows here"
        )
    return v


def jsonable(value: Any) -> Any:
    """A cell value as JSON (long text and bytes shortened, NaN as null)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if len(value) <= MAX_CELL else value[:MAX_CELL] + "…"
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value[:MAX_CELL]).decode()}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in list(value.items())[:200]}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value[:200]]
    return str(value)[:MAX_CELL]


@router.get(BASE, dependencies=[Read], summary="One version")
def get_version(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
                selector: SelectorP) -> dict[str, Any]:
    v = _resolve(catalog, namespace, name, selector)
    out = v.info().to_dict()
    with catalog.session() as s:
        out["annotation"] = queries.annotation(s, v.id)
        out["reports"] = report_count(s, v.id)
        run = s.get(Run, v.run_id) if v.run_id else None
        out["run"] = None if run is None else {
            "id": run.id, "job": f"{run.job.namespace.name}/{run.job.name}",
            "state": run.state, "engine": run.engine or {},
            "started_at": run.started_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at else None}
        row = s.get(Version, v.id)
        out["label"] = row.label if row is not None else None
    out["store_url"] = redact(out["store_url"])
    out["status"] = catalog.status(v.ref)[0].to_dict()
    out["external"] = v.kind == EXTERNAL
    out["dataset_type"] = v.type
    return out


class RetractionIn(BaseModel):
    reason: str = Field(min_length=1, max_length=4000, description="Why (kept in the history).")
    actor: str | None = Field(default=None, max_length=256, description="Who.")

    @field_validator("reason", "actor")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("contains a NUL character (\\u0000), which the catalog cannot store")
        return value


def _retraction(catalog: Catalog, namespace: str, name: str, selector: str,
                body: RetractionIn, *, undo: bool) -> dict[str, Any]:
    ref = version_ref(namespace, name, selector)
    actor = body.actor or "headwater-server"
    v = (catalog.unretract if undo else catalog.retract)(ref, reason=body.reason, actor=actor)
    return {"ref": v.ref, "retracted": not undo, "history": catalog.retractions(v.ref)}


@router.post(BASE + "/retract", dependencies=[Write],
             summary="Retract a version: record that it is bad (write)")
def retract_version(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
                    selector: SelectorP, body: Annotated[RetractionIn, Body()]) -> dict[str, Any]:
    return _retraction(catalog, namespace, name, selector, body, undo=False)


@router.post(BASE + "/unretract", dependencies=[Write],
             summary="Undo a retraction; the history keeps both entries (write)")
def unretract_version(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
                      selector: SelectorP,
                      body: Annotated[RetractionIn, Body()]) -> dict[str, Any]:
    return _retraction(catalog, namespace, name, selector, body, undo=True)


@router.get(BASE + "/retractions", dependencies=[Read], summary="A version's retraction history")
def get_retractions(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
                    selector: SelectorP) -> dict[str, Any]:
    v = _resolve(catalog, namespace, name, selector)
    return {"ref": v.ref, "retracted": v.retracted, "history": catalog.retractions(v.ref)}


@router.get("/status", dependencies=[Read],
            summary="Fresh, stale or retracted, with causes (latest version of each dataset)")
def get_status(
    catalog: CatalogDep,
    namespace: Annotated[str | None, Query(max_length=128)] = None,
    all_versions: bool = False,
) -> dict[str, Any]:
    items = catalog.status(namespace, all_versions=all_versions)
    return {"versions": [st.to_dict() for st in items]}


@router.get(BASE + "/manifest", dependencies=[Read], summary="Browse a version's files")
def get_manifest(
    catalog: CatalogDep, namespace: NamespaceP, name: NameP, selector: SelectorP,
    prefix: Annotated[str, Query(max_length=1024,
                                 description="Directory to list, e.g. `sub/`")] = "",
    recursive: bool = False, limit: Limit = 500, offset: Offset = 0,
) -> dict[str, Any]:
    v = _stored(_resolve(catalog, namespace, name, selector))
    manifest = catalog.manifest_of(v)
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    dirs: dict[str, dict[str, int]] = {}
    files = []
    for e in manifest:
        if not e.path.startswith(prefix):
            continue
        rest = e.path[len(prefix):]
        if not recursive and "/" in rest:
            d = dirs.setdefault(rest.split("/", 1)[0], {"files": 0, "size": 0})
            d["files"] += 1
            d["size"] += e.size
            continue
        files.append(e.to_json())
    return {
        "ref": v.ref, "prefix": prefix, "total_files": len(manifest),
        "total_size": manifest.total_size,
        "dirs": [{"name": k, **val} for k, val in sorted(dirs.items())],
        "files": files[offset:offset + limit], "matching": len(files),
    }


@router.get(BASE + "/files/{path:path}", dependencies=[Read], summary="Download one file",
            response_class=StreamingResponse)
def get_file(request: Request, catalog: CatalogDep, namespace: NamespaceP, name: NameP,
             selector: SelectorP,
             path: Annotated[str, Path(min_length=1, max_length=4096)]) -> StreamingResponse:
    """The file's bytes, verified against its digest before the first byte (up to the server's
    verify-first size; larger files carry ``ETag``/``Repr-Digest`` and abort on a mismatch)."""
    v = _stored(_resolve(catalog, namespace, name, selector))
    entry = catalog.manifest_of(v).by_path().get(path)
    if entry is None:
        raise VersionNotFound(f"{v.ref} has no file {path!r}")
    return verified_response(
        catalog.open_file(v, path), digest=entry.digest, size=entry.size,
        media_type="application/octet-stream",
        headers={"Content-Disposition": content_disposition("attachment",
                                                            path.rsplit("/", 1)[-1])},
        verify_first_max=request.app.state.verify_first_max, context=f"{v.ref} {path}")


@router.get(BASE + "/rows", dependencies=[Read], summary="Sample rows of a table version")
def get_rows(catalog: CatalogDep, namespace: NamespaceP, name: NameP, selector: SelectorP,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    v = _stored(_resolve(catalog, namespace, name, selector))
    manifest = catalog.manifest_of(v)
    fmt, entries = table_files(manifest)
    if fmt is None:
        raise InvalidArgument(f"{v.ref} holds no table files (Parquet, CSV, JSON Lines, Arrow)")
    entry = entries[0]
    if entry.size > MAX_SAMPLE_FILE:
        raise InvalidArgument(f"{v.ref}: {entry.path} is too large to sample in the browser")
    with catalog.open_file(v, entry.path) as f:
        table = read_table(f, fmt)
    head = table.slice(0, limit)
    return {
        "ref": v.ref, "file": entry.path, "format": fmt, "rows_in_file": table.num_rows,
        "rows_total": v.row_count,
        "columns": [{"name": f.name, "type": str(f.type)} for f in head.schema],
        "rows": [[jsonable(r.get(c)) for c in head.column_names] for r in head.to_pylist()],
    }


@router.get(BASE + "/diff", dependencies=[Read], summary="Diff against another version")
def get_diff(
    catalog: CatalogDep, namespace: NamespaceP, name: NameP, selector: SelectorP,
    against: Annotated[str, Query(min_length=1, max_length=300,
                                  description="Another version: a selector of this dataset "
                                  "(`3`, `production`) or a full reference `ns/name@3`.")],
    key: Annotated[str | None, Query(max_length=1000,
                                     description="Comma-separated key columns")] = None,
) -> dict[str, Any]:
    b = _stored(_resolve(catalog, namespace, name, selector))
    other = split_ref(against) if "/" in against else version_ref(namespace, name, against)
    a = _stored(catalog.get(other))
    keys = [k.strip() for k in key.split(",") if k.strip()] if key else None
    result = catalog.diff(a, b, key=keys)
    out: dict[str, Any] = jsonable(result.to_dict())
    out["identical"] = result.identical
    return out


def _report_dict(item: Any) -> dict[str, Any]:
    if hasattr(item, "to_dict"):
        out: dict[str, Any] = item.to_dict()
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        out = dataclasses.asdict(item)
    else:
        out = dict(item)
    body: dict[str, Any] = out["body"] if isinstance(out.get("body"), dict) else {}
    out["has_payload"] = bool(out.get("digest"))
    items: list[Any] = body["items"] if isinstance(body.get("items"), list) else []
    out["item_payloads"] = [i for i, it in enumerate(items)
                            if isinstance(it, dict) and it.get("digest")]
    return out


@router.get(BASE + "/reports", dependencies=[Read], summary="Reports logged with a version")
def get_reports(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
                selector: SelectorP) -> dict[str, Any]:
    """Tables, histograms, figures, samples and scalars logged with the version (newest
    first); payloads are served by ``/reports/{id}/payload`` and ``/reports/{id}/rows``."""
    v = _resolve(catalog, namespace, name, selector)
    api = getattr(catalog, "reports", None)
    if callable(api):
        rows = [_report_dict(r) for r in api(v.ref)]
    else:  # pragma: no cover - a core without the reports API (issue 10)
        with catalog.session() as s:
            rows = [_report_dict(r) for r in queries.report_rows(s, v.id)]
    return {"ref": v.ref, "reports": jsonable(rows)}


def _report(catalog: Catalog, report_id: int) -> Report:
    with catalog.session() as s:
        report = s.get(Report, report_id)
        if report is None:
            raise VersionNotFound(f"no report with id {report_id}")
        s.expunge(report)
        return report


_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\Z")
INLINE = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "audio/",
          "video/", "text/plain")


@router.get("/reports/{report_id}/payload", dependencies=[Read],
            summary="A report's stored payload, or one sample item's (`item=`)",
            response_class=StreamingResponse)
def get_report_payload(
    request: Request, catalog: CatalogDep, report_id: Annotated[int, Path(ge=1, le=2**62)],
    item: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> StreamingResponse:
    report = _report(catalog, report_id)
    digest, media, filename = report.digest, report.media_type, report.name
    if item is not None:
        items = (report.body or {}).get("items") or []
        entry = items[item] if item < len(items) and isinstance(items[item], dict) else {}
        digest, media = entry.get("digest"), entry.get("media_type")
        filename = str(entry.get("filename") or filename)
    if not digest:
        raise VersionNotFound(f"report {report.name!r} has no stored payload"
                              + (f" for item {item}" if item is not None else ""))
    store = catalog.store_for(report.store_url or catalog.store.url)
    stream = store.open(digest, context=f"report {report.name}")
    media = media or "application/octet-stream"
    if not _MEDIA_TYPE.match(media):  # logged before media types were checked
        media = "application/octet-stream"
    inline = media.startswith(INLINE)
    return verified_response(
        stream, digest=digest, size=None,
        media_type=media if inline else "application/octet-stream",
        headers={
            # sandbox: an SVG opened directly can never run script in this origin
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            "Content-Disposition": "inline" if inline else
            content_disposition("attachment", filename)},
        verify_first_max=request.app.state.verify_first_max,
        context=f"report {report.name!r} ({digest})")


@router.get("/reports/{report_id}/rows", dependencies=[Read],
            summary="Rows of a table report (its Parquet payload)")
def get_report_rows(catalog: CatalogDep, report_id: Annotated[int, Path(ge=1, le=2**62)],
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    import io

    import pyarrow.parquet as pq

    report = _report(catalog, report_id)
    if report.kind != "table" or not report.digest:
        raise InvalidArgument(f"report {report.name!r} is a {report.kind}, not a table")
    if report.size > MAX_SAMPLE_FILE:
        raise InvalidArgument(f"report {report.name!r} is too large to show in the browser")
    store = catalog.store_for(report.store_url or catalog.store.url)
    table = pq.read_table(io.BytesIO(store.read_bytes(report.digest,
                                                      context=f"report {report.name}")))
    head = table.slice(0, limit)
    return {"name": report.name, "rows_total": table.num_rows,
            "columns": [{"name": f.name, "type": str(f.type)} for f in head.schema],
            "rows": [[jsonable(r.get(c)) for c in head.column_names] for r in head.to_pylist()]}
