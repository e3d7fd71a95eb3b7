"""The catalog server: REST API, Marquez-compatible OpenLineage ingestion and the web UI.

``create_app(catalog)`` builds the FastAPI application; ``headwater serve`` runs it with uvicorn
(optional extra ``headwater[server]``). Nothing else in Headwater imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.server.app import create_app as create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from headwater.server.app import create_app

        return create_app
    raise AttributeError(name)


__all__ = ["create_app"]
