"""The web UI: one HTML shell plus vendored static files (hand-written JS, CSS, SVG charts).

Why no template engine or CDN: the page is a small single-page app over the REST API; everything
it loads ships inside the package (``headwater/server/static``) and is served by this process, so
it works offline, behind Airflow's webserver, and on machines without internet access.
"""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)
STATIC = Path(str(files("headwater.server") / "static"))
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'self'; base-uri 'self'; "
        "form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _shell() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    read_only = "true" if request.app.state.policy.read_only else "false"
    base = html.escape(str(request.scope.get("root_path") or "").rstrip("/") + "/", quote=True)
    page = _shell().replace("{{READ_ONLY}}", read_only).replace("{{BASE}}", base)
    return HTMLResponse(page, headers=SECURITY_HEADERS)


@router.get("/ui")
def ui_redirect() -> RedirectResponse:
    return RedirectResponse("./")


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["mount_static", "router"]
