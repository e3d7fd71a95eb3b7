"""The REST API on SQLite and PostgreSQL: datasets, versions, manifest, rows, diff, aliases, runs,
lineage and impact; bad input is a 4xx naming the problem, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient

from headwater import Catalog
from headwater.server.app import create_app

API = "/api/v1"


def test_datasets_list_with_latest_aliases_and_producer(client: TestClient) -> None:
    body = client.get(f"{API}/datasets").json()
    assert body["total"] == 2
    users = next(d for d in body["datasets"] if d["full_name"] == "t/users")
    assert users["type"] == "table" and users["versions"] == 2
    assert users["latest"]["number"] == 2 and users["latest"]["rows"] == 3
    assert users["aliases"] == {"production": 1}
    assert users["last_producer"] == "t/log.users"
    summary = next(d for d in body["datasets"] if d["full_name"] == "t/summary")
    assert summary["last_producer"] == "t/derive"
    found = client.get(f"{API}/datasets", params={"search": "summ"}).json()
    assert [d["full_name"] for d in found["datasets"]] == ["t/summary"]
    assert client.get(f"{API}/datasets", params={"search": "t/us"}).json()["total"] == 1
    assert client.get(f"{API}/datasets", params={"search": "%"}).json()["total"] == 0
    namespaces = {n["name"]: n for n in client.get(f"{API}/namespaces").json()["namespaces"]}
    assert namespaces["t"]["headwater"]["datasets"] == 2  # Marquez's shape, our counts aside


def test_dataset_versions_table(client: TestClient) -> None:
    ds = client.get(f"{API}/datasets/t/users").json()
    assert ds["key"] == ["id"] and ds["alias_history"][0]["alias"] == "production"
    versions = client.get(f"{API}/datasets/t/users/versions").json()["versions"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[1]["aliases"] == ["production"]
    assert versions[0]["producer"] == "t/log.users" and versions[0]["run_id"]
    assert versions[1]["stats"]["null_counts"] == {"id": 0, "x": 1}


def test_version_manifest_rows_and_diff(client: TestClient) -> None:
    v = client.get(f"{API}/versions/t/users/production").json()
    assert v["number"] == 1 and v["run"]["job"] == "t/log.users" and not v["external"]
    manifest = client.get(f"{API}/versions/t/users/2/manifest").json()
    assert manifest["total_files"] == 1 and manifest["files"][0]["path"].endswith(".parquet")
    path = manifest["files"][0]["path"]
    blob = client.get(f"{API}/versions/t/users/2/files/{path}")
    assert blob.status_code == 200 and blob.content[:4] == b"PAR1"
    rows = client.get(f"{API}/versions/t/users/2/rows").json()
    assert [c["name"] for c in rows["columns"]] == ["id", "x"]
    assert rows["rows"] == [[1, "a"], [2, "b"], [4, "d"]]
    diff = client.get(f"{API}/versions/t/users/2/diff", params={"against": "1"}).json()
    assert diff["a"] == "t/users@1" and diff["b"] == "t/users@2"
    assert diff["rows"]["added"] == 1 and diff["rows"]["removed"] == 1
    assert diff["rows"]["changed"] == 1 and diff["rows"]["cells_changed"] == {"x": 1}
    same = client.get(f"{API}/versions/t/users/1/diff", params={"against": "t/users@1"}).json()
    assert same["identical"] is True


def test_runs_lineage_and_impact(client: TestClient) -> None:
    runs = client.get(f"{API}/runs").json()
    assert runs["total"] == 3
    derive = next(r for r in runs["runs"] if r["job"] == "derive")
    assert derive["inputs"] == 1 and derive["outputs"] == 1
    run = client.get(f"{API}/runs/{derive['id']}").json()
    assert run["params"] == {"n": 1} and run["code_fingerprint"] is None
    assert run["inputs"][0]["ref"] == "t/users@2" and run["outputs"][0]["created"] is True
    graph = client.get(f"{API}/versions/t/summary/1/lineage", params={"direction": "up"}).json()
    refs = {n.get("ref") for n in graph["nodes"]}
    assert {"t/summary@1", "t/users@2"} <= refs
    impact = client.get(f"{API}/versions/t/users/2/impact").json()
    assert impact["datasets"] == {"t/summary": ["t/summary@1"]}
    assert impact["tasks"][0]["dag_id"] == "d"
    (entry,) = impact["rebuild"]["entries"]  # the rebuild plan (headwater/rebuild/plan.py)
    assert (entry["dag_id"], entry["task_ids"]) == ("d", ["derive"])
    # t/users@2 is the latest version and not retracted: nothing to pin yet, no command
    assert "nothing replaces t/users@2" in impact["rebuild"]["problem"]
    assert impact["rebuild_commands"] == []
    assert "version:t/summary@1" in impact["nodes"]


def test_alias_move_and_remove(client: TestClient) -> None:
    moved = client.put(f"{API}/datasets/t/users/aliases/production", json={"version": "2"})
    assert moved.status_code == 200 and moved.json()["number"] == 2
    history = client.get(f"{API}/datasets/t/users/aliases").json()
    assert history["aliases"] == {"production": 2}
    assert [(m["from"], m["to"]) for m in history["history"]] == [(None, 1), (1, 2)]
    assert client.delete(f"{API}/datasets/t/users/aliases/production").status_code == 200
    assert client.delete(f"{API}/datasets/t/users/aliases/production").status_code == 404
    assert client.put(f"{API}/datasets/t/users/aliases/latest",
                      json={"version": "1"}).status_code == 400


BAD_INPUT = [
    ("/datasets/t/nope", 404, "no dataset named t/nope"),
    ("/versions/t/users/9", 404, "does not exist"),
    ("/versions/t/users/bad@sel", 400, "more than one '@'"),
    ("/versions/t/users/-x", 400, "is not a number, an alias"),
    ("/versions/t/users/2/diff?against=t/nope@1", 404, "no dataset named"),
    ("/versions/t/users/2/diff", 422, "against"),
    ("/versions/t/users/2/lineage?direction=sideways", 422, "direction"),
    ("/versions/t/users/2/lineage?depth=-1", 422, "depth"),
    ("/runs/not-a-run", 404, "no run"),
    ("/lineage?nodeId=nonsense", 400, "nodeId"),
    ("/lineage?nodeId=dataset:x:y", 404, "no dataset matches"),
    ("/datasets?limit=0", 422, "limit"),
]


def test_bad_input_is_a_clear_4xx(client: TestClient) -> None:
    for path, status, needle in BAD_INPUT:
        r = client.get(API + path)
        assert r.status_code == status, (path, r.text)
        assert needle in r.text, (path, r.text)


def test_bad_bodies_are_4xx(client: TestClient) -> None:
    assert client.post(f"{API}/lineage", content=b"{not json",
                       headers={"Content-Type": "application/json"}).status_code == 422
    assert client.post(f"{API}/lineage", json=[1, 2]).status_code == 422
    assert client.put(f"{API}/datasets/t/users/aliases/prod", json={}).status_code == 422
    too_big = client.post(f"{API}/lineage", content=b"x",
                          headers={"Content-Length": str(64 * 1024 * 1024)})
    assert too_big.status_code in (400, 413)


def test_secrets_in_catalog_urls_never_appear(tmp_path: object, small: Catalog) -> None:
    """A catalog URL with a password: unreachable-database errors and every response mask it."""
    bad = Catalog.__new__(Catalog)
    bad.__dict__.update(small.__dict__)
    from headwater.errors import CatalogUnavailable

    def broken(*_a: object, **_k: object) -> object:
        raise CatalogUnavailable("catalog database error at "
                                 "postgresql+psycopg://bob:hunter2@db:5432/cat: refused")

    bad.session = broken  # type: ignore[method-assign]
    with TestClient(create_app(bad), base_url="http://localhost") as c:
        r = c.get(f"{API}/datasets")
    assert r.status_code == 503
    assert "hunter2" not in r.text and "bob:***@db" in r.text


def test_version_store_url_is_redacted(small: Catalog, tmp_path: object) -> None:
    with TestClient(create_app(small), base_url="http://localhost") as c:
        body = c.get(f"{API}/versions/t/users/1").json()
    assert "***" not in body["store_url"]  # a plain path: nothing to mask, nothing leaked


def test_openapi_documents_the_resources(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    paths = set(spec["paths"])
    for expected in ("/api/v1/namespaces", "/api/v1/datasets", "/api/v1/lineage",
                     "/api/v1/versions/{namespace}/{name}/{selector}/diff",
                     "/api/v1/datasets/{namespace}/{name}/aliases/{alias}",
                     "/api/v1/runs/{run_id}",
                     "/api/v1/versions/{namespace}/{name}/{selector}/impact"):
        assert expected in paths
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert client.get("/docs").status_code == 404  # no Swagger UI (it would load a CDN)
