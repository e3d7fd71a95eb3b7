"""OpenLineage ingestion: events from any producer become catalog jobs, runs, versions and edges.

Why it lives beside the catalog and not in ``lineage/``: ``lineage/`` *emits* our events; this
module *receives* everyone's (Airflow's openlineage provider, Spark, dbt, our own emitter) and has
to cope with data that was never in a Headwater store. The mapping rules (docs/server.md):

* **Datasets.** An OpenLineage dataset ``(namespace, name)`` maps to one catalog dataset, recorded
  in ``ol_datasets`` the first time it is seen. Our own events carry a Symlinks facet naming the
  logical dataset (``headwater`` + ``ns/dataset``): they land on that dataset. Foreign datasets get
  a name derived by :mod:`headwater.server.ol_names`.
* **Versions.** A DatasetVersion facet with our ``digest`` finds that exact version. Otherwise an
  *external* version (``kind="external"``, no objects in any store) is found or created, its digest
  derived deterministically: from the OpenLineage namespace, name and ``datasetVersion`` when the
  facet is there, else (outputs) from the event's identity. An input without a version facet is
  linked to the dataset's latest version at ingestion time (what Marquez does for every input; we
  do it only when the producer did not say which version it read).
* **Runs.** ``run.runId`` is the catalog run id, unless our provenance facet names a catalog run
  (an Airflow task running our operator): then the event attaches to that run, and a placeholder
  run created by earlier events of the same Airflow run is folded into it. Runs created by
  ingestion carry ``engine.ingested = true``; runs Headwater recorded itself are never changed,
  only missing edges are added.
* **Trust.** An event never changes what a reference to a *native* dataset (one Headwater
  wrote, or any dataset holding a non-external version) means: it never creates a version of one
  and never moves its ``latest`` or aliases. It may link its run to a native version the catalog
  already has, named by digest; anything else it says about that dataset becomes an external
  version of an external dataset under the event's own OpenLineage name. Anyone holding a write
  token (every Airflow or Spark deployment) can send events, so a Symlinks facet naming
  ``prod/users`` plus a digest of a manifest in a store the producer controls must not become
  ``prod/users@latest``.
* **Idempotence.** Every event is recorded once in ``ol_events`` under the UUIDv5 of
  ``runId|eventType|eventTime`` (the outbox's ``event_id``): a redelivered event changes nothing.
  Outputs become versions only on ``COMPLETE`` (a failed run made nothing visible).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater.api import Catalog
from headwater.catalog import external, marquez_rows, repo
from headwater.catalog.external import EXTERNAL, ORIGIN, is_native
from headwater.catalog.models import (
    Dataset,
    OpenLineageDataset,
    OpenLineageEvent,
    OpenLineageRun,
    Run,
    Version,
    utcnow,
)
from headwater.catalog.service import NewVersion
from headwater.errors import HeadwaterError, InvalidArgument, InvalidReference
from headwater.lineage.facets import event_identity
from headwater.lineage.naming import LOGICAL_NAMESPACE
from headwater.refs import DatasetName
from headwater.server.ol_models import (
    DatasetEventIn,
    IngestResult,
    JobEventIn,
    OLDataset,
    RunEventIn,
    parse_event_time,
)
from headwater.server.ol_names import (
    catalog_dataset_name,
    catalog_part,
    dataset_key,
    disambiguated,
    job_name,
)
from headwater.server.redact import redact, redact_json
from headwater.server.retention import capped_event

#: Prefix of the ``ol_datasets`` key of the external dataset an OpenLineage dataset gets when its
#: Symlinks facet maps it onto a native dataset (the mapping's own key points at the native one).
OWN_KEY_PREFIX = "headwater-own\0"
EVENT_NAMESPACE = uuid.UUID("6f1d2b8e-4c1a-5b7e-9a65-0d9f3b1c7e42")
STATES = {"START": "RUNNING", "RUNNING": "RUNNING", "COMPLETE": "COMPLETED",
          "FAIL": "FAILED", "ABORT": "ABORTED"}
TERMINAL = {"COMPLETED", "FAILED", "ABORTED"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_INT = 2**63 - 1
ATTEMPTS = 4


class IngestConflict(HeadwaterError, RuntimeError):
    """Concurrent writers kept conflicting on the same rows; the event can simply be resent."""


# -- reading facets defensively (every producer writes its own) -------------------------------
def _facet(facets: Any, key: str) -> dict[str, Any]:
    value = facets.get(key) if isinstance(facets, dict) else None
    return value if isinstance(value, dict) else {}


def _text(value: Any, *, limit: int = 4096) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    return value[:limit] if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value < 0 or value > MAX_INT:  # NaN, negative, too big
        return None
    return int(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_event_time(value)
    except (ValueError, OverflowError):
        return None


def _logical_name(facets: Any) -> DatasetName | None:
    """The catalog dataset named by our Symlinks facet (``headwater`` + ``ns/dataset``)."""
    identifiers = _facet(facets, "symlinks").get("identifiers")
    if not isinstance(identifiers, list):
        return None
    for ident in identifiers:
        if not isinstance(ident, dict) or ident.get("namespace") != LOGICAL_NAMESPACE:
            continue
        name = ident.get("name")
        if isinstance(name, str) and "/" in name:
            try:
                return DatasetName.parse(name, default_namespace="default")
            except InvalidReference:
                return None
    return None


def _version_facet(facets: Any) -> tuple[str | None, str | None]:
    """``(datasetVersion, digest)``: our events add the root digest as an extra field."""
    facet = _facet(facets, "version")
    digest = facet.get("digest")
    return (_text(facet.get("datasetVersion"), limit=512),
            digest if isinstance(digest, str) and HEX64.match(digest) else None)


def _schema(facets: Any) -> list[dict[str, Any]] | None:
    fields = _facet(facets, "schema").get("fields")
    if not isinstance(fields, list):
        return None
    out = []
    for f in fields[:10_000]:
        if isinstance(f, dict) and _text(f.get("name")):
            out.append({"name": _text(f.get("name"), limit=512),
                        "type": _text(f.get("type"), limit=512)})
    return out or None


def _column_lineage(facets: Any) -> dict[str, Any]:
    """The ``columnLineage`` facet's ``fields`` (output field → its input fields), kept as
    sent but bounded and redacted; entries that are not objects are dropped."""
    fields = _facet(facets, "columnLineage").get("fields")
    if not isinstance(fields, dict):
        return {}
    out = {str(k)[:512]: v for k, v in list(fields.items())[:10_000]
           if isinstance(v, dict) and isinstance(v.get("inputFields"), list)}
    return dict(redact_json(out)) if out else {}


def _null_counts(*facet_maps: Any) -> dict[str, int]:
    for facets in facet_maps:
        metrics = _facet(facets, "dataQualityMetrics").get("columnMetrics")
        if isinstance(metrics, dict):
            return {str(col)[:512]: n for col, m in list(metrics.items())[:10_000]
                    if isinstance(m, dict) and (n := _count(m.get("nullCount"))) is not None}
    return {}


def _first_count(pairs: list[tuple[dict[str, Any], str]]) -> int | None:
    for facet, key in pairs:
        n = _count(facet.get(key))
        if n is not None:
            return n
    return None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _ol_uri(namespace: str, name: str) -> str:
    if "://" in namespace:
        return f"{namespace.rstrip('/')}/{name.lstrip('/')}"
    return f"{namespace}:{name}"


def _uuid_text(value: Any) -> str | None:
    text = value.lower() if isinstance(value, str) else ""
    return text if UUID_RE.match(text) else None


@dataclass
class _Seen:
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def _ref(v: Version) -> str:
    return f"{v.dataset.namespace.name}/{v.dataset.name}@{v.number}"


class Ingestor:
    """Turns OpenLineage events into catalog rows, one transaction per event."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # -- entry point --------------------------------------------------------------------------
    def ingest(self, event: RunEventIn | DatasetEventIn | JobEventIn) -> IngestResult:
        raw = event.model_dump(mode="json", exclude_unset=True)
        event_id = self.event_id(event)
        for attempt in range(ATTEMPTS):
            try:
                with self.catalog.session() as s:
                    if external.event_seen(s, event_id):
                        return IngestResult(status="duplicate", event_id=event_id)
                    result = self._apply(s, event, event_id)
                    s.add(OpenLineageEvent(
                        event_id=event_id,
                        ol_run_id=_uuid_text(event.run.runId)
                        if isinstance(event, RunEventIn) else None,
                        run_id=result.run_id,
                        event_type=(getattr(event, "eventType", None) or type(event).__name__
                                    .removesuffix("In"))[:16],
                        event_time=parse_event_time(event.eventTime),
                        producer=redact(event.producer),
                        received_at=utcnow(),
                        event=capped_event(redact_json(raw)),
                    ))
                return result
            except IntegrityError as exc:  # a concurrent writer inserted the same row first
                if attempt == ATTEMPTS - 1:
                    raise IngestConflict(
                        f"event {event_id} conflicted with concurrent writes {ATTEMPTS} times; "
                        "send it again"
                    ) from exc
        raise IngestConflict(f"event {event_id} could not be ingested")  # pragma: no cover

    @staticmethod
    def event_id(event: RunEventIn | DatasetEventIn | JobEventIn) -> str:
        if isinstance(event, RunEventIn):
            return event_identity(event.run.runId.lower(), event.eventType or "OTHER",
                                  event.eventTime)
        if isinstance(event, DatasetEventIn):
            text = f"dataset|{event.dataset.namespace}|{event.dataset.name}|{event.eventTime}"
        else:
            text = f"job|{event.job.namespace}|{event.job.name}|{event.eventTime}"
        return str(uuid.uuid5(EVENT_NAMESPACE, text))

    def _apply(
        self, s: Session, event: RunEventIn | DatasetEventIn | JobEventIn, event_id: str
    ) -> IngestResult:
        if isinstance(event, DatasetEventIn):
            ds = self._dataset(s, event.dataset)
            v = self._observed_version(s, ds, event.dataset, producer=event.producer)
            return IngestResult(status="ingested", event_id=event_id,
                                inputs=[_ref(v)] if v is not None else [])
        if isinstance(event, JobEventIn):
            job = repo.ensure_job(s, catalog_part(event.job.namespace), job_name(event.job.name))
            for d in [*event.inputs, *event.outputs]:
                self._dataset(s, d)
            return IngestResult(status="ingested", event_id=event_id,
                                job=f"{job.namespace.name}/{job.name}")
        return self._run_event(s, event, event_id)

    # -- run events ---------------------------------------------------------------------------
    def _run_event(self, s: Session, ev: RunEventIn, event_id: str) -> IngestResult:
        run = self._run(s, ev)
        ingested = bool((run.engine or {}).get("ingested"))
        if ingested:
            self._update_run(run, ev)
        seen = _Seen()
        for inp in ev.inputs:
            ds = self._dataset(s, inp)
            v = self._input_version(s, ds, inp, producer=ev.producer)
            self.catalog.service(s).record_input(run.id, v)
            seen.inputs.append(_ref(v))
        for out in ev.outputs:
            ds = self._dataset(s, out)
            if ev.eventType != "COMPLETE":
                continue
            v, created = self._output_version(s, ds, out, run=run, event_id=event_id,
                                              producer=ev.producer)
            self.catalog.service(s).record_output(run.id, v, created=created)
            fields = _column_lineage(out.facets)
            if fields:
                marquez_rows.record_column_lineage(s, v.id, run.id, fields,
                                                   redact(ev.producer)[:512])
            seen.outputs.append(_ref(v))
        s.flush()
        return IngestResult(status="ingested", event_id=event_id, run_id=run.id,
                            job=f"{run.job.namespace.name}/{run.job.name}",
                            inputs=seen.inputs, outputs=seen.outputs)

    def _run(self, s: Session, ev: RunEventIn) -> Run:
        ol_id = ev.run.runId.lower()
        prov = _facet(ev.run.facets, "headwater_provenance")
        target = _uuid_text(prov.get("runId"))
        if target == ol_id or (target is not None and s.get(Run, target) is None):
            target = None
        mapped = s.get(OpenLineageRun, ol_id)
        if mapped is not None:
            if target is not None and mapped.run_id != target:
                self._fold(s, mapped.run_id, target)
                mapped.run_id = target
            run = s.get(Run, mapped.run_id)
            if run is not None:
                return run
        run_id = target or ol_id
        run = s.get(Run, run_id)
        if run is None:
            job = repo.ensure_job(s, catalog_part(ev.job.namespace), job_name(ev.job.name))
            time = parse_event_time(ev.eventTime)
            run = Run(id=run_id, job_id=job.id, state="RUNNING", params={},
                      engine={"ingested": True}, started_at=time)
            s.add(run)
            s.flush()
        if mapped is None:
            s.add(OpenLineageRun(ol_run_id=ol_id, run_id=run.id, created_at=utcnow()))
        else:
            mapped.run_id = run.id
        return run

    def _fold(self, s: Session, src: str, dst: str) -> None:
        """Merge the placeholder run ``src`` (made by earlier events) into the catalog run
        ``dst`` that our provenance facet names, so one Airflow task shows as one run."""
        placeholder = s.get(Run, src)
        if placeholder is not None and not (placeholder.engine or {}).get("ingested"):
            return  # never fold a run Headwater recorded itself
        external.fold_run(s, src, dst)
        if placeholder is not None:
            s.delete(placeholder)
        s.flush()

    def _update_run(self, run: Run, ev: RunEventIn) -> None:
        """Fields of a run created by ingestion, from this event (events may come out of order:
        a terminal state is never replaced by START/RUNNING)."""
        time = parse_event_time(ev.eventTime)
        state = STATES.get(ev.eventType or "")
        if state == "RUNNING":
            if run.state not in TERMINAL:
                run.state = state
            if ev.eventType == "START":
                run.started_at = time
        elif state is not None:
            run.state, run.ended_at = state, time
        facets = ev.run.facets
        engine = dict(run.engine or {})
        engine.update({"ingested": True, "producer": redact(ev.producer)[:512],
                       "openlineage_run_id": ev.run.runId.lower()})
        pe = _facet(facets, "processing_engine")
        if _text(pe.get("name")):
            engine["name"] = _text(pe.get("name"), limit=128)
            engine["version"] = _text(pe.get("version"), limit=128)
        airflow = _facet(facets, "airflow")
        dag_id = _text(_facet(airflow, "dag").get("dag_id"), limit=256)
        task_id = _text(_facet(airflow, "task").get("task_id"), limit=256)
        if dag_id:
            engine["dag_id"] = dag_id
        if task_id:
            engine["task_id"] = task_id
        location = _text(_facet(ev.job.facets, "sourceCodeLocation").get("url"), limit=2048)
        if location:
            engine["source_location"] = redact(location)
        job_type = _facet(ev.job.facets, "jobType")
        if _text(job_type.get("integration")):
            engine["integration"] = _text(job_type.get("integration"), limit=128)
        run.engine = engine
        prov = _facet(facets, "headwater_provenance")
        if isinstance(prov.get("parameters"), dict):
            run.params = redact_json(prov["parameters"])
        code = _text(prov.get("codeFingerprint"), limit=128)
        if code:
            run.code_fingerprint = code
        key = _text(prov.get("cacheKey"), limit=64)
        if key:
            run.cache_key = key
        parent = _facet(facets, "parent")
        p_run = _uuid_text(_facet(parent, "run").get("runId"))
        p_job = _facet(parent, "job")
        if p_run and _text(p_job.get("namespace")) and _text(p_job.get("name")):
            run.parent = {"namespace": _text(p_job.get("namespace"), limit=1024),
                          "job": _text(p_job.get("name")), "run_id": p_run}
        nominal = _time(_facet(facets, "nominalTime").get("nominalStartTime"))
        if nominal is not None:
            run.nominal_time = nominal
        error = _facet(facets, "errorMessage")
        if _text(error.get("message")):
            trace = _text(error.get("stackTrace"), limit=20_000)
            message = _text(error.get("message"), limit=4096) or ""
            run.error = redact(message + (f"\n{trace}" if trace else ""))

    # -- datasets and versions ----------------------------------------------------------------
    def _dataset(self, s: Session, d: OLDataset) -> Dataset:
        namespace, name = redact(d.namespace), redact(d.name)
        key = dataset_key(namespace, name)
        mapped = external.mapped_dataset(s, key)
        if mapped is not None:
            ds = s.get(Dataset, mapped.dataset_id)
            if ds is not None:
                return ds
        default_type = "table" if _schema(d.facets) else "raw_data"
        logical = _logical_name(d.facets)
        if logical is not None:
            ds = self._ensure(s, logical, default_type=default_type)
        else:
            ds = self._foreign_dataset(s, namespace, name)
        s.add(OpenLineageDataset(key=key, namespace=namespace, name=name, dataset_id=ds.id,
                                 created_at=utcnow()))
        s.flush()
        return ds

    def _own_dataset(self, s: Session, d: OLDataset) -> Dataset:
        """The external dataset named after the event's own OpenLineage name, for what an event
        says about a native dataset beyond linking one of its existing versions."""
        namespace, name = redact(d.namespace), redact(d.name)
        key = dataset_key(OWN_KEY_PREFIX + namespace, name)
        mapped = external.mapped_dataset(s, key)
        if mapped is not None:
            ds = s.get(Dataset, mapped.dataset_id)
            if ds is not None and not is_native(s, ds):
                return ds
        ds = self._foreign_dataset(s, namespace, name)
        if mapped is not None:
            mapped.dataset_id = ds.id
        else:
            s.add(OpenLineageDataset(key=key, namespace=namespace, name=name, dataset_id=ds.id,
                                     created_at=utcnow()))
        s.flush()
        return ds

    def _foreign_dataset(self, s: Session, namespace: str, name: str) -> Dataset:
        """A dataset for a foreign OpenLineage name (rule 3 of docs/server.md): never an
        existing dataset, whichever created it."""
        ns, ds_name = catalog_dataset_name(namespace, name)
        target = DatasetName(ns, ds_name)
        if repo.find_dataset(s, target) is not None:  # taken by another dataset
            target = DatasetName(ns, disambiguated(ds_name, namespace, name))
            taken = repo.find_dataset(s, target)
            if taken is not None and is_native(s, taken):
                raise InvalidArgument(
                    f"OpenLineage dataset {namespace}:{name} maps to {target}, a dataset "
                    "Headwater wrote; rename that dataset or the OpenLineage one"
                )
        return self._ensure(s, target, default_type=EXTERNAL)

    @staticmethod
    def _ensure(s: Session, name: DatasetName, *, default_type: str) -> Dataset:
        try:  # the origin mark is written only when this creates the dataset
            return repo.ensure_dataset(s, name, type=None, default_type=default_type,
                                       metadata={"origin": ORIGIN})
        except InvalidArgument as exc:  # pragma: no cover - type=None never conflicts
            raise InvalidArgument(f"cannot map to dataset {name}: {exc}") from exc

    @staticmethod
    def _by_digest(s: Session, ds: Dataset, digest: str) -> Version | None:
        return external.version_by_digest(s, ds.id, digest)

    def _input_version(self, s: Session, ds: Dataset, d: OLDataset, *, producer: str) -> Version:
        v = self._observed_version(s, ds, d, producer=producer)
        if v is not None:
            return v
        latest = repo.latest_version(s, ds.id)
        if latest is not None:
            return latest
        if is_native(s, ds):  # an empty native dataset: the placeholder goes elsewhere
            ds = self._own_dataset(s, d)
            latest = repo.latest_version(s, ds.id)
            if latest is not None:
                return latest
        digest = _digest("openlineage-unversioned", redact(d.namespace), redact(d.name))
        return self._by_digest(s, ds, digest) or self._new_external(
            s, ds, digest, d, run_id=None, version=None, producer=producer)

    def _observed_version(
        self, s: Session, ds: Dataset, d: OLDataset, *, producer: str
    ) -> Version | None:
        """The version a DatasetVersion facet names (found or created), or None without one."""
        dataset_version, digest = _version_facet(d.facets)
        native = is_native(s, ds)
        if digest is not None:
            v = self._by_digest(s, ds, digest)
            if v is not None:
                return v
        elif dataset_version is not None and dataset_version.isdigit() and not native \
                and _logical_name(d.facets) is not None and len(dataset_version) < 10:
            v = external.version_by_number(s, ds.id, int(dataset_version))
            if v is not None:
                return v
        if digest is None and dataset_version is None:
            return None
        if native:  # not a version the catalog has: recorded under the event's own name
            ds = self._own_dataset(s, d)
        digest = digest or _digest("openlineage-version", redact(d.namespace), redact(d.name),
                                   dataset_version or "")
        return self._by_digest(s, ds, digest) or self._new_external(
            s, ds, digest, d, run_id=None, version=dataset_version, producer=producer)

    def _output_version(
        self, s: Session, ds: Dataset, d: OLDataset, *, run: Run, event_id: str, producer: str
    ) -> tuple[Version, bool]:
        dataset_version, digest = _version_facet(d.facets)
        if digest is None:
            digest = (_digest("openlineage-version", redact(d.namespace), redact(d.name),
                              dataset_version) if dataset_version is not None
                      else _digest("openlineage-event", redact(d.namespace), redact(d.name),
                                   event_id))
        v = self._by_digest(s, ds, digest)
        if v is None and is_native(s, ds):  # not a version the catalog has: under its own name
            ds = self._own_dataset(s, d)
            v = self._by_digest(s, ds, digest)
        if v is not None:
            if v.run_id is None and v.kind == EXTERNAL:
                v.run_id = run.id  # seen as an input first; now we know who wrote it
            return v, False
        return self._new_external(s, ds, digest, d, run_id=run.id, version=dataset_version,
                                  producer=producer), True

    def _new_external(
        self, s: Session, ds: Dataset, digest: str, d: OLDataset, *, run_id: str | None,
        version: str | None, producer: str,
    ) -> Version:
        """Through the catalog service: numbering, the one-version-per-digest rule and the
        native-dataset refusal, re-checked under the dataset's lock (the one rule every path
        above keeps), are its (ADR 0004)."""
        facets = d.facets
        extra = getattr(d, "outputFacets", None) or getattr(d, "inputFacets", None)
        stats_facet = _facet(extra, "outputStatistics")
        dq = _facet(facets, "dataQualityMetrics") or _facet(extra, "dataQualityMetrics")
        nulls = _null_counts(facets, extra)
        namespace, name = redact(d.namespace), redact(d.name)
        meta: dict[str, Any] = {"openlineage": {
            "namespace": namespace, "name": name, "datasetVersion": version,
            "producer": redact(producer)[:512]}}
        new = NewVersion(
            digest=digest,
            store_url=_ol_uri(namespace, name),
            kind=EXTERNAL,
            size=_first_count([(stats_facet, "size"), (dq, "bytes")]) or 0,
            file_count=_first_count([(stats_facet, "fileCount"), (dq, "fileCount")]) or 0,
            row_count=_first_count([(stats_facet, "rowCount"), (dq, "rowCount")]),
            schema=_schema(facets),
            stats={"null_counts": nulls} if nulls else {},
            meta=json.loads(json.dumps(meta)),
            run_id=run_id,
        )
        return self.catalog.service(s).external_version(ds, new, who="OpenLineage event")


__all__ = ["EXTERNAL", "ORIGIN", "IngestConflict", "Ingestor", "is_native"]
