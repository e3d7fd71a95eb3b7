"""The server's application factory: one FastAPI app = REST API + OpenLineage endpoint + web UI.

Why a factory: ``headwater serve`` builds the app for a catalog it opened, tests build one per
catalog fixture, and the Airflow plugin builds a read-only one whose catalog comes from the
Headwater connection when the first request arrives. Every error leaves as a 4xx/5xx JSON body
``{"detail": "..."}`` with secrets masked — never a traceback, never a connection password.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from headwater.api import Catalog
from headwater.errors import (
    AmbiguousReference,
    CatalogSchemaOutdated,
    CatalogUnavailable,
    DatasetNotFound,
    HeadwaterError,
    InvalidArgument,
    InvalidReference,
    ObjectCorrupted,
    ObjectMissing,
    ReferenceChanged,
    RunFailed,
    StoreUnavailable,
    UnsafePath,
    VersionNotFound,
)
from headwater.server.auth import AccessPolicy
from headwater.server.redact import install_log_filter, redact

log = logging.getLogger("headwater.server")
MAX_BODY = 16 * 1024 * 1024

#: Our errors → HTTP status. Order matters: the first matching class wins.
STATUS: list[tuple[type[BaseException], int]] = [
    (DatasetNotFound, 404),
    (VersionNotFound, 404),
    (AmbiguousReference, 400),
    (InvalidReference, 400),
    (InvalidArgument, 400),
    (UnsafePath, 400),
    (ObjectMissing, 409),
    (ObjectCorrupted, 409),
    (ReferenceChanged, 409),
    (RunFailed, 409),
    (CatalogUnavailable, 503),
    (CatalogSchemaOutdated, 503),
    (StoreUnavailable, 503),
    (HeadwaterError, 400),
    (LookupError, 404),
    (ValueError, 400),
]


class CatalogHolder:
    """The catalog the app serves: given, or opened by a factory on first use (Airflow)."""

    def __init__(self, catalog: Catalog | Callable[[], Catalog]) -> None:
        self._catalog = catalog if isinstance(catalog, Catalog) else None
        self._factory = None if isinstance(catalog, Catalog) else catalog
        self._lock = threading.Lock()

    def get(self) -> Catalog:
        if self._catalog is None:
            with self._lock:
                if self._catalog is None and self._factory is not None:
                    self._catalog = self._factory()
        if self._catalog is None:  # pragma: no cover - constructor guarantees one of the two
            raise CatalogUnavailable("the server has no catalog configured")
        return self._catalog


def status_of(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(HeadwaterError)
    @app.exception_handler(LookupError)
    @app.exception_handler(ValueError)
    async def known(request: Request, exc: Exception) -> JSONResponse:
        return _error(status_of(exc), redact(str(exc)) or type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append({"loc": where, "msg": redact(str(err.get("msg", "invalid")))})
        return _error(422, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path,
                  type(exc).__name__, redact(str(exc)), exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")


def create_app(
    catalog: Catalog | Callable[[], Catalog],
    *,
    policy: AccessPolicy | None = None,
    read_only: bool = False,
    title: str = "Headwater",
) -> FastAPI:
    """The server app for ``catalog`` (or a function that opens it on first use).

    ``read_only=True`` removes every write endpoint's effect (they answer 403) and hides the
    UI's write actions: the Airflow plugin page mounts the app this way. ``policy`` defaults to no
    tokens (development mode): callers exposing the app beyond loopback must pass tokens.
    """
    from headwater.server.routes import datasets, lineage, openlineage, runs, ui, versions

    policy = policy or AccessPolicy()
    if read_only and not policy.read_only:
        policy = AccessPolicy(write_digests=policy.write_digests,
                              read_digests=policy.read_digests,
                              public_read=policy.public_read, read_only=True)
    app = FastAPI(
        title=title,
        version=_version(),
        description=(
            "Dataset versions, runs and lineage of a Headwater catalog; OpenLineage ingestion "
            "compatible with Marquez (`POST /api/v1/lineage`). Write endpoints need a write "
            "token (`Authorization: Bearer <token>`). See docs/server.md."
        ),
        docs_url=None,  # Swagger UI would load its JavaScript from a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
        openapi_tags=[
            {"name": "datasets", "description": "Namespaces, datasets, versions and aliases."},
            {"name": "versions", "description": "One version: manifest, rows, diff, reports."},
            {"name": "runs", "description": "Runs with their inputs and outputs."},
            {"name": "lineage", "description": "Version-level lineage and impact."},
            {"name": "openlineage", "description": "Marquez-compatible OpenLineage API."},
        ],
    )
    app.state.catalog = CatalogHolder(catalog)
    app.state.policy = policy
    _install_handlers(app)
    install_log_filter("headwater", "uvicorn", "uvicorn.error", "uvicorn.access")

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[..., Any]) -> Any:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _error(400, "Content-Length is not a number")
            if int(length) > MAX_BODY:
                return _error(413, f"request body over {MAX_BODY // (1024 * 1024)} MiB")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    for module in (datasets, versions, runs, lineage, openlineage):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(ui.router)
    ui.mount_static(app)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("headwater")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0"


__all__ = ["CatalogHolder", "create_app", "status_of"]
