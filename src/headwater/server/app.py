"""The server's application factory: one FastAPI app = REST API + OpenLineage endpoint + web UI.

Why a factory: ``headwater serve`` builds the app for a catalog it opened, tests build one per
catalog fixture, and the Airflow plugin builds a read-only one whose catalog comes from the
Headwater connection when the first request arrives. Every error leaves as a 4xx/5xx JSON body
``{"detail": "..."}`` with secrets masked — never a traceback, never a connection password.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
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
from headwater.server.download import VERIFY_FIRST_MAX
from headwater.server.guard import LOCAL_HOSTS, MAX_BODY, RequestGuard, allowed_host_set
from headwater.server.redact import install_log_filter, redact
from headwater.server.retention import DEFAULT_RETENTION, EventRetention

log = logging.getLogger("headwater.server")

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


def _error(status: int, detail: Any, headers: dict[str, str] | None = None,
           request: Request | None = None) -> JSONResponse:
    from headwater.server.routes.marquez import is_marquez_path, marquez_body

    if request is not None and is_marquez_path(request.url.path):
        return JSONResponse(marquez_body(status, detail), status_code=status, headers=headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(HeadwaterError)
    @app.exception_handler(LookupError)
    @app.exception_handler(ValueError)
    async def known(request: Request, exc: Exception) -> JSONResponse:
        return _error(status_of(exc), redact(str(exc)) or type(exc).__name__, request=request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append({"loc": where, "msg": redact(str(err.get("msg", "invalid")))})
        return _error(422, problems, request=request)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail, getattr(exc, "headers", None),
                      request=request)

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
    allowed_hosts: Iterable[str] | None = None,
    max_body: int = MAX_BODY,
    verify_first_max: int = VERIFY_FIRST_MAX,
    event_retention: timedelta | None = DEFAULT_RETENTION,
) -> FastAPI:
    """The server app for ``catalog`` (or a function that opens it on first use).

    ``read_only=True`` removes every write endpoint's effect (they answer 403) and hides the
    UI's write actions: the Airflow plugin page mounts the app this way. ``policy`` defaults to no
    tokens (development mode): callers exposing the app beyond loopback must pass tokens.

    ``allowed_hosts``: in no-token mode, the ``Host``/``Origin`` names served (default
    localhost, 127.0.0.1, ::1; ``"*"`` for any) against DNS rebinding; ignored once tokens are
    configured. ``max_body`` bounds request bodies as received and as inflated.
    ``verify_first_max``: downloads up to this size are verified before their first byte.
    ``event_retention``: ingested OpenLineage events older than this are pruned (None: kept).
    """
    from headwater.server.routes import (
        datasets,
        lineage,
        marquez,
        openlineage,
        runs,
        ui,
        versions,
    )

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
            {"name": "marquez", "description": "Marquez 0.50's REST API over the catalog."},
        ],
    )
    app.state.catalog = CatalogHolder(catalog)
    app.state.policy = policy
    app.state.verify_first_max = verify_first_max
    app.state.retention = EventRetention(event_retention)
    _install_handlers(app)
    install_log_filter("headwater", "uvicorn", "uvicorn.error", "uvicorn.access")

    hosts = allowed_host_set(LOCAL_HOSTS if allowed_hosts is None else allowed_hosts)
    app.add_middleware(RequestGuard, max_body=max_body,
                       allowed_hosts=hosts if policy.open else None)

    marquez.install(app)
    for module in (marquez, datasets, versions, runs, lineage, openlineage):
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
