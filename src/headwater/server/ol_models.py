"""Request models of OpenLineage events, as the ingestion endpoint accepts them.

Why pydantic models and not the full JSON Schema: they give the OpenAPI spec (and so the fuzzer
and clients) the envelope every producer must send, and turn a malformed envelope into a clear
422; facets stay free-form dictionaries, because every producer adds its own and ingestion reads
only the few it understands, defensively.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
MAX_DATASETS = 10_000

Facets = dict[str, Any]


def parse_event_time(value: str) -> datetime:
    """An ISO 8601 time; a time without an offset is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def nul_path(value: Any) -> str | None:
    """Where a NUL character hides in a JSON value (``run.facets.x[2]``), or None.

    PostgreSQL stores no NUL in text or JSON (a 500 before this check) and SQLite's LIKE stops
    at one; no name, facet or search needs one, so they are refused with the place named."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where or "(the value)"
        elif isinstance(item, dict):
            for k, v in item.items():
                key = f"{where}.{k}" if where else str(k)
                if isinstance(k, str) and "\x00" in k:
                    return key.replace("\x00", "\\u0000")
                stack.append((key, v))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
    return None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OLDataset(_Open):
    namespace: str = Field(min_length=1, max_length=4096)
    name: str = Field(min_length=1, max_length=4096)
    facets: Facets | None = None


class OLInputDataset(OLDataset):
    inputFacets: Facets | None = None


class OLOutputDataset(OLDataset):
    outputFacets: Facets | None = None


class OLRun(_Open):
    runId: str = Field(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        description="A UUID (OpenLineage requires one).",
    )
    facets: Facets | None = None


class OLJob(_Open):
    namespace: str = Field(min_length=1, max_length=1024)
    name: str = Field(min_length=1, max_length=4096)
    facets: Facets | None = None


class _Timed(_Open):
    eventTime: str = Field(description="ISO 8601 date-time; without an offset it is UTC.",
                           json_schema_extra={"format": "date-time"})
    producer: str = Field(min_length=1, max_length=4096)
    schemaURL: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        where = nul_path(value)
        if where is not None:
            raise ValueError(f"{where} contains a NUL character (\\u0000), which the catalog "
                             "cannot store; remove it")
        return value

    @field_validator("eventTime")
    @classmethod
    def _time(cls, value: str) -> str:
        try:
            parse_event_time(value)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"eventTime {value[:64]!r} is not an ISO 8601 date-time") from exc
        return value


class RunEventIn(_Timed):
    """An OpenLineage RunEvent: a run of a job changed state, reading and writing datasets."""

    eventType: EventType | None = None
    run: OLRun
    job: OLJob
    inputs: list[OLInputDataset] = Field(default_factory=list, max_length=MAX_DATASETS)
    outputs: list[OLOutputDataset] = Field(default_factory=list, max_length=MAX_DATASETS)


class DatasetEventIn(_Timed):
    """An OpenLineage DatasetEvent: metadata about one dataset, outside any run."""

    dataset: OLDataset


class JobEventIn(_Timed):
    """An OpenLineage JobEvent: a job's static inputs and outputs, outside any run."""

    job: OLJob
    inputs: list[OLInputDataset] = Field(default_factory=list, max_length=MAX_DATASETS)
    outputs: list[OLOutputDataset] = Field(default_factory=list, max_length=MAX_DATASETS)


def _event_kind(value: Any) -> str:
    """Which event a body is: a run event has ``run``, a dataset event ``dataset``."""
    if isinstance(value, dict):
        return "run" if "run" in value else "dataset" if "dataset" in value else "job"
    return "run" if isinstance(value, RunEventIn) else (
        "dataset" if isinstance(value, DatasetEventIn) else "job")


LineageEventIn = Annotated[
    Annotated[RunEventIn, Tag("run")] | Annotated[DatasetEventIn, Tag("dataset")]
    | Annotated[JobEventIn, Tag("job")],
    Discriminator(_event_kind),
]


class IngestResult(BaseModel):
    status: Literal["ingested", "duplicate"]
    event_id: str
    run_id: str | None = None
    job: str | None = None
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)


__all__ = [
    "DatasetEventIn",
    "IngestResult",
    "JobEventIn",
    "LineageEventIn",
    "RunEventIn",
    "parse_event_time",
]
