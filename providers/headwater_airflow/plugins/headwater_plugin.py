"""The Headwater page inside the Airflow UI (Airflow 3 ``fastapi_apps`` + ``external_views``).

Read-only: a FastAPI app mounted by a plugin is served *without* Airflow's authentication, so it
offers no write action and never shows connection secrets (catalog URLs are rendered with the
password masked). It lists the datasets, their versions and aliases, and each version's lineage.
Write actions and the full catalog UI come with the catalog server (`headwater serve`).
"""

from __future__ import annotations

import html
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from headwater import Catalog
from headwater.catalog.db import safe_url
from headwater.errors import HeadwaterError
from headwater_airflow.hooks.headwater import HeadwaterHook

app = FastAPI(title="Headwater", description="Read-only view of the Headwater catalog")

_STYLE = """<style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2733}
table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #dde3ea;
text-align:left}code{background:#f3f5f8;padding:0 .25rem}a{color:#0b63c5}</style>"""


def _catalog() -> Catalog:
    return HeadwaterHook().get_conn()


def _page(title: str, body: str) -> HTMLResponse:
    head = f"<meta charset=utf-8><title>{html.escape(title)}</title>{_STYLE}"
    return HTMLResponse(f"<!doctype html><html><head>{head}</head><body>"
                        f"<h2>{html.escape(title)}</h2>{body}</body></html>")


def _e(value: Any) -> str:
    return html.escape(str(value))


@app.get("/", response_class=HTMLResponse)
def datasets_page() -> HTMLResponse:
    cat = _catalog()
    rows = "".join(
        f"<tr><td><a href='dataset/{_e(d.full_name)}'>{_e(d.full_name)}</a></td>"
        f"<td>{_e(d.type)}</td><td>{d.versions}</td><td>{_e(d.latest or '-')}</td>"
        f"<td>{_e(', '.join(f'{a}→{n}' for a, n in d.aliases.items()))}</td></tr>"
        for d in cat.datasets())
    return _page("Headwater datasets",
                 f"<p>catalog <code>{_e(safe_url(cat.settings.catalog_url))}</code></p>"
                 f"<table><tr><th>dataset</th><th>type</th><th>versions</th><th>latest</th>"
                 f"<th>aliases</th></tr>{rows}</table>")


@app.get("/dataset/{namespace}/{name}", response_class=HTMLResponse)
def dataset_page(namespace: str, name: str) -> HTMLResponse:
    try:
        versions = _catalog().versions(f"{namespace}/{name}")
    except HeadwaterError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    rows = "".join(
        f"<tr><td>{v.number}</td><td><code>{_e(v.short_digest)}</code></td><td>{_e(v.kind)}</td>"
        f"<td>{_e(v.row_count if v.row_count is not None else '-')}</td><td>{v.size}</td>"
        f"<td>{_e(v.created_at.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        f"<td>{_e(', '.join(v.aliases))}</td>"
        f"<td><a href='../../lineage/{_e(v.ref)}?direction=up'>up</a> · "
        f"<a href='../../lineage/{_e(v.ref)}?direction=down'>down</a></td></tr>"
        for v in reversed(versions))
    return _page(f"{namespace}/{name}",
                 "<table><tr><th>#</th><th>digest</th><th>kind</th><th>rows</th><th>bytes</th>"
                 f"<th>created</th><th>aliases</th><th>lineage</th></tr>{rows}</table>")


@app.get("/lineage/{namespace}/{ref}", response_class=HTMLResponse)
def lineage_page(namespace: str, ref: str, direction: str = "up") -> HTMLResponse:
    try:
        graph = _catalog().lineage(f"{namespace}/{ref}", direction=direction).to_dict()
    except HeadwaterError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    items = "".join(
        f"<li>{_e(n['ref'])} <code>{_e(n['digest'][:12])}</code></li>" if n["type"] == "version"
        else f"<li>run {_e(n['job'])} ({_e(n['state'])}) {_e(n['engine'].get('dag_id', ''))}"
             f" {_e(n['engine'].get('task_id', ''))}</li>"
        for n in graph["nodes"])
    edges = "".join(f"<li>{_e(e['from'])} → {_e(e['to'])} ({_e(e['kind'])})</li>"
                    for e in graph["edges"])
    return _page(f"lineage of {namespace}/{ref} ({direction})",
                 f"<h3>nodes</h3><ul>{items}</ul><h3>edges</h3><ul>{edges}</ul>")


@app.get("/api/datasets")
def datasets_json() -> list[dict[str, Any]]:
    return [d.to_dict() for d in _catalog().datasets()]


class HeadwaterPlugin(AirflowPlugin):
    name = "headwater"
    fastapi_apps = [{"app": app, "url_prefix": "/headwater", "name": "Headwater"}]
    external_views = [{"name": "Headwater datasets", "href": "/headwater/",
                       "destination": "nav", "category": "browse", "url_route": "headwater"}]
