"""Ingestion never changes what a reference to a native dataset means (issue 14, section 6).

The attack: anyone holding the write token (every Airflow or Spark deployment has it) sends one
COMPLETE event whose output carries a Symlinks facet naming a native dataset and a DatasetVersion
digest of a manifest in a store the producer controls. Before the fix that became the native
dataset's new ``latest``, ``get`` checked out the producer's bytes (the digest check passed: the
producer chose both) and ``verify`` said "all good". Each test sends the event through the real
HTTP endpoint; one sends it with openlineage-python's own HttpTransport to a live uvicorn.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from headwater import Catalog
from headwater.errors import ForeignStore
from headwater.lineage.base import NullLineage
from headwater.server.app import create_app
from tests.server.conftest import served

API = "/api/v1"
PRODUCER = "https://example.com/attacker/1.0"
ORIGINAL = pa.table({"id": [1, 2, 4], "x": ["a", "b", "d"]})  # t/users@2 of the `small` fixture


def attacker_store(tmp_path: Path) -> tuple[str, str, str]:
    """A Headwater store the producer controls, holding other bytes: (namespace, name, digest)
    such that the OpenLineage URI namespace/name is that store's URL."""
    evil = tmp_path / "evil"
    with Catalog.open(f"sqlite:///{tmp_path / 'evil.db'}", store_url=str(evil / "store"),
                      lineage=NullLineage()) as cat:
        v = cat.log(pa.table({"id": [666], "x": ["pwned"]}), name="t/users")
    return f"file://{evil}", "store", v.digest


def symlinked(namespace: str, name: str, target: str, *, digest: str | None = None,
              version: str | None = None) -> dict[str, Any]:
    facets: dict[str, Any] = {"symlinks": {
        "_producer": PRODUCER, "_schemaURL": "x",
        "identifiers": [{"namespace": "headwater", "name": target, "type": "DATASET"}]}}
    if digest is not None or version is not None:
        facets["version"] = {"_producer": PRODUCER, "_schemaURL": "x",
                             "datasetVersion": version or "1",
                             **({"digest": digest} if digest else {})}
    return {"namespace": namespace, "name": name, "facets": facets}


def run_event(*, outputs: list[dict[str, Any]] | None = None,
              inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"eventType": "COMPLETE", "eventTime": "2026-02-01T00:00:00Z", "producer": PRODUCER,
            "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": "evil", "name": "job"},
            "inputs": inputs or [], "outputs": outputs or []}


def native_state(cat: Catalog) -> tuple[int, int, dict[str, int], list[str]]:
    users = next(d for d in cat.datasets() if d.full_name == "t/users")
    return users.versions, users.latest or 0, users.aliases, [
        v.digest for v in cat.versions("t/users")]


def test_foreign_digest_under_a_native_name_never_becomes_its_latest(
        small: Catalog, tmp_path: Path) -> None:
    namespace, name, digest = attacker_store(tmp_path)
    before = native_state(small)
    with TestClient(create_app(small), base_url="http://localhost") as c:
        r = c.post(f"{API}/lineage", json=run_event(
            outputs=[symlinked(namespace, name, "t/users", digest=digest)]))
        assert r.status_code == 201, r.text
        (out,) = r.json()["outputs"]
        assert not out.startswith("t/users@")
        # a DatasetEvent saying the same is no different
        d = c.post(f"{API}/lineage", json={
            "eventTime": "2026-02-02T00:00:00Z", "producer": PRODUCER,
            "dataset": symlinked(namespace, name, "t/users", digest=digest)})
        assert d.status_code in (200, 201) and not d.json()["inputs"][0].startswith("t/users@")
    assert native_state(small) == before
    latest = small.get("t/users")
    assert latest.number == 2 and latest.kind != "external"
    assert small.read_table(latest).equals(ORIGINAL)
    # what the event said is kept, as an external version of a dataset under its own name
    external = small.get(out)
    assert external.kind == "external" and external.digest == digest
    assert small.verify().skipped == [external.ref]


def test_symlinks_facet_alone_never_adds_an_empty_version_to_a_native_dataset(
        small: Catalog) -> None:
    before = native_state(small)
    with TestClient(create_app(small), base_url="http://localhost") as c:
        for output in (symlinked("file", "/anything/t/users", "t/users"),
                       symlinked("file", "/anything/t/users", "t/users", version="7"),
                       symlinked("s3://other", "users", "t/users", version="3")):
            r = c.post(f"{API}/lineage", json=run_event(outputs=[output]))
            assert r.status_code == 201, r.text
            assert not r.json()["outputs"][0].startswith("t/users@")
    assert native_state(small) == before


def test_events_link_runs_to_native_versions_they_name_by_digest(small: Catalog) -> None:
    v1 = small.get("t/users@1")
    before = native_state(small)
    with TestClient(create_app(small), base_url="http://localhost") as c:
        r = c.post(f"{API}/lineage", json=run_event(
            inputs=[symlinked("file", "/x/t/users", "t/users", digest=v1.digest)],
            outputs=[symlinked("file", "/x/t/users", "t/users", digest=v1.digest)])).json()
        assert r["inputs"] == ["t/users@1"] and r["outputs"] == ["t/users@1"]
        run = c.get(f"{API}/runs/{r['run_id']}").json()
        assert run["engine"]["ingested"] is True
    assert native_state(small) == before


