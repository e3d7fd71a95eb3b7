"""ReadVersion / WriteVersion on every runner: one version per write, retries included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import apache_beam as beam
import headwater_beam.write as write_module
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.display import DisplayData
from headwater_beam import ReadVersion, WriteVersion, query_lineage

from headwater import Catalog, Settings
from headwater.tables import TableProfiler, profile_table
from headwater.tables.fingerprint import same_rows
from tests.beam.conftest import FNAPI, RETRYING, RUNNERS, settings_for
from tests.table_rows import sorted_rows


def _summary(v: Any) -> tuple[str, int, int | None, bool]:
    return v.dataset, v.number, v.row_count, v.created


@pytest.mark.parametrize("runner", ["fnapi", "multiprocess", "portable"])
def test_roundtrip_on_each_runner(runner: str, settings: Any, users: pa.Table) -> None:
    with Catalog.open(settings=settings) as cat:
        source = cat.log(users, name="raw")
    with beam.Pipeline(options=PipelineOptions(RUNNERS[runner])) as p:
        out = (p | ReadVersion(source.ref, settings=settings)
               | WriteVersion("copy", settings=settings, max_rows_per_shard=250))
        assert_that(out | beam.Map(_summary), equal_to([("copy", 1, users.num_rows, True)]))
    with Catalog.open(settings=settings) as cat:
        (copy,) = cat.versions("copy")
        assert same_rows(copy.table_fingerprint or "", source.table_fingerprint or "")
        assert sorted_rows(cat.read_table(copy)) == sorted_rows(users)
        assert copy.row_count == users.num_rows
        assert copy.file_count >= 5  # sharded, yet the same table
        assert all(f.startswith("part-") for f in copy.files())
        run = cat.get_run(copy.run_id or "")
        assert run.inputs == (source.ref,)
        assert run.engine["name"] == "beam"


def test_roundtrip_on_each_catalog(catalog_url: str, tmp_path: Path, users: pa.Table) -> None:
    settings = settings_for(catalog_url, tmp_path)
    with Catalog.open(settings=settings) as cat:
        source = cat.log(users, name="raw")
    for _ in range(2):  # the same content again: no second version
        with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
            _ = (p | ReadVersion("raw@latest", settings=settings)
                 | WriteVersion("copy", settings=settings, max_rows_per_shard=400))
    with Catalog.open(settings=settings) as cat:
        versions = cat.versions("copy")
        assert [v.table_fingerprint for v in versions] == [source.table_fingerprint]


def test_empty_input_commits_an_empty_table(settings: Any) -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        out = (p | beam.Create([]) | WriteVersion("empty", settings=settings, schema=schema))
        assert_that(out | beam.Map(lambda v: (v.row_count, v.kind)), equal_to([(0, "table")]))
    with Catalog.open(settings=settings) as cat:
        v = cat.get("empty@1")
        assert [c["name"] for c in v.schema or []] == ["a", "b"]
        assert v.to_arrow().num_rows == 0


# --- retries -------------------------------------------------------------------------------
class FailOncePerBundle(beam.DoFn):
    """Raises the first time it sees a bundle (keyed by its first record), then passes."""

    def __init__(self, marker_dir: str) -> None:
        self.marker_dir = marker_dir

    def start_bundle(self) -> None:
        self.first: str | None = None

    def process(self, record: dict[str, Any]) -> Any:
        if self.first is None:
            self.first = str(record["record_id"])
            marker = os.path.join(self.marker_dir, self.first)
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError(f"injected failure in the bundle starting {self.first}")
        yield record


def test_retried_bundles_commit_exactly_one_version(
    settings: Any, users: pa.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BundleBasedDirectRunner retries a failed bundle (FnApiRunner does not). Failures are
    injected before the write, after a shard object is published, and after the commit."""
    failures: dict[str, int] = {"shard": 0, "finalize": 0}
    real_write = write_module.write_parquet_object
    real_report = write_module.report_lineage

    def shard_then_fail(store: Any, table: pa.Table, compression: str) -> Any:
        shard = real_write(store, table, compression)
        if failures["shard"] < 2:  # the object is published, then the bundle dies
            failures["shard"] += 1
            raise RuntimeError("injected failure after publishing a shard")
        return shard

    def commit_then_fail(kind: str, uri: str) -> None:
        if failures["finalize"] == 0:  # the version is committed, then the bundle dies
            failures["finalize"] += 1
            raise RuntimeError("injected failure after the commit")
        real_report(kind, uri)

    monkeypatch.setattr(write_module, "write_parquet_object", shard_then_fail)
    monkeypatch.setattr(write_module, "report_lineage", commit_then_fail)
    with Catalog.open(settings=settings) as cat:
        source = cat.log(users, name="raw")
    markers = tmp_path / "markers"
    markers.mkdir()
    with beam.Pipeline(options=PipelineOptions(RETRYING)) as p:
        out = (p
               | ReadVersion(source.ref, settings=settings)
               | beam.ParDo(FailOncePerBundle(str(markers)))
               | WriteVersion("copy", settings=settings, max_rows_per_shard=300))
        assert_that(out | beam.Map(_summary), equal_to([("copy", 1, users.num_rows, True)]))
    assert failures == {"shard": 2, "finalize": 1}
    assert len(list(markers.iterdir())) >= 1
    with Catalog.open(settings=settings) as cat:
        (copy,) = cat.versions("copy")
        assert same_rows(copy.table_fingerprint or "", source.table_fingerprint or "")
        writes = cat.runs(job=cat.get_run(copy.run_id or "").job, state="COMPLETED")
        assert len(writes) == 1  # the retried finalize found its commit instead of redoing it


