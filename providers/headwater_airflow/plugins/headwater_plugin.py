"""The Headwater page inside the Airflow UI (Airflow 3 ``fastapi_apps`` + ``external_views``).

It is the catalog server's own web UI and REST API (``headwater.server``), mounted read-only: a
FastAPI app mounted by a plugin is served *without* Airflow's authentication, so every write
endpoint answers 403 and the UI shows no write action; catalog URLs never appear (passwords are
masked in every message). The catalog comes from the Headwater connection (``HeadwaterHook``),
opened on the first request. Write actions (alias moves, OpenLineage ingestion) are for
``headwater serve`` with tokens.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from headwater import Catalog
from headwater.server.app import create_app
from headwater.server.auth import AccessPolicy
from headwater_airflow.hooks.headwater import HeadwaterHook


def _catalog() -> Catalog:
    return HeadwaterHook().get_conn()


# allowed_hosts="*": Airflow's API server decides which Host names it serves, not this app
app = create_app(_catalog, policy=AccessPolicy(read_only=True), read_only=True,
                 title="Headwater (read-only, in Airflow)", allowed_hosts=["*"])


class HeadwaterPlugin(AirflowPlugin):
    name = "headwater"
    fastapi_apps = [{"app": app, "url_prefix": "/headwater", "name": "Headwater"}]
    external_views = [{"name": "Headwater datasets", "href": "/headwater/",
                       "destination": "nav", "category": "browse", "url_route": "headwater"}]
