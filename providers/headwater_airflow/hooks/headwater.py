"""HeadwaterHook: opens the Headwater catalog from an Airflow connection.

Connection type ``headwater``. Extra fields: ``catalog_url`` (SQLAlchemy URL; a login/password on
the connection fill in the URL's credentials so they live in Airflow's secret store, not in the
URL), ``store_url`` and ``store_options`` (JSON of fsspec options, e.g. an S3 endpoint). Without
the connection (default id ``headwater_default``) the hook falls back to ``HEADWATER_*`` settings.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import make_url

from headwater import Catalog, Settings
from headwater.errors import InvalidArgument
from headwater.rebuild.airflow_api import AirflowApi
from headwater_airflow.version_compat import AirflowNotFoundException, BaseHook


class HeadwaterHook(BaseHook):
    conn_name_attr = "headwater_conn_id"
    default_conn_name = "headwater_default"
    conn_type = "headwater"
    hook_name = "Headwater"

    def __init__(self, headwater_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.headwater_conn_id = headwater_conn_id
        self._catalog: Catalog | None = None

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget  # pragma: no cover
        from wtforms import StringField  # pragma: no cover

        return {  # pragma: no cover - rendered by the Airflow UI only
            "catalog_url": StringField("Catalog URL", widget=BS3TextFieldWidget()),
            "store_url": StringField("Store URL", widget=BS3TextFieldWidget()),
            "store_options": StringField("Store options (JSON)", widget=BS3TextFieldWidget()),
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port", "host"],
            "relabeling": {"login": "Catalog user", "password": "Catalog password"},
            "placeholders": {
                "catalog_url": "postgresql://catalog-db:5432/headwater",
                "store_url": "s3://my-bucket/headwater",
                "store_options": '{"client_kwargs": {"endpoint_url": "http://minio:9000"}}',
            },
        }

    def settings(self) -> Settings:
        """Settings from the connection, or from ``HEADWATER_*`` when it does not exist."""
        try:
            conn = self.get_connection(self.headwater_conn_id)
        except AirflowNotFoundException:
            return Settings.resolve()
        extra = conn.extra_dejson or {}
        catalog_url = extra.get("catalog_url") or None
        if catalog_url and (conn.login or conn.password):
            url = make_url(catalog_url)
            catalog_url = url.set(username=conn.login or url.username,
                                  password=conn.password or url.password).render_as_string(
                hide_password=False)
        options = extra.get("store_options") or None
        if isinstance(options, str):
            options = json.loads(options) if options.strip() else None
        return Settings.resolve(catalog_url=catalog_url, store_url=extra.get("store_url") or None,
                                store_options=options)

    def airflow_api(self, airflow_conn_id: str = "headwater_airflow_api") -> AirflowApi:
        """Airflow's api-server for a rebuild run from inside Airflow (docs/rebuild.md): the
        connection ``airflow_conn_id`` (host, port, schema ``http``/``https``, login, password),
        else ``HEADWATER_AIRFLOW_URL`` / ``_USER`` / ``_PASSWORD``. Raises ``InvalidArgument``
        when neither names one."""
        try:
            conn = self.get_connection(airflow_conn_id)
        except AirflowNotFoundException:
            s = self.settings()
            if not s.airflow_api_url:
                raise InvalidArgument(
                    f"no Airflow API: add the connection {airflow_conn_id!r} (host, port, login, "
                    "password) or set HEADWATER_AIRFLOW_URL") from None
            return AirflowApi(s.airflow_api_url, username=s.airflow_user,
                              password=s.airflow_password)
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        netloc = f"{conn.host}:{conn.port}" if conn.port else str(conn.host)
        return AirflowApi(f"{scheme}://{netloc}", username=conn.login, password=conn.password)

    def get_conn(self) -> Catalog:
        """The catalog (opened once per hook)."""
        if self._catalog is None:
            self._catalog = Catalog.open(settings=self.settings())
        return self._catalog

    get_catalog = get_conn

    def test_connection(self) -> tuple[bool, str]:
        try:
            counts = self.get_conn().stats()
        except Exception as exc:  # the UI shows the message
            return False, str(exc)
        return True, (f"catalog reachable: {counts['datasets']} datasets, "
                      f"{counts['versions']} versions")
