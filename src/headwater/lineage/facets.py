"""Building OpenLineage run events, with openlineage-python's own typed classes (``event_v2`` /
``facet_v2``), from the outbox record of a run state change (:mod:`headwater.lineage.record`).

Events are built at delivery, not at commit: the commit stores the record, which holds every
fact the event says (its ``eventTime`` and ``producer`` included), so the event built later is
the event that would have been built at commit, and the commit path never imports openlineage.

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
from functools import cache
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
    column_lineage_dataset,
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

from headwater.lineage import columns
from headwater.lineage.base import RunEvent
from headwater.lineage.naming import LOGICAL_NAMESPACE, catalog_dataset, store_location
from headwater.lineage.provenance import (
    FACET_KEY,
    PRODUCER,
    RETRACTION_FACET_KEY,
    HeadwaterProvenanceRunFacet,
    HeadwaterRetractionDatasetFacet,
    VersionDigest,
    load_schema,
)
from headwater.lineage.record import (
    EVENT_ID_NAMESPACE,
    check_record,
    event_identity,
    is_record,
    isotime,
    producer_url,
    to_record,
    version_record,
)
from headwater.version import VersionInfo

log = logging.getLogger(__name__)

INTEGRATION = "HEADWATER"
DEFAULT_JOB_TYPE = "STEP"

Record = Mapping[str, Any]


# -- run facets -------------------------------------------------------------------------------
def parent_facet(
    parent: Mapping[str, Any] | None, producer: str = PRODUCER
) -> parent_run.ParentRunFacet | None:
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
            producer=producer,
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


def engine_facet(
    engine: Mapping[str, Any], hw_version: str
) -> processing_engine_run.ProcessingEngineRunFacet:
    name = engine.get("name")
    engine_version = engine.get("version")
    if not name:
        name, engine_version = "headwater", hw_version
    return processing_engine_run.ProcessingEngineRunFacet(
        version=str(engine_version or "unknown"),
        name=str(name),
        openlineageAdapterVersion=hw_version,
        producer=producer_url(hw_version),
    )


def error_facet(error: str, producer: str = PRODUCER) -> error_message_run.ErrorMessageRunFacet:
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return error_message_run.ErrorMessageRunFacet(
        message=lines[-1].strip() if lines else "run failed",
        programmingLanguage="python",
        stackTrace=error,
        producer=producer,
    )


def _provenance_facet(rec: Record, producer: str) -> HeadwaterProvenanceRunFacet:
    def digest(v: Record) -> VersionDigest:
        return VersionDigest(
            name=f"{v['namespace']}/{v['dataset']}",
            version=int(v["number"]),
            digest=str(v["digest"]),
            tableFingerprint=v.get("tableFingerprint") or None,
            created=v.get("created"),
        )

    return HeadwaterProvenanceRunFacet(
        runId=str(rec["runId"]),
        cacheKey=rec.get("cacheKey"),
        codeFingerprint=rec.get("codeFingerprint"),
        parameters=dict(rec.get("params") or {}),
        inputs=[digest(v) for v in rec.get("inputs") or ()],
        outputs=[digest(v) for v in rec.get("outputs") or ()],
        producer=producer,
    )


def run_facets(rec: Record) -> dict[str, BaseFacet]:
    hw_version = str(rec["producerVersion"])
    producer = producer_url(hw_version)
    facets: dict[str, BaseFacet] = {
        "processing_engine": engine_facet(rec.get("engine") or {}, hw_version),
        FACET_KEY: _provenance_facet(rec, producer),
    }
    parent = parent_facet(rec.get("parent"), producer)
    if parent is not None:
        facets["parent"] = parent
    if rec.get("nominalTime") is not None:
        facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=str(rec["nominalTime"]), producer=producer
        )
    if rec["eventType"] in ("FAIL", "ABORT") and rec.get("error"):
        facets["errorMessage"] = error_facet(str(rec["error"]), producer)
    return facets


# -- job facets -------------------------------------------------------------------------------
def source_location_facet(
    location: Any, producer: str = PRODUCER
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
        producer=producer,
    )


def job_facets(rec: Record) -> dict[str, BaseFacet]:
    producer = producer_url(str(rec["producerVersion"]))
    facets: dict[str, BaseFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration=INTEGRATION,
            jobType=(rec.get("jobType") or DEFAULT_JOB_TYPE).upper(),
            producer=producer,
        )
    }
    location = source_location_facet(rec.get("sourceLocation"), producer)
    if location is not None:
        facets["sourceCodeLocation"] = location
    return facets


# -- datasets ---------------------------------------------------------------------------------
def dataset_facets(v: Record, producer: str) -> dict[str, BaseFacet]:
    store_url = str(v["storeUrl"])
    root = store_location(store_url)
    facets: dict[str, BaseFacet] = {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(v["number"]), producer=producer
        ).with_additional_properties(digest=v["digest"]),
        "dataSource": datasource_dataset.DatasourceDatasetFacet(
            name=root.namespace,
            uri=f"file://{root.name}" if root.namespace == "file" else store_url,
            producer=producer,
        ),
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(
            identifiers=[
                symlinks_dataset.Identifier(
                    namespace=LOGICAL_NAMESPACE,
                    name=f"{v['namespace']}/{v['dataset']}",
                    type="DATASET",
                )
            ],
            producer=producer,
        ),
    }
    if v.get("retracted"):
        facets[RETRACTION_FACET_KEY] = HeadwaterRetractionDatasetFacet(producer=producer)
    if v.get("schema"):
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=str(name), type=kind, ordinal_position=pos
                )
                for pos, (name, kind) in enumerate(v["schema"], start=1)
            ],
            producer=producer,
        )
    return facets


def _input_dataset(v: Record, producer: str) -> InputDataset:
    ident = catalog_dataset(str(v["storeUrl"]), str(v["namespace"]), str(v["dataset"]))
    input_facets: dict[str, Any] = {}
    if nulls := v.get("nullCounts"):
        input_facets["dataQualityMetrics"] = (
            data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                columnMetrics={
                    col: data_quality_metrics_input_dataset.ColumnMetrics(nullCount=n)
                    for col, n in sorted(nulls.items())
                },
                rowCount=v.get("rowCount"),
                bytes=v.get("size"),
                fileCount=v.get("fileCount"),
                producer=producer,
            )
        )
    return InputDataset(
        namespace=ident.namespace,
        name=ident.name,
        facets=cast(Any, dataset_facets(v, producer)),
        inputFacets=input_facets,
    )


def column_lineage_facet(
    fields: Mapping[str, Mapping[str, Any]], producer: str
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """The ``columnLineage`` facet of :func:`headwater.lineage.columns.field_lineage`'s fields."""
    cl = column_lineage_dataset
    return cl.ColumnLineageDatasetFacet(
        fields={
            out: cl.Fields(
                inputFields=[
                    cl.InputField(
                        namespace=f["namespace"], name=f["name"], field=f["field"],
                        transformations=[cl.Transformation(**t) for t in f["transformations"]],
                    )
                    for f in spec["inputFields"]
                ],
                transformationDescription=spec.get("transformationDescription"),
                transformationType=spec.get("transformationType"),
            )
            for out, spec in fields.items()
        },
        producer=producer,
    )


