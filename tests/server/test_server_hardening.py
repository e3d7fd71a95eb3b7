"""The server under hostile or unusual requests (issue 14, section 7): corrupted objects, bodies
larger than they claim, gzip bodies and bombs, DNS rebinding, non-Latin-1 names, NUL characters,
CR/LF in report names, and the size and retention of stored events."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from headwater import Catalog
from headwater.catalog.models import OpenLineageEvent, utcnow
from headwater.reports import ReportError
from headwater.server.app import create_app
from headwater.server.auth import AccessPolicy
from tests import damage
from tests.server.conftest import WRITE, auth, served

API = "/api/v1"
LOCAL = "http://localhost"
PRODUCER = "https://example.com/producer/1.0"


def event(*, job: str = "job", facets: dict[str, Any] | None = None,
          time: str = "2026-03-01T00:00:00Z") -> dict[str, Any]:
    return {"eventType": "COMPLETE", "eventTime": time, "producer": PRODUCER,
            "run": {"runId": str(uuid.uuid4()), "facets": facets or {}},
            "job": {"namespace": "ext", "name": job},
            "inputs": [], "outputs": [{"namespace": "s3://lake", "name": "out"}]}


def corrupt(cat: Catalog, digest: str, *, at: int = 0) -> None:
    """Flip one byte of a stored object in place (same size), loose or packed."""
    damage.corrupt(cat.store, digest, at=at)


# -- downloads ------------------------------------------------------------------------------------
def test_a_corrupted_object_is_never_served_as_200(small: Catalog, tmp_path: Path) -> None:
    v = small.get("t/users@1")
    (entry,) = list(v.manifest())
    assert entry.digest is not None
    report = small.report(v.ref, "sample", "samples",
                          [{"data": b"\x89PNG fake but stored", "filename": "a.bin",
                            "media_type": "application/octet-stream"}])
    table = small.report(v.ref, "table", "table", pa.table({"a": [1, 2]}))
    item_digest = report.body["items"][0]["digest"]
    corrupt(small, entry.digest)
    corrupt(small, item_digest)
    assert table.digest is not None
    corrupt(small, table.digest, at=10)
    with TestClient(create_app(small), base_url=LOCAL) as c:
        for url in (f"{API}/versions/t/users/1/files/{entry.path}",
                    f"{API}/reports/{report.id}/payload?item=0",
                    f"{API}/reports/{table.id}/payload"):
            r = c.get(url)
            assert r.status_code == 409, (url, r.status_code)
            assert "corrupt" in r.json()["detail"].lower()


def test_a_large_corrupted_download_is_aborted_short_of_its_length(
        sqlite_catalog: Catalog, tmp_path: Path) -> None:
    """Above the verify-first size the digest is announced and a mismatch aborts the
    connection before the last chunk: the client sees an error, not a complete wrong file."""
    data = tmp_path / "big"
    data.mkdir()
    (data / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    v = sqlite_catalog.log(str(data), name="t/big")
    (entry,) = list(v.manifest())
    assert entry.digest is not None
    app = create_app(sqlite_catalog)
    app.state.verify_first_max = 64 * 1024  # the file is over it (default 64 MiB)
    url_path = f"{API}/versions/t/big/{v.number}/files/blob.bin"
    with served(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        good = client.get(url_path)
        assert good.status_code == 200 and good.content == (data / "blob.bin").read_bytes()
        assert good.headers["etag"] == f'"{entry.digest}"'
        assert good.headers["repr-digest"].startswith("blake3=:")
        corrupt(sqlite_catalog, entry.digest, at=2 * 1024 * 1024)
        received = b""
        with pytest.raises(httpx.HTTPError), client.stream("GET", url_path) as r:
            assert r.status_code == 200
            assert r.headers["content-length"] == str(entry.size)
            for chunk in r.iter_bytes():
                received += chunk
        assert len(received) < entry.size


def test_non_latin1_names_download_under_their_own_name(small: Catalog, tmp_path: Path) -> None:
    data = tmp_path / "uni"
    data.mkdir()
    name = "résumé 数据 \"q\".txt"
    (data / name).write_text("bonjour\n")
    v = small.log(str(data), name="t/uni")
    rep = small.report(v.ref, "отчёт по данным", "table", pa.table({"a": [1]}))
    with TestClient(create_app(small), base_url=LOCAL) as c:
        r = c.get(f"{API}/versions/t/uni/{v.number}/files/{name}")
        assert r.status_code == 200 and r.content == b"bonjour\n"
        disposition = r.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=\"")
        star = disposition.split("filename*=UTF-8''", 1)[1]
        assert unquote(star) == name
        p = c.get(f"{API}/reports/{rep.id}/payload")
        assert p.status_code == 200
        assert unquote(p.headers["content-disposition"].split("''", 1)[1]) == "отчёт по данным"


# -- request bodies -------------------------------------------------------------------------------
def test_a_chunked_body_over_the_limit_is_refused(sqlite_catalog: Catalog) -> None:
    """No Content-Length (chunked transfer): the limit holds for the bytes received."""
    body = json.dumps(event(facets={"big": {"_producer": PRODUCER, "_schemaURL": "x",
                                            "blob": "x" * (17 * 1024 * 1024)}})).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 1 << 20):
            yield body[i:i + (1 << 20)]

    with served(create_app(sqlite_catalog)) as url:
        r = httpx.post(f"{url}{API}/lineage", content=chunks(), timeout=60,
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:200]
    with sqlite_catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(OpenLineageEvent)) == 0


def test_gzip_bodies_are_accepted_from_openlineage_python(catalog: Catalog) -> None:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.transport.http import HttpCompression, HttpConfig, HttpTransport

    run_id = str(uuid.uuid4())
    ol = RunEvent(eventType=RunState.COMPLETE, eventTime="2026-03-01T00:00:00Z",
                  run=Run(runId=run_id), job=Job(namespace="ext", name="gz"),
                  outputs=[OutputDataset(namespace="s3://lake", name="gz")], producer=PRODUCER)
    with served(create_app(catalog)) as url:
        client = OpenLineageClient(transport=HttpTransport(HttpConfig(
            url=url, timeout=10, compression=HttpCompression.GZIP)))
        client.emit(ol)
        r = httpx.get(f"{url}{API}/runs/{run_id}")
    assert r.status_code == 200 and r.json()["state"] == "COMPLETED"


def test_a_gzip_bomb_is_refused_on_its_inflated_size(sqlite_catalog: Catalog) -> None:
    bomb = gzip.compress(b"[" + b" " * (40 * 1024 * 1024) + b"]")
    assert len(bomb) < 100 * 1024
    with TestClient(create_app(sqlite_catalog), base_url=LOCAL) as c:
        r = c.post(f"{API}/lineage", content=bomb,
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert r.status_code == 413 and "inflated" in r.json()["detail"]
        bad = c.post(f"{API}/lineage", content=b"not gzip at all",
                     headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert bad.status_code == 400 and "Content-Encoding" in bad.json()["detail"]
        odd = c.post(f"{API}/lineage", content=b"{}",
                     headers={"Content-Type": "application/json", "Content-Encoding": "br"})
        assert odd.status_code == 415


# -- DNS rebinding --------------------------------------------------------------------------------
def test_no_token_mode_serves_only_local_host_names(small: Catalog) -> None:
    app = create_app(small)
    move = {"version": "2"}
    with TestClient(app, base_url="http://rebound.attacker.example:8080") as evil:
        assert evil.get(f"{API}/datasets").status_code == 403
        r = evil.put(f"{API}/datasets/t/users/aliases/production", json=move)
        assert r.status_code == 403 and "DNS rebinding" in r.json()["detail"]
    assert small.get("t/users@production").number == 1
    for base in ("http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"):
        with TestClient(app, base_url=base) as c:
            assert c.get(f"{API}/datasets").status_code == 200, base
    with TestClient(app, base_url=LOCAL) as c:
        r = c.put(f"{API}/datasets/t/users/aliases/production", json=move,
                  headers={"Origin": "http://rebound.attacker.example"})
        assert r.status_code == 403
        ok = c.get(f"{API}/datasets", headers={"Origin": "http://localhost:8080"})
        assert ok.status_code == 200
    configured = create_app(small, allowed_hosts=["catalog.internal"])
    with TestClient(configured, base_url="http://catalog.internal") as c:
        assert c.get(f"{API}/datasets").status_code == 200
    # with tokens the token is the guard: any Host name
    secured = create_app(small, policy=AccessPolicy.build(write_tokens=[WRITE]))
    with TestClient(secured, base_url="http://catalog.example.com") as c:
        assert c.get(f"{API}/datasets", headers=auth(WRITE)).status_code == 200


# -- NUL characters -------------------------------------------------------------------------------
def test_nul_characters_are_a_clear_4xx(catalog: Catalog) -> None:
    catalog.log(pa.table({"a": [1]}), name="t/one")
    with TestClient(create_app(catalog), base_url=LOCAL) as c:
        for bad in (event(job="a\x00b"),
                    event(facets={"x": {"_producer": PRODUCER, "_schemaURL": "x",
                                        "v": ["ok", "n\x00l"]}})):
            r = c.post(f"{API}/lineage", json=bad)
            assert r.status_code == 422, r.text
            assert "NUL" in json.dumps(r.json())
        s = c.get(f"{API}/datasets", params={"search": "\x00"})
        assert s.status_code == 400 and "NUL" in s.json()["detail"]
        a = c.put(f"{API}/datasets/t/one/aliases/prod", json={"version": "1", "actor": "a\x00"})
        assert a.status_code == 422
        # wildcards in a search are characters
        assert c.get(f"{API}/datasets", params={"search": "%"}).json()["total"] == 0
        assert c.get(f"{API}/datasets", params={"search": "_"}).json()["total"] == 0


# -- report names ---------------------------------------------------------------------------------
def test_control_characters_in_report_names_and_media_types_are_refused_when_logged(
        small: Catalog) -> None:
    ref = "t/users@1"
    with pytest.raises(ReportError, match="control character"):
        small.report(ref, "name\r\nSet-Cookie: x=1", "scalar", 1.0)
    with pytest.raises(ReportError, match="media type"):
        small.report(ref, "s", "samples", [{"data": b"x", "filename": "a.txt",
                                            "media_type": "text/plain\r\nX-Evil: 1"}])
    with pytest.raises(ReportError, match="control character"):
        small.report(ref, "s", "samples", [{"data": b"x", "filename": "a\n.txt"}])
    with pytest.raises(ReportError, match="control character"), \
            small.run("r", inputs=[ref]) as run:
        run.log_output(pa.table({"n": [1]}), name="t/reported")
        run.report("t/reported", "bad\nname", "scalar", 2.0)
    assert small.reports(ref) == []


# -- stored events --------------------------------------------------------------------------------
def test_stored_events_are_capped_and_pruned_after_their_retention(catalog: Catalog) -> None:
    big = event(facets={"big": {"_producer": PRODUCER, "_schemaURL": "x",
                                "blob": "y" * (2 * 1024 * 1024)}})
    app = create_app(catalog)  # default retention: 90 days
    with TestClient(app, base_url=LOCAL) as c:
        r = c.post(f"{API}/lineage", json=big)
        assert r.status_code == 201
        with catalog.session() as s:
            row = s.scalars(select(OpenLineageEvent)).one()
            assert row.event["_headwater"]["truncated"] is True
            assert len(json.dumps(row.event)) < 64 * 1024
            assert row.event["run"]["runId"] == big["run"]["runId"]
            s.execute(update(OpenLineageEvent).values(received_at=utcnow() - timedelta(days=91)))
        app.state.retention._next = 0.0  # the next ingest is due to prune (as after a restart)
        assert c.post(f"{API}/lineage", json=event(job="later")).status_code == 201
    with catalog.session() as s:
        jobs = [e["job"]["name"] for e in s.scalars(select(OpenLineageEvent.event))]
    assert jobs == ["later"]
    assert catalog.get_run(big["run"]["runId"]).state == "COMPLETED"  # the effects are kept


def test_headwater_serve_checks_host_names_against_its_address(tmp_path: Path) -> None:
    """The real command, as a user starts it: no token, one extra name allowed."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HEADWATER_CATALOG_URL": f"sqlite:///{tmp_path / 'c.db'}",
           "HEADWATER_STORE_URL": str(tmp_path / "store")}
    proc = subprocess.Popen([sys.executable, "-m", "headwater", "serve", "--port", str(port),
                             "--allow-host", "catalog.lan", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}{API}/datasets"
        deadline = time.monotonic() + 60
        while True:
            try:
                first = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert first.status_code == 200
        assert httpx.get(url, headers={"Host": "rebound.example"}).status_code == 403
        assert httpx.get(url, headers={"Host": f"catalog.lan:{port}"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
