"""The Airflow plugin's page is read-only and never shows connection secrets."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
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

    app = HeadwaterPlugin.fastapi_apps[0]["app"]
    client = TestClient(app)
    page = client.get("/")
    assert page.status_code == 200 and "shop/orders_big" in page.text
    assert client.get("/dataset/shop/orders").status_code == 200
    lineage = client.get("/lineage/shop/orders_big@1?direction=up")
    assert lineage.status_code == 200 and "shop/orders@1" in lineage.text
    assert client.get("/dataset/shop/nope").status_code == 404
    assert client.post("/").status_code == 405  # nothing writable
    secret = "postgresql://user:hunter2@db/catalog"
    from headwater.catalog.db import safe_url

    assert "hunter2" not in safe_url(secret)