def test_openlineage_python_http_transport_cannot_take_over_a_native_dataset(
        small: Catalog, tmp_path: Path) -> None:
    """The same attack as a producer would send it: openlineage-python's client and
    HttpTransport, against a live server."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import dataset_version_dataset, symlinks_dataset
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    namespace, name, digest = attacker_store(tmp_path)
    before = native_state(small)
    output = OutputDataset(namespace=namespace, name=name, facets={
        "symlinks": symlinks_dataset.SymlinksDatasetFacet(identifiers=[
            symlinks_dataset.Identifier(namespace="headwater", name="t/users", type="DATASET")]),
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion="3").with_additional_properties(digest=digest)})
    event = RunEvent(eventType=RunState.COMPLETE, eventTime="2026-02-01T00:00:00Z",
                     run=Run(runId=str(uuid.uuid4())), job=Job(namespace="evil", name="job"),
                     outputs=[output], producer=PRODUCER)
    with served(create_app(small)) as url:
        client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, timeout=10)))
        client.emit(event)
    assert native_state(small) == before
    assert small.read_table(small.get("t/users")).equals(ORIGINAL)


def _foreign_external(cat: Catalog, tmp_path: Path) -> str:
    """An external version whose manifest lives in a store the producer named."""
    namespace, name, digest = attacker_store(tmp_path)
    with TestClient(create_app(cat), base_url="http://localhost") as c:
        r = c.post(f"{API}/lineage", json=run_event(outputs=[{
            "namespace": namespace, "name": name, "facets": {"version": {
                "_producer": PRODUCER, "_schemaURL": "x", "datasetVersion": "1",
                "digest": digest}}}]))
        assert r.status_code == 201, r.text
        (ref,) = r.json()["outputs"]
    return str(ref)


def test_reading_an_external_version_from_a_foreign_store_needs_an_explicit_flag(
        catalog: Catalog, tmp_path: Path, catalog_url: str) -> None:
    ref = _foreign_external(catalog, tmp_path)
    v = catalog.get(ref)
    assert v.kind == "external"
    with pytest.raises(ForeignStore, match="allow_foreign_store"):
        v.checkout(tmp_path / "out")
    with pytest.raises(ForeignStore):
        catalog.read_table(v)
    assert not (tmp_path / "out").exists()
    v.checkout(tmp_path / "out", allow_foreign_store=True)  # asked explicitly: read
    assert (tmp_path / "out").is_dir()

    from headwater.cli import main

    base = ["--catalog", catalog_url, "--store", str(tmp_path / "store")]
    refused = CliRunner().invoke(main, [*base, "get", ref, str(tmp_path / "cli")])
    assert refused.exit_code == 2
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--allow-foreign-store" in lines[0]
    assert not (tmp_path / "cli").exists()
    allowed = CliRunner().invoke(main, [*base, "get", "--allow-foreign-store", ref,
                                        str(tmp_path / "cli")])
    assert allowed.exit_code == 0, allowed.output


def test_verify_reports_external_versions_as_not_verified(
        catalog: Catalog, tmp_path: Path, catalog_url: str) -> None:
    catalog.log(pa.table({"id": [1]}), name="t/native")
    ref = _foreign_external(catalog, tmp_path)
    report = catalog.verify()
    assert report.ok and report.versions == 1 and report.skipped == [ref]

    from headwater.cli import main

    result = CliRunner().invoke(main, ["--catalog", catalog_url, "--store",
                                       str(tmp_path / "store"), "verify"])
    assert result.exit_code == 0, result.output
    assert "all good" not in result.output
    assert f"SKIPPED {ref}" in result.output and "1 external version(s) not verified" in \
        result.output


def test_an_external_version_naming_the_catalogs_own_store_is_not_recorded_as_kept_there(
        catalog: Catalog, tmp_path: Path) -> None:
    """The URL an event gives is where the producer says its data is, never "our own store"
    (``"."``): recorded as ``"."`` it would read as one of ours and ``gc`` would look for its
    manifest (ADR 0004: ingestion creates versions through the catalog service)."""
    from headwater.maintenance import gc

    location = f"file://{tmp_path}/store"  # the `catalog` fixture's own store
    with TestClient(create_app(catalog), base_url="http://localhost") as c:
        r = c.post(f"{API}/lineage", json=run_event(outputs=[{
            "namespace": f"file://{tmp_path}", "name": "store", "facets": {"version": {
                "_producer": PRODUCER, "_schemaURL": "x", "datasetVersion": "1",
                "digest": "ab" * 32}}}]))
        assert r.status_code == 201, r.text
        (ref,) = r.json()["outputs"]
    assert catalog.get(ref).store_url == location
    report = gc(catalog, grace_seconds=0)
    assert report.damaged == []
