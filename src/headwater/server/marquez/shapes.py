"""Catalog rows as Marquez 0.50's JSON objects: namespaces, sources, datasets, dataset versions,
jobs, job versions and runs. Headwater-only information is under the key ``headwater``, never in
place of a Marquez field. Every facet carries ``_producer`` and ``_schemaURL``, as Marquez's
``CustomFacet`` requires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from headwater.catalog import job_graph, marquez_rows
from headwater.catalog.models import Dataset, Job, Run, Version
from headwater.lineage.record import headwater_version, producer_url
from headwater.server.marquez.idents import (
    dataset_idents,
    job_version_uuid,
    producer_version,
    version_uuid,
)

SPEC = "https://openlineage.io/spec/facets/1-0-1/"
STATES = {"NEW", "RUNNING", "COMPLETED", "FAILED", "ABORTED"}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def facet(schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer_url(headwater_version()),
            "_schemaURL": f"{SPEC}{schema}.json#/$defs/{schema}", **fields}


def parent_job(r: Run | None) -> str | None:
    """The parent job (OpenLineage ParentRunFacet) of a job's latest run: ``parentJobName``."""
    job = (r.parent or {}).get("job") if r is not None else None
    return job if isinstance(job, str) else None


def location(r: Run | None) -> str | None:
    """The job's source code location, as its latest run recorded it."""
    loc = (r.engine or {}).get("source_location") if r is not None else None
    if isinstance(loc, dict):
        loc = loc.get("url")
    return loc if isinstance(loc, str) else None