def _column_lineage(rec: Record, v: Record) -> dict[str, Any]:
    """Column lineage of output ``v`` of a run of a known Headwater step (empty otherwise)."""
    step = columns.step_of(rec.get("engine"))
    if step is None or not v.get("schema"):
        return {}
    sources = []
    for inp in rec.get("inputs") or ():
        if inp.get("schema"):
            ident = catalog_dataset(str(inp["storeUrl"]), str(inp["namespace"]),
                                    str(inp["dataset"]))
            sources.append(columns.Source(ident.namespace, ident.name,
                                          tuple(str(c[0]) for c in inp["schema"])))
    return columns.field_lineage(step, rec.get("params") or {}, sources,
                                 [str(c[0]) for c in v["schema"]])


def _output_dataset(v: Record, producer: str,
                    column_lineage: Mapping[str, Any] | None = None) -> OutputDataset:
    ident = catalog_dataset(str(v["storeUrl"]), str(v["namespace"]), str(v["dataset"]))
    facets: dict[str, Any] = dataset_facets(v, producer)
    if column_lineage:
        facets["columnLineage"] = column_lineage_facet(column_lineage, producer)
    if nulls := v.get("nullCounts"):
        facets["dataQualityMetrics"] = data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
            columnMetrics={
                col: data_quality_metrics_dataset.ColumnMetrics(nullCount=n)
                for col, n in sorted(nulls.items())
            },
            rowCount=v.get("rowCount"),
            bytes=v.get("size"),
            fileCount=v.get("fileCount"),
            producer=producer,
        )
    return OutputDataset(
        namespace=ident.namespace,
        name=ident.name,
        facets=facets,
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=v.get("rowCount"),
                size=v.get("size"),
                fileCount=v.get("fileCount"),
                producer=producer,
            )
        },
    )


