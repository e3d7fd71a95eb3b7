"""The Marquez-compatible OpenLineage API: ``POST /api/v1/lineage`` and ``GET /api/v1/lineage``.

Why Marquez's paths and shapes: every OpenLineage producer already knows how to send to Marquez
(``OPENLINEAGE_URL=http://host:port``), and Marquez clients already read its graph; pointing them
at Headwater should need no code change.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from headwater.server import marquez
from headwater.server.deps import CatalogDep, Read, Write
from headwater.server.ingest import Ingestor
from headwater.server.ol_models import IngestResult, LineageEventIn

router = APIRouter(tags=["openlineage"])


@router.post("/lineage", dependencies=[Write], status_code=201, response_model=IngestResult,
             responses={200: {"model": IngestResult, "description": "Duplicate: already seen"}},
             summary="Record an OpenLineage event (run, dataset or job event)")
def post_lineage(request: Request, catalog: CatalogDep, response: Response,
                 event: Annotated[LineageEventIn, Body()]) -> IngestResult:
    """Accepts what Marquez accepts (201). A redelivered event (same run id, event type and
    event time) is acknowledged with 200 as a ``duplicate`` and changes nothing. Bodies may be
    ``Content-Encoding: gzip`` (the size limit holds for the inflated bytes too)."""
    request.app.state.retention.maybe_prune(catalog)
    result = Ingestor(catalog).ingest(event)
    if result.status == "duplicate":
        response.status_code = 200
    return result


@router.get("/lineage", dependencies=[Read], summary="Lineage graph in Marquez's shape")
def get_lineage(
    catalog: CatalogDep,
    nodeId: Annotated[str, Query(min_length=3, max_length=8192,
                                 description="`dataset:<namespace>:<name>` or "
                                 "`job:<namespace>:<name>`")],
    depth: Annotated[int, Query(ge=0, le=marquez.MAX_DEPTH)] = 20,
) -> dict[str, Any]:
    with catalog.session() as s:
        return marquez.graph(s, nodeId, depth)
