"""Version-level lineage and impact: the graph the web UI draws and the CLI prints.

Why separate from the Marquez endpoint: this graph is exact (versions and runs, the edges the
catalog recorded), where Marquez's shape is a dataset/job summary for existing Marquez clients.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from headwater.catalog import listings
from headwater.server.deps import CatalogDep, NameP, NamespaceP, Read, SelectorP, version_ref

router = APIRouter(tags=["lineage"])
BASE = "/versions/{namespace}/{name}/{selector}"
MAX_DEPTH = 100


def _kinds(catalog: Any, nodes: list[dict[str, Any]]) -> None:
    """Mark external versions (recorded from OpenLineage) so the UI can draw them apart."""
    digests = {n["digest"] for n in nodes if n.get("type") == "version"}
    if not digests:
        return
    with catalog.session() as s:
        kinds = listings.version_kinds(s, list(digests))
    for n in nodes:
        if n.get("type") == "version":
            n["kind"] = kinds.get(n["digest"], "files")


@router.get(BASE + "/lineage", dependencies=[Read],
            summary="Versions and runs upstream and/or downstream of a version")
def get_lineage(
    catalog: CatalogDep, namespace: NamespaceP, name: NameP, selector: SelectorP,
    direction: Annotated[str, Query(pattern="^(up|down|both)$")] = "both",
    depth: Annotated[int | None, Query(ge=0, le=MAX_DEPTH,
                                       description="Hops (run + version = 1); none: all")] = 10,
) -> dict[str, Any]:
    graph = catalog.lineage(version_ref(namespace, name, selector), direction=direction,
                            depth=depth).to_dict()
    _kinds(catalog, graph["nodes"])
    return graph


@router.get(BASE + "/impact", dependencies=[Read],
            summary="Everything derived from a version, and the tasks that rebuild it")
def get_impact(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
               selector: SelectorP) -> dict[str, Any]:
    ref = version_ref(namespace, name, selector)
    graph = catalog.lineage(ref, direction="down")
    from headwater.impact import impact_of
    from headwater.rebuild import plan_rebuild

    report = impact_of(graph)
    out = report.to_dict()
    out["nodes"] = sorted(n for n in graph.nodes if n != graph.root)
    plan = plan_rebuild(catalog, ref, require_replacement=False)
    out["rebuild"] = plan.to_dict()
    out["rebuild_commands"] = plan.commands()
    return out
