"""Building OpenLineage run events from Headwater's :class:`RunEvent`, with openlineage-python's
own typed classes (``event_v2`` / ``facet_v2``).

Every event and every facet is given ``producer=`` explicitly: when Airflow's OpenLineage
provider is loaded it replaces the client's default producer, and Headwater's events must still
say that Headwater wrote them.

``RunEvent.parent`` (filled in by the Airflow and Beam adapters) has this shape::

    {
        "namespace": "airflow-prod",        # OpenLineage namespace of the parent job
        "job": "my_dag.my_task",            # parent job name
        "run_id": "0190c1c2-...",           # parent run id: a UUID
        "root": {                           # optional: the root of the hierarchy
            "namespace": "airflow-prod",    #   (for an Airflow task: the DAG run)
            "job": "my_dag",
            "run_id": "0190c1c0-...",
        },
    }

A parent that does not have this shape is left out of the event (and logged); it never fails
the run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunState,
)
from openlineage.client.event_v2 import RunEvent as OLRunEvent
from openlineage.client.facet_v2 import (
    BaseFacet,
    data_quality_metrics_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    datasource_dataset,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    source_code_location_job,
    symlinks_dataset,
)
from openlineage.client.serde import Serde

from headwater.lineage.base import RunEvent
from headwater.lineage.naming import LOGICAL_NAMESPACE, catalog_dataset, store_location
from headwater.lineage.provenance import (
    FACET_KEY,
    PRODUCER,
    HeadwaterProvenanceRunFacet,
    VersionDigest,
    headwater_version,
)
from headwater.version import VersionInfo

log = logging.getLogger(__name__)

INTEGRATION = "HEADWATER"
DEFAULT_JOB_TYPE = "STEP"
#: UUIDv5 namespace of event identities (see :func:`event_identity`).
EVENT_ID_NAMESPACE = uuid.UUID("6f1d2b8e-4c1a-5b7e-9a65-0d9f3b1c7e42")


def event_identity(run_id: str, event_type: str, event_time: str) -> str:
    """The stable identity of an event: the same for every delivery of it.

    Consumers deduplicate on ``(run.runId, eventType, eventTime)``; this UUIDv5 of the three is
    the outbox's ``event_id`` and a convenient single key for the same thing.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{run_id}|{event_type}|{event_time}"))


