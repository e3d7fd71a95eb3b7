"""Headwater's own OpenLineage facet: ``headwater_provenance``, a run facet.

It carries what makes a Headwater run reproducible and cacheable: the cache key, the code
fingerprint, the parameters and the content digests of every input and output version. Its
JSON Schema ships in the package (``lineage/schemas/HeadwaterProvenanceRunFacet.json``) and is
published at :data:`SCHEMA_URL`; the URL carries the facet's version and never changes meaning:
a changed shape gets a new version, a new ``$id`` and a new URL.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import attr
from openlineage.client.generated.base import DatasetFacet, RunFacet

from headwater.lineage.record import headwater_version, producer_url

FACET_KEY = "headwater_provenance"
FACET_VERSION = "1-0-0"
SCHEMA_ID = (
    "https://headwater-data.github.io/headwater/spec/facets/"
    f"{FACET_VERSION}/HeadwaterProvenanceRunFacet.json"
)
SCHEMA_URL = f"{SCHEMA_ID}#/$defs/HeadwaterProvenanceRunFacet"
SCHEMA_RESOURCE = "HeadwaterProvenanceRunFacet.json"


#: ``producer`` of every event and facet this Headwater writes (Airflow's provider would
#: otherwise substitute its own default producer). Events are built from outbox records with the
#: version that committed them (:func:`headwater.lineage.record.producer_url`).
PRODUCER = producer_url(headwater_version())


@attr.define
class VersionDigest:
    """One input or output version: logical name, version number and root (manifest) digest."""

    name: str
    version: int
    digest: str
    tableFingerprint: str | None = attr.field(default=None)
    created: bool | None = attr.field(default=None)


@attr.define
class HeadwaterProvenanceRunFacet(RunFacet):
    """What Headwater knows about a run beyond the standard facets."""

    runId: str
    cacheKey: str | None = attr.field(default=None)
    codeFingerprint: str | None = attr.field(default=None)
    parameters: dict[str, Any] = attr.field(factory=dict)
    inputs: list[VersionDigest] = attr.field(factory=list)
    outputs: list[VersionDigest] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


RETRACTION_FACET_KEY = "headwater_retraction"
RETRACTION_SCHEMA_RESOURCE = "HeadwaterRetractionDatasetFacet.json"
RETRACTION_SCHEMA_URL = (
    "https://headwater-data.github.io/headwater/spec/facets/"
    f"{FACET_VERSION}/HeadwaterRetractionDatasetFacet.json#/$defs/HeadwaterRetractionDatasetFacet"
)


@attr.define
class HeadwaterRetractionDatasetFacet(DatasetFacet):
    """On a dataset of an event: the version was retracted when the run read (or wrote) it,
    i.e. the run opted in with ``allow_retracted`` (docs/retract-status.md)."""

    retracted: bool = attr.field(default=True)

    @staticmethod
    def _get_schema() -> str:
        return RETRACTION_SCHEMA_URL


def load_schema(resource: str = SCHEMA_RESOURCE) -> dict[str, Any]:
    """A facet's published JSON Schema (default: the provenance facet's), read from the
    installed package."""
    text = resources.files("headwater.lineage").joinpath("schemas", resource).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


__all__ = [
    "FACET_KEY",
    "PRODUCER",
    "RETRACTION_FACET_KEY",
    "RETRACTION_SCHEMA_RESOURCE",
    "SCHEMA_URL",
    "HeadwaterProvenanceRunFacet",
    "HeadwaterRetractionDatasetFacet",
    "VersionDigest",
    "headwater_version",
    "load_schema",
]
