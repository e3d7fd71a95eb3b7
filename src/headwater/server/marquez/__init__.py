"""Marquez 0.50's REST API over the catalog, so Marquez clients (``marquez-python``, Marquez's
web UI, scripts) read Headwater as they read Marquez: ``graph`` (``/lineage``), ``columns``
(``/column-lineage``), ``service`` (namespaces, sources, datasets and versions, jobs, job
versions, runs, events, tags, search), ``shapes`` (the JSON objects), ``idents`` (names and ids).
"""

from __future__ import annotations

from headwater.server.marquez.graph import MAX_DEPTH, graph, walk
from headwater.server.marquez.idents import resolve_node

__all__ = ["MAX_DEPTH", "graph", "resolve_node", "walk"]