# -- events -----------------------------------------------------------------------------------
def build_from_record(record: Record) -> OLRunEvent:
    """The OpenLineage RunEvent of one outbox record (see :mod:`headwater.lineage.record`)."""
    rec = check_record(record)
    producer = producer_url(str(rec["producerVersion"]))
    return OLRunEvent(
        eventType=RunState(rec["eventType"]),
        eventTime=str(rec["eventTime"]),
        run=Run(runId=str(rec["runId"]), facets=cast(Any, run_facets(rec))),
        job=Job(
            namespace=str(rec["jobNamespace"]),
            name=str(rec["jobName"]),
            facets=cast(Any, job_facets(rec)),
        ),
        inputs=[_input_dataset(v, producer) for v in rec.get("inputs") or ()],
        outputs=[_output_dataset(v, producer, _column_lineage(rec, v))
                 for v in rec.get("outputs") or ()],
        producer=producer,
    )


# -- from a run's live objects (the Airflow provider's OperatorLineage) ------------------------
def provenance_facet(event: RunEvent) -> HeadwaterProvenanceRunFacet:
    """Headwater's run facet for ``event``, by the same builder as the delivered events."""
    return _provenance_facet(to_record(event), PRODUCER)


def input_dataset(v: VersionInfo) -> InputDataset:
    """The input dataset of version ``v``, by the same builder as the delivered events."""
    return _input_dataset(version_record(v, output=False), PRODUCER)


def output_dataset(v: VersionInfo) -> OutputDataset:
    """The output dataset of version ``v``, by the same builder as the delivered events."""
    return _output_dataset(version_record(v, output=True), PRODUCER)


def build_event(event: RunEvent) -> OLRunEvent:
    """The OpenLineage RunEvent for one state change of a Headwater run (through its record, so
    there is one way to build an event)."""
    return build_from_record(to_record(event))


def event_to_dict(event: OLRunEvent) -> dict[str, Any]:
    """JSON-ready dict of ``event`` exactly as openlineage-python serialises it."""
    return Serde.to_dict(event)


@cache
def _provenance_validator() -> Any:
    """Our facet's published schema, with its reference to the OpenLineage core ``RunFacet``
    (not shipped in the package) replaced by that definition's two required fields."""
    import copy

    import jsonschema

    defs = copy.deepcopy(load_schema()["$defs"])
    facet = defs["HeadwaterProvenanceRunFacet"]
    facet["allOf"] = [
        part
        for part in facet.get("allOf", [])
        if not str(part.get("$ref", "")).startswith("https://openlineage.io/")
    ] + [
        {
            "type": "object",
            "required": ["_producer", "_schemaURL"],
            "properties": {"_producer": {"type": "string"}, "_schemaURL": {"type": "string"}},
        }
    ]
    return jsonschema.Draft202012Validator(
        {"$ref": "#/$defs/HeadwaterProvenanceRunFacet", "$defs": defs}
    )


def event_for_delivery(stored: Mapping[str, Any]) -> OLRunEvent:
    """The typed event to hand a transport for one stored outbox payload.

    A record is built and checked here (its format; Headwater's own facet against its published
    schema), so a payload that cannot make a valid event is refused with a reason instead of
    being sent. A complete event stored by an older Headwater is sent as stored.
    """
    if not is_record(stored):
        return event_from_dict(stored)
    event = build_from_record(stored)
    facet = Serde.to_dict((event.run.facets or {})[FACET_KEY])
    errors = sorted(_provenance_validator().iter_errors(facet), key=lambda e: list(e.path))
    if errors:
        raise ValueError(f"{FACET_KEY} facet does not match its schema: {errors[0].message}")
    return event


def stored_event(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenLineage event (JSON dict) an outbox payload stands for: what delivery sends,
    before the transport's client adds its own facets."""
    return event_to_dict(build_from_record(stored)) if is_record(stored) else dict(stored)


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
    "EVENT_ID_NAMESPACE",
    "INTEGRATION",
    "build_event",
    "build_from_record",
    "event_for_delivery",
    "event_from_dict",
    "event_identity",
    "event_to_dict",
    "input_dataset",
    "isotime",
    "output_dataset",
    "parent_facet",
    "provenance_facet",
    "stored_event",
]