class Shapes:
    """Builds Marquez objects within one session, caching names and tags."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self._idents: dict[int, tuple[str, str]] = {}
        self._tags: dict[int, dict[str, list[str]]] = {}

    def ident(self, dataset_id: int) -> tuple[str, str]:
        if dataset_id not in self._idents:
            self.preload([dataset_id])
        return self._idents.get(dataset_id, ("headwater", str(dataset_id)))

    def preload(self, dataset_ids: list[int]) -> None:
        todo = [i for i in dataset_ids if i not in self._idents]
        if todo:
            self._idents.update(dataset_idents(self.s, todo))
            tags = marquez_rows.dataset_tags(self.s, todo)
            for i in todo:
                self._tags[i] = tags.get(i, {})

    def tags(self, dataset_id: int) -> dict[str, list[str]]:
        self.ident(dataset_id)
        return self._tags.get(dataset_id, {})

    # -- datasets -----------------------------------------------------------------------------
    def fields(self, d: Dataset, v: Version | None) -> list[dict[str, Any]]:
        tags = self.tags(d.id)
        return [{"name": str(c.get("name")), "type": c.get("type"),
                 "tags": tags.get(str(c.get("name")), []), "description": None}
                for c in ((v.schema or []) if v is not None else [])]

    def dataset_facets(self, v: Version | None) -> dict[str, Any]:
        if v is None:
            return {}
        out: dict[str, Any] = {"version": facet(
            "DatasetVersionDatasetFacet",
            datasetVersion=producer_version(v) or str(v.number))}
        if v.schema:
            out["schema"] = facet("SchemaDatasetFacet", fields=[
                {"name": str(c.get("name")), "type": c.get("type")} for c in v.schema])
        return out

    def hw_version(self, v: Version) -> dict[str, Any]:
        return {"dataset": f"{v.dataset.namespace.name}/{v.dataset.name}",
                "number": v.number, "digest": v.digest, "label": v.label, "kind": v.kind,
                "datasetVersion": producer_version(v), "rowCount": v.row_count,
                "size": v.size, "fileCount": v.file_count, "runId": v.run_id}

    def dataset(self, d: Dataset, v: Version | None) -> dict[str, Any]:
        ns, name = self.ident(d.id)
        return {
            "id": {"namespace": ns, "name": name}, "type": "DB_TABLE", "name": name,
            "physicalName": name, "createdAt": iso(d.created_at),
            "updatedAt": iso(v.created_at if v else d.created_at), "namespace": ns,
            "sourceName": ns, "fields": self.fields(d, v), "tags": self.tags(d.id).get("", []),
            "lastModifiedAt": iso(v.created_at if v else None), "lastLifecycleState": None,
            "description": d.description, "currentVersion": version_uuid(v) if v else None,
            "columnLineage": None, "facets": self.dataset_facets(v), "deleted": False,
            "headwater": {"dataset": f"{d.namespace.name}/{d.name}", "type": d.type,
                          "latestVersion": v.number if v else None,
                          "latestDigest": v.digest if v else None},
        }

    def dataset_version(self, v: Version, run: Run | None) -> dict[str, Any]:
        d = v.dataset
        ns, name = self.ident(d.id)
        uid = version_uuid(v)
        return {
            "id": {"namespace": ns, "name": name, "version": uid}, "type": "DB_TABLE",
            "name": name, "physicalName": name, "createdAt": iso(v.created_at), "version": uid,
            "namespace": ns, "sourceName": ns, "fields": self.fields(d, v),
            "tags": self.tags(d.id).get("", []), "lifecycleState": None,
            "description": d.description,
            "createdByRun": self.run(run) if run is not None else None,
            "facets": self.dataset_facets(v), "headwater": self.hw_version(v),
        }

    def version_ref(self, v: Version) -> dict[str, Any]:
        """A run's ``inputDatasetVersions``/``outputDatasetVersions`` entry."""
        ns, name = self.ident(v.dataset_id)
        return {"datasetVersionId": {"namespace": ns, "name": name, "version": version_uuid(v)},
                "facets": self.dataset_facets(v)}

    # -- runs and jobs ------------------------------------------------------------------------
    def run(self, r: Run, edges: tuple[list[Version], list[Version]] | None = None,
            facets: dict[str, Any] | None = None) -> dict[str, Any]:
        if edges is None:
            ins, outs = marquez_rows.run_edges(self.s, [r.id])
            edges = (ins.get(r.id, []), outs.get(r.id, []))
        self.preload([v.dataset_id for v in (*edges[0], *edges[1])])
        duration = (int((r.ended_at - r.started_at).total_seconds() * 1000)
                    if r.ended_at and r.started_at else None)
        state = r.state if r.state in STATES else ("COMPLETED" if r.ended_at else "RUNNING")
        return {
            "id": r.id, "createdAt": iso(r.started_at),
            "updatedAt": iso(r.ended_at or r.started_at),
            "nominalStartTime": iso(r.nominal_time), "nominalEndTime": None, "state": state,
            "startedAt": iso(r.started_at), "endedAt": iso(r.ended_at), "durationMs": duration,
            "args": {str(k): str(v) for k, v in (r.params or {}).items()},
            "jobVersion": {"namespace": r.job.namespace.name, "name": r.job.name,
                           "version": job_version_uuid(r.job_id, r.code_fingerprint)},
            "inputDatasetVersions": [self.version_ref(v) for v in edges[0]],
            "outputDatasetVersions": [self.version_ref(v) for v in edges[1]],
            "context": {}, "facets": facets if facets is not None else self.run_facets(r),
            "headwater": {"state": r.state, "engine": r.engine or {}, "parent": r.parent,
                          "codeFingerprint": r.code_fingerprint, "error": r.error,
                          "reusedRunId": r.reused_run_id},
        }

    def run_facets(self, r: Run) -> dict[str, Any]:
        """The run facets of the run's ingested events (newest wins), else from the record."""
        out: dict[str, Any] = {}
        for event in marquez_rows.run_facet_events(self.s, r.id):
            run_part = event.get("run") if isinstance(event, dict) else None
            got = run_part.get("facets") if isinstance(run_part, dict) else None
            if isinstance(got, dict):
                out.update({k: f for k, f in got.items() if isinstance(f, dict)})
        if r.nominal_time is not None and "nominalTime" not in out:
            out["nominalTime"] = facet("NominalTimeRunFacet",
                                       nominalStartTime=iso(r.nominal_time))
        if isinstance(r.parent, dict) and "parent" not in out and r.parent.get("run_id"):
            out["parent"] = facet("ParentRunFacet",
                                  run={"runId": r.parent.get("run_id")},
                                  job={"namespace": r.parent.get("namespace"),
                                       "name": r.parent.get("job")})
        return {k: f for k, f in out.items() if "_producer" in f and "_schemaURL" in f}

    def job(self, j: Job, latest: Run | None) -> dict[str, Any]:
        w = job_graph.walk(self.s, "job", j.id, 1)
        self.preload(sorted(w.datasets))
        ns = j.namespace.name
        return {
            "id": {"namespace": ns, "name": j.name}, "type": "BATCH", "name": j.name,
            "simpleName": j.name.rsplit(".", 1)[-1],
            "parentJobName": parent_job(latest),
            "parentJobUuid": None,
            "createdAt": iso(j.created_at),
            "updatedAt": iso(latest.started_at if latest else j.created_at), "namespace": ns,
            "inputs": [dict(zip(("namespace", "name"), self.ident(d), strict=True))
                       for d, jj in sorted(w.reads) if jj == j.id],
            "outputs": [dict(zip(("namespace", "name"), self.ident(d), strict=True))
                        for jj, d in sorted(w.writes) if jj == j.id],
            "location": location(latest), "context": {},
            "description": j.description,
            "latestRun": self.run(latest) if latest is not None else None,
            "latestRuns": [self.run(latest)] if latest is not None else [],
            "facets": {}, "currentVersion": (job_version_uuid(j.id, latest.code_fingerprint)
                                             if latest is not None else None),
            "labels": [], "tags": [],
            "headwater": {"job": f"{ns}/{j.name}"},
        }


__all__ = ["STATES", "Shapes", "facet", "iso", "location", "parent_job"]