def isotime(value: datetime) -> str:
    """ISO 8601 with an explicit UTC offset (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


# -- run facets -------------------------------------------------------------------------------
def parent_facet(parent: Mapping[str, Any] | None) -> parent_run.ParentRunFacet | None:
    """ParentRunFacet from ``RunEvent.parent`` (shape in the module docstring), or None."""
    if not parent:
        return None
    try:
        root = parent.get("root")
        root_obj = None
        if root:
            root_obj = parent_run.Root(
                run=parent_run.RootRun(runId=str(uuid.UUID(str(root["run_id"])))),
                job=parent_run.RootJob(namespace=str(root["namespace"]), name=str(root["job"])),
            )
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=str(uuid.UUID(str(parent["run_id"])))),
            job=parent_run.Job(namespace=str(parent["namespace"]), name=str(parent["job"])),
            root=root_obj,
            producer=PRODUCER,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning(
            "headwater lineage: ignoring malformed parent %r (%s: %s); expected "
            "{'namespace', 'job', 'run_id' (UUID), optional 'root'}",
            parent,
            type(exc).__name__,
            exc,
        )
        return None


def engine_facet(engine: Mapping[str, Any]) -> processing_engine_run.ProcessingEngineRunFacet:
    name = engine.get("name")
    engine_version = engine.get("version")
    if not name:
        name, engine_version = "headwater", headwater_version()
    return processing_engine_run.ProcessingEngineRunFacet(
        version=str(engine_version or "unknown"),
        name=str(name),
        openlineageAdapterVersion=headwater_version(),
        producer=PRODUCER,
    )


def error_facet(error: str) -> error_message_run.ErrorMessageRunFacet:
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return error_message_run.ErrorMessageRunFacet(
        message=lines[-1].strip() if lines else "run failed",
        programmingLanguage="python",
        stackTrace=error,
        producer=PRODUCER,
    )


def provenance_facet(event: RunEvent) -> HeadwaterProvenanceRunFacet:
    def digest(v: VersionInfo, *, output: bool) -> VersionDigest:
        return VersionDigest(
            name=v.name,
            version=v.number,
            digest=v.digest,
            tableFingerprint=v.table_fingerprint or None,
            created=v.created if output else None,
        )

    return HeadwaterProvenanceRunFacet(
        runId=event.run_id,
        cacheKey=event.cache_key,
        codeFingerprint=event.code_fingerprint,
        parameters=dict(event.params),
        inputs=[digest(v, output=False) for v in event.inputs],
        outputs=[digest(v, output=True) for v in event.outputs],
        producer=PRODUCER,
    )


def run_facets(event: RunEvent) -> dict[str, BaseFacet]:
    facets: dict[str, BaseFacet] = {
        "processing_engine": engine_facet(event.engine),
        FACET_KEY: provenance_facet(event),
    }
    parent = parent_facet(event.parent)
    if parent is not None:
        facets["parent"] = parent
    if event.nominal_time is not None:
        facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=isotime(event.nominal_time), producer=PRODUCER
        )
    if event.state == "FAIL" and event.error:
        facets["errorMessage"] = error_facet(event.error)
    return facets


# -- job facets -------------------------------------------------------------------------------
def source_location_facet(
    location: Any,
) -> source_code_location_job.SourceCodeLocationJobFacet | None:
    """From a URL string, or a mapping with ``url`` and optional ``type``/``path``/``version``…"""
    if not location:
        return None
    if isinstance(location, str):
        location = {"url": location}
    if not isinstance(location, Mapping) or not location.get("url"):
        return None
    url = str(location["url"])
    kind = location.get("type") or ("file" if url.startswith(("file:", "/")) else "git")
    return source_code_location_job.SourceCodeLocationJobFacet(
        type=str(kind),
        url=url,
        repoUrl=location.get("repoUrl"),
        path=location.get("path"),
        version=location.get("version"),
        tag=location.get("tag"),
        branch=location.get("branch"),
        producer=PRODUCER,
    )


def job_facets(event: RunEvent) -> dict[str, BaseFacet]:
    facets: dict[str, BaseFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration=INTEGRATION,
            jobType=(event.job_type or DEFAULT_JOB_TYPE).upper(),
            producer=PRODUCER,
        )
    }
    location = source_location_facet(event.source_location)
    if location is not None:
        facets["sourceCodeLocation"] = location
    return facets


# -- datasets ---------------------------------------------------------------------------------
def dataset_facets(v: VersionInfo) -> dict[str, BaseFacet]:
    root = store_location(v.store_url)
    facets: dict[str, BaseFacet] = {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(v.number), producer=PRODUCER
        ).with_additional_properties(digest=v.digest),
        "dataSource": datasource_dataset.DatasourceDatasetFacet(
            name=root.namespace,
            uri=f"file://{root.name}" if root.namespace == "file" else v.store_url,
            producer=PRODUCER,
        ),
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[
                symlinks_dataset.Identifier(
                    namespace=LOGICAL_NAMESPACE, name=v.name, type="DATASET"
                )
            ],
            producer=PRODUCER,
        ),
    }
    if v.schema:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=str(col.get("name")),
                    type=str(col.get("type")) if col.get("type") is not None else None,
                    ordinal_position=pos,
                )
                for pos, col in enumerate(v.schema, start=1)
            ],
            producer=PRODUCER,
        )
    return facets


def _null_counts(v: VersionInfo) -> dict[str, int]:
    raw = v.stats.get("null_counts") if isinstance(v.stats, Mapping) else None
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): int(n) for k, n in raw.items() if isinstance(n, int)}


def input_dataset(v: VersionInfo) -> InputDataset:
    ident = catalog_dataset(v.store_url, v.namespace, v.dataset)
    input_facets: dict[str, Any] = {}
    if nulls := _null_counts(v):
        input_facets["dataQualityMetrics"] = (
            data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                columnMetrics={
                    col: data_quality_metrics_input_dataset.ColumnMetrics(nullCount=n)
                    for col, n in sorted(nulls.items())
                },
                rowCount=v.row_count,
                bytes=v.size,
                fileCount=v.file_count,
                producer=PRODUCER,
            )
        )
    return InputDataset(
        namespace=ident.namespace,
        name=ident.name,
        facets=cast(Any, dataset_facets(v)),
        inputFacets=input_facets,
    )


def output_dataset(v: VersionInfo) -> OutputDataset:
    ident = catalog_dataset(v.store_url, v.namespace, v.dataset)
    facets: dict[str, Any] = dataset_facets(v)
    if nulls := _null_counts(v):
        facets["dataQualityMetrics"] = data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
            columnMetrics={
                col: data_quality_metrics_dataset.ColumnMetrics(nullCount=n)
                for col, n in sorted(nulls.items())
            },
            rowCount=v.row_count,
            bytes=v.size,
            fileCount=v.file_count,
            producer=PRODUCER,
        )
    return OutputDataset(
        namespace=ident.namespace,
        name=ident.name,
        facets=facets,
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=v.row_count,
                size=v.size,
                fileCount=v.file_count,
                producer=PRODUCER,
            )
        },
    )


# -- events -----------------------------------------------------------------------------------
def build_event(event: RunEvent) -> OLRunEvent:
    """The OpenLineage RunEvent for one state change of a Headwater run."""
    return OLRunEvent(
        eventType=RunState(event.state),
        eventTime=isotime(event.event_time),
        run=Run(runId=event.run_id, facets=cast(Any, run_facets(event))),
        job=Job(
            namespace=event.job_namespace,
            name=event.job_name,
            facets=cast(Any, job_facets(event)),
        ),
        inputs=[input_dataset(v) for v in event.inputs],
        outputs=[output_dataset(v) for v in event.outputs],
        producer=PRODUCER,
    )


def event_to_dict(event: OLRunEvent) -> dict[str, Any]:
    """JSON-ready dict of ``event`` exactly as openlineage-python serialises it."""
    return Serde.to_dict(event)


def event_from_dict(data: Mapping[str, Any]) -> OLRunEvent:
    """A typed RunEvent around a stored event dict, for openlineage-python's transports.

    The envelope (run, job, datasets) is rebuilt with the client's classes so transports that
    read attributes (Kafka's message key, the file transport's file name) work; facets stay the
    plain dicts that were stored, so the payload sent is the payload written to the outbox.
    """
    run = data["run"]
    job = data["job"]
    return OLRunEvent(
        eventType=RunState(data["eventType"]),
        eventTime=str(data["eventTime"]),
        run=Run(runId=str(run["runId"]), facets=dict(run.get("facets") or {})),
        job=Job(
            namespace=str(job["namespace"]),
            name=str(job["name"]),
            facets=dict(job.get("facets") or {}),
        ),
        inputs=[
            InputDataset(
                namespace=str(d["namespace"]),
                name=str(d["name"]),
                facets=dict(d.get("facets") or {}),
                inputFacets=dict(d.get("inputFacets") or {}),
            )
            for d in data.get("inputs") or []
        ],
        outputs=[
            OutputDataset(
                namespace=str(d["namespace"]),
                name=str(d["name"]),
                facets=dict(d.get("facets") or {}),
                outputFacets=dict(d.get("outputFacets") or {}),
            )
            for d in data.get("outputs") or []
        ],
        producer=str(data.get("producer") or PRODUCER),
    )


__all__ = [
    "DEFAULT_JOB_TYPE",
    "INTEGRATION",
    "build_event",
    "event_from_dict",
    "event_identity",
    "event_to_dict",
    "parent_facet",
]
