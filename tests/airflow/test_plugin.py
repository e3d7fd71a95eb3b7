"""The Airflow plugin serves the catalog server's UI and API read-only, without secrets."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from headwater import Catalog


def test_plugin_page_lists_datasets_without_secrets(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cat = Catalog.open(url, store_url=str(tmp_path / "s"))
    v = cat.log(pa.table({"x": [1, 2]}), name="shop/orders")
    with cat.run("derive", inputs=[v.ref]) as run:
        run.log_output(pa.table({"x": [2]}), name="shop/orders_big")
    monkeypatch.setenv("HEADWATER_CATALOG_URL", url)
    monkeypatch.setenv("HEADWATER_STORE_URL", str(tmp_path / "s"))
    from headwater_airflow.plugins.headwater_plugin import HeadwaterPlugin

    plugin = HeadwaterPlugin.fastapi_apps[0]
    host = FastAPI()  # mounted under its prefix, as Airflow's API server does
    host.mount(plugin["url_prefix"], plugin["app"])
    client = TestClient(host)
    page = client.get("/headwater/")
    assert page.status_code == 200 and '<base href="/headwater/">' in page.text
    assert 'name="hw-read-only" content="true"' in page.text
    assert client.get("/headwater/static/app.js").status_code == 200
    names = [d["full_name"] for d in client.get("/headwater/api/v1/datasets").json()["datasets"]]
    assert "shop/orders_big" in names
    lineage = client.get("/headwater/api/v1/versions/shop/orders_big/1/lineage?direction=up")
    assert lineage.status_code == 200 and "shop/orders@1" in lineage.text
    assert client.get("/headwater/api/v1/datasets/shop/nope").status_code == 404
    moved = client.put("/headwater/api/v1/datasets/shop/orders/aliases/prod",
                       json={"version": "1"})
    assert moved.status_code == 403  # nothing writable
    assert client.post("/headwater/api/v1/lineage", json={}).status_code == 403
    secret = "postgresql://user:hunter2@db/catalog"
    from headwater.catalog.db import safe_url

    assert "hunter2" not in safe_url(secret)
