"""The catalog suite: runs on SQLite and again on PostgreSQL (the ``catalog`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from headwater import Catalog
from headwater.errors import (
    AmbiguousReference,
    CatalogSchemaOutdated,
    DatasetNotFound,
    InvalidArgument,
    ReferenceChanged,
    VersionNotFound,
)


def test_log_directory_versions_and_dedup(catalog: Catalog, data_dir: Path) -> None:
    v1 = catalog.log(data_dir, name="raw/files", metadata={"source": "test"})
    assert (v1.ref, v1.created, v1.file_count) == ("raw/files@1", True, 5)
    assert v1.size == sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    same = catalog.log(data_dir, name="raw/files")
    assert (same.number, same.created, same.digest) == (1, False, v1.digest)
    (data_dir / "a.txt").write_text("changed\n")
    v2 = catalog.log(data_dir, name="raw/files")
    assert v2.number == 2 and v2.digest != v1.digest
    assert [v.number for v in catalog.versions("raw/files")] == [1, 2]
    assert catalog.get("raw/files").number == 2
    assert catalog.get("raw/files@1").metadata == {"source": "test"}


def test_identical_content_in_two_datasets_is_stored_once(catalog: Catalog, data_dir: Path
                                                          ) -> None:
    catalog.log(data_dir, name="one")
    before = {o.digest for o in catalog.store.iter_objects()}
    catalog.log(data_dir, name="two")
    after = {o.digest for o in catalog.store.iter_objects()}
    assert before == after  # same manifest, same objects: nothing new uploaded


def test_resolve_every_kind_of_reference(catalog: Catalog, tmp_path: Path) -> None:
    versions = []
    for i in range(3):
        f = tmp_path / f"f{i}.txt"
        f.write_text(f"content {i}\n")
        versions.append(catalog.log(f, name="docs"))
    catalog.alias("docs@2", "production")
    assert catalog.get("docs@production").number == 2
    assert catalog.get("default/docs@latest").number == 3
    assert catalog.get(f"docs@{versions[0].digest[:8]}").number == 1
    with pytest.raises(VersionNotFound, match=r"has versions 1\.\.3"):
        catalog.get("docs@9")
    with pytest.raises(VersionNotFound, match="no alias or label 'staging'"):
        catalog.get("docs@staging")
    with pytest.raises(DatasetNotFound, match="no dataset named default/nope"):
        catalog.get("nope")
    with pytest.raises(VersionNotFound, match="digest starting"):
        catalog.get("docs@" + "f" * 12)
    # six or more digits: a version number if one exists, else a digest prefix
    with catalog.session() as s:
        s.execute(sa.text("UPDATE versions SET digest = '1234567' || substr(digest, 8) "
                          "WHERE number = 2"))
    assert catalog.get("docs@1234567").number == 2


def test_ambiguous_digest_prefix(catalog: Catalog, tmp_path: Path) -> None:
    for i in range(2):
        (tmp_path / "x.txt").write_text(str(i))
        catalog.log(tmp_path / "x.txt", name="amb")
    # make the two root digests share a prefix (as 2**24 versions eventually would)
    with catalog.session() as s:
        s.execute(sa.text("UPDATE versions SET digest = 'abcdef' || substr(digest, 7)"))
    with pytest.raises(AmbiguousReference, match="give more characters"):
        catalog.get("amb@abcdef")


def test_aliases_move_atomically_with_history(catalog: Catalog, tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "m.bin").write_bytes(bytes([i]) * 10)
        catalog.log(tmp_path / "m.bin", name="model", type="model")
    catalog.alias("model@1", "production", actor="alice")
    catalog.alias("model@3", "production", actor="bob")
    catalog.alias("model@3", "production")  # no-op: no history entry
    catalog.alias("model@2", "best")
    assert catalog.get("model@production").number == 3
    assert catalog.get("model@3").aliases == ("production",)
    history = catalog.alias_history("model")
    assert [(h["alias"], h["from"], h["to"], h["actor"]) for h in history] == [
        ("production", None, 1, "alice"), ("production", 1, 3, "bob"), ("best", None, 2, None)]
    with pytest.raises(InvalidArgument, match="implicit"):
        catalog.alias("model@1", "latest")
    catalog.unalias("model", "best")
    with pytest.raises(VersionNotFound):
        catalog.get("model@best")
    info = {d.full_name: d for d in catalog.datasets()}["default/model"]
    assert info.aliases == {"production": 3} and info.latest == 3 and info.type == "model"


def test_dataset_type_is_enforced(catalog: Catalog, data_dir: Path) -> None:
    catalog.log(data_dir, name="thing", type="raw_data")
    with pytest.raises(InvalidArgument, match="has type 'raw_data'"):
        catalog.log(data_dir / "a.txt", name="thing", type="model")


def test_table_version_profile_and_reads(catalog: Catalog) -> None:
    table = pa.table({"id": [1, 2, 3, 4], "email": ["a@x", None, "c@x", None],
                      "score": [0.1, 0.2, None, 0.4]})
    v = catalog.log(table, name="users", key=["id"])
    assert v.kind == "table" and v.type == "table" and v.row_count == 4
    assert [c["name"] for c in v.schema or []] == ["id", "email", "score"]
    assert v.stats["null_counts"] == {"id": 0, "email": 2, "score": 1}
    assert len(v.table_fingerprint or "") == 64
    assert catalog.get("users").to_arrow().equals(table)
    with v.open("part-00000.parquet") as f:
        assert pq.read_table(pa.BufferReader(f.read())).num_rows == 4


def test_table_files_on_disk_are_profiled(catalog: Catalog, tmp_path: Path) -> None:
    d = tmp_path / "t"
    d.mkdir()
    (d / "part-0.csv").write_text("id,name\n1,ann\n2,bob\n")
    (d / "part-1.csv").write_text("id,name\n3,cy\n")
    (d / "_SUCCESS").write_text("")
    v = catalog.log(d, name="csvs")
    assert v.kind == "table" and v.row_count == 3
    assert sorted(catalog.get("csvs").to_arrow().column("id").to_pylist()) == [1, 2, 3]


def test_file_and_row_diff(catalog: Catalog) -> None:
    old = pa.table({"id": [1, 2, 3], "name": ["ann", "bob", "cy"], "age": [30, 40, 50]})
    new = pa.table({"id": [1, 2, 4], "name": ["ann", "BOB", "dee"], "age": [30, 41, 20]})
    catalog.log(old, name="people", key=["id"])
    catalog.log(new, name="people")
    d = catalog.diff("people@1", "people@2")
    assert len(d.changed) == 1 and not d.added and not d.removed
    assert d.rows is not None
    assert (d.rows.added, d.rows.removed, d.rows.changed, d.rows.unchanged) == (1, 1, 1, 1)
    assert d.rows.cells_changed == {"name": 1, "age": 1}
    assert d.rows.sample_changed[0]["key"] == {"id": 2}
    assert d.rows.sample_changed[0]["cells"]["name"] == ["bob", "BOB"]
    assert d.to_dict()["rows"]["sample_added"][0]["id"] == 4


def test_run_records_provenance_and_lineage(catalog: Catalog) -> None:
    raw = catalog.log(pa.table({"x": [1, 2, 3]}), name="raw")
    spam = catalog.log(pa.table({"t": ["buy now"]}), name="spam_corpus")
    with catalog.run("despam", inputs=["raw@latest", "spam_corpus"], params={"threshold": 0.9},
                     code="step-v1", engine={"name": "test"}) as run:
        assert [v.ref for v in run.inputs] == ["default/raw@1", "default/spam_corpus@1"]
        run.log_output(pa.table({"x": [1, 2]}), name="clean", stats={"dropped": 1})
    out = run.outputs[0]
    assert out.ref == "default/clean@1" and out.run_id == run.id and out.stats["dropped"] == 1
    info = catalog.get_run(run.id)
    assert info.state == "COMPLETED" and info.params == {"threshold": 0.9}
    assert info.inputs == ("default/raw@1", "default/spam_corpus@1")
    assert info.outputs == ("default/clean@1",) and info.code_fingerprint == "step-v1"
    up = catalog.lineage("clean", direction="up")
    assert up.versions() == ["default/clean@1", "default/raw@1", "default/spam_corpus@1"]
    down = catalog.lineage(spam, direction="down")
    assert "default/clean@1" in down.versions()
    assert catalog.lineage(raw, direction="down", depth=0).versions() == ["default/raw@1"]


def test_failed_run_leaves_no_visible_output(catalog: Catalog) -> None:
    catalog.log(pa.table({"x": [1]}), name="src")
    with pytest.raises(ZeroDivisionError), catalog.run("boom", inputs=["src"]) as run:
        run.log_output(pa.table({"y": [1]}), name="never_visible")
        1 / 0  # noqa: B018
    with pytest.raises(DatasetNotFound):
        catalog.get("never_visible")
    info = catalog.get_run(run.id)
    assert info.state == "FAILED" and "ZeroDivisionError" in (info.error or "")
    assert info.outputs == ()


def test_cache_key_finds_previous_run(catalog: Catalog) -> None:
    catalog.log(pa.table({"x": [1]}), name="in")

    def body(run) -> None:
        run.log_output(pa.table({"y": [2]}), name="out")

    with catalog.run("step", inputs=["in"], params={"a": 1}, code="v1") as first:
        assert first.previous() is None
        body(first)
    with catalog.run("step", inputs=["in"], params={"a": 1}, code="v1") as second:
        prev = second.previous()
        assert prev is not None and prev.id == first.id
        reused = second.reuse(prev)
    assert [v.ref for v in reused] == ["default/out@1"] and not reused[0].created
    assert catalog.get_run(second.id).reused_run_id == first.id
    with catalog.run("step", inputs=["in"], params={"a": 2}, code="v1") as third:
        assert third.previous() is None
        body(third)
    with catalog.run("step", inputs=["in"], params={"a": 1}, code="v2") as fourth:
        assert fourth.previous() is None  # code changed
        body(fourth)


def test_parents_are_recorded(catalog: Catalog, tmp_path: Path) -> None:
    a = catalog.log(pa.table({"x": [1]}), name="part_a")
    b = catalog.log(pa.table({"x": [2]}), name="part_b")
    merged = catalog.log(pa.table({"x": [1, 2]}), name="merged", parents=[a, "part_b@1"])
    assert merged.parents == ("default/part_a@1", "default/part_b@1")
    assert set(catalog.lineage(merged).versions()) >= {a.ref, b.ref}


def test_checkout_round_trip(catalog: Catalog, data_dir: Path, tmp_path: Path) -> None:
    v = catalog.log(data_dir, name="tree")
    dest = v.checkout(tmp_path / "out")
    for p in data_dir.rglob("*"):
        if p.is_file():
            assert (dest / p.relative_to(data_dir)).read_bytes() == p.read_bytes()


def test_reference_mode_detects_changed_source(catalog: Catalog, tmp_path: Path) -> None:
    src = tmp_path / "inplace"
    src.mkdir()
    (src / "big.csv").write_text("a\n1\n")
    v = catalog.log(f"file://{src}", name="ref_ds", reference=True)
    assert v.stats.get("reference") is True and v.row_count == 1
    objects_before = {o.digest for o in catalog.store.iter_objects()}
    assert all(e.digest is None for e in v.manifest())  # nothing copied
    assert v.checkout(tmp_path / "co1").joinpath("big.csv").read_text() == "a\n1\n"
    (src / "big.csv").write_text("a\n2\n3\n")
    with pytest.raises(ReferenceChanged, match="changed since it was logged"):
        v.checkout(tmp_path / "co2")
    assert {o.digest for o in catalog.store.iter_objects()} == objects_before


def test_older_schema_gets_a_clear_message(tmp_path: Path) -> None:
    from headwater.catalog import db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.create_catalog_engine(url)
    db.upgrade(engine, "0001")  # a catalog made by an older Headwater
    with pytest.raises(CatalogSchemaOutdated, match=r"older than .*run `headwater db upgrade`"):
        Catalog.open(url, store_url=str(tmp_path / "s"))
    db.upgrade(engine)
    Catalog.open(url, store_url=str(tmp_path / "s")).close()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num='9999_future'"))
    with pytest.raises(CatalogSchemaOutdated, match="newer than this Headwater"):
        Catalog.open(url, store_url=str(tmp_path / "s"))


def test_unsupported_data_is_a_clear_error(catalog: Catalog) -> None:
    with pytest.raises(InvalidArgument, match="cannot log a dict"):
        catalog.log({"not": "data"}, name="bad")
    with pytest.raises(DatasetNotFound):
        catalog.get("bad")


@pytest.mark.loose_store  # rewrites and then deletes one object's loose file
def test_verify_names_the_corrupted_version_and_file(catalog: Catalog, data_dir: Path) -> None:
    v = catalog.log(data_dir, name="precious")
    entry = next(e for e in v.manifest() if e.path == "sub/c.txt")
    path = Path(catalog.store.object_path(entry.digest or ""))
    path.write_bytes(b"tampered\n")
    report = catalog.verify()
    assert not report.ok
    (problem,) = report.problems
    assert (problem.version, problem.path) == ("default/precious@1", "sub/c.txt")
    assert "corrupted" in problem.problem
    path.unlink()
    (problem,) = catalog.verify("precious").problems
    assert "missing" in problem.problem