# --- display data, lineage metrics, the mergeable profile ----------------------------------
def test_display_data(settings: Any) -> None:
    items = {i.key: i.value for i in DisplayData.create_from(
        WriteVersion("x", settings=settings, key=["id"])).items}
    assert items["dataset"] == "x" and items["key"] == "id"
    items = {i.key: i.value for i in DisplayData.create_from(
        ReadVersion("x@3", settings=settings)).items}
    assert items["ref"] == "x@3"


def test_beam_lineage_metrics_name_the_versions(settings: Any, users: pa.Table) -> None:
    with Catalog.open(settings=settings) as cat:
        source = cat.log(users.slice(0, 50), name="raw")
    p = beam.Pipeline(options=PipelineOptions(RUNNERS["portable"]))
    _ = p | ReadVersion(source.ref, settings=settings) | WriteVersion("copy", settings=settings)
    result = p.run()
    result.wait_until_finish()
    lineage = query_lineage(result)  # Lineage.query() itself crashes on portable results
    assert any(source.digest[2:] in s for s in lineage["sources"]), lineage
    with Catalog.open(settings=settings) as cat:
        copy = cat.get("copy@1")
    assert any(copy.digest[2:] in s for s in lineage["sinks"]), lineage


def test_profiles_merge_like_one_table(users: pa.Table) -> None:
    whole = profile_table([users], "parquet")
    parts = [TableProfiler("parquet") for _ in range(3)]
    for i, part in enumerate(parts):
        part.update(users.slice(i * 400, 400))
    merged = TableProfiler("parquet")
    for part in reversed(parts):
        merged.merge(part)
    assert merged.result() == whole


@pytest.mark.emulator
@pytest.mark.parametrize("store", ["s3_store", "gcs_store"])
def test_roundtrip_with_the_store_on_s3_and_gcs(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, users: pa.Table
) -> None:
    """The production shape: workers reach the store over the network (PortableRunner runs them
    outside the launcher's Python objects; only Settings travel)."""
    remote = request.getfixturevalue(store)
    settings = Settings(catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}", store_url=remote.url,
                        store_options=remote.storage_options)
    with Catalog.open(settings=settings) as cat:
        source = cat.log(users.slice(0, 300), name="raw")
    with beam.Pipeline(options=PipelineOptions(RUNNERS["portable"])) as p:
        out = (p | ReadVersion(source.ref, settings=settings)
               | WriteVersion("copy", settings=settings, max_rows_per_shard=100))
        assert_that(out | beam.Map(_summary), equal_to([("copy", 1, 300, True)]))
    with Catalog.open(settings=settings) as cat:
        copy = cat.get("copy@1")
        assert copy.store_url == remote.url
        assert same_rows(copy.table_fingerprint or "", source.table_fingerprint or "")
        assert cat.verify("copy@1").problems == []  # every shard object re-hashed


def test_write_version_refuses_a_schema_that_is_not_an_arrow_schema() -> None:
    # the ``type`` argument shadowed the builtin: a wrong schema raised TypeError instead
    from headwater.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=r"pyarrow\.Schema, not dict"):
        WriteVersion("users", schema={"id": "int64"})  # type: ignore[arg-type]
