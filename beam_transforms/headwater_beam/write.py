"""``WriteVersion``: records in, exactly one committed version out — also when bundles retry.

How (Beam's ``fileio`` pattern, with content addressing instead of renames):

1. **Shards.** Each bundle's records become Parquet shards, uploaded with the store's
   ``writer()`` (hashed while spooled, published under their BLAKE3 digest — atomic and
   idempotent) and profiled where they were written (row count, nulls, schema and the
   layout-independent table fingerprint, whose parts merge by addition). A shard's name is not
   fixed yet: only ``(digest, size, rows)`` travels on.
2. **Gather.** A ``CombineGlobally`` folds the shard descriptions and merges the profiles.
   Beam keeps only the output of the bundle attempt that succeeded, so a retried bundle's
   abandoned shard is never listed (its object is an orphan that ``headwater gc`` reclaims), and
   a retry that rewrites the same bytes lands on the same object.
3. **Finalize** (one element, so one worker): shards are named ``part-NNNNN-of-MMMMM.parquet`` in
   digest order — the same shard contents always give the same manifest — and ONE catalog run
   commits ONE version through ``run.log_objects``. A finalize that is retried after its commit
   finds its own committed run (by a write id unique to this pipeline run and transform) and
   returns that version instead; even without that check, identical content would not make a
   second version (the core dedups against the latest).

The committed :class:`~headwater.VersionInfo` is the single element of the output, so later
stages can depend on the version (e.g. as a side input). The catalog is written only here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.transforms.display import DisplayDataItem
from apache_beam.transforms.window import GlobalWindow, GlobalWindows
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from headwater import Catalog, OutputSpec, Settings, VersionInfo
from headwater.errors import InvalidArgument
from headwater.store import ManifestEntry, ObjectStore
from headwater.tables import TableProfiler
from headwater_beam.graph import WriteContext, write_context
from headwater_beam.metrics import counter, report_lineage, version_uri

__all__ = ["WriteVersion", "committed_before"]

log = logging.getLogger(__name__)
DEFAULT_MAX_ROWS_PER_SHARD = 250_000


@dataclass(frozen=True, order=True)
class _Shard:
    digest: str
    size: int
    rows: int


class _StoreSink:
    """The file-like pyarrow's writer needs, over an :class:`ObjectWriter` (streams, no copy)."""

    closed = False

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self._pos = 0

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        self._writer.write(data)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        return None

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def write_parquet_object(store: ObjectStore, table: pa.Table, compression: str) -> _Shard:
    """Write ``table`` as one Parquet object (content-addressed, atomic, idempotent)."""
    with store.writer() as w:
        pq.write_table(table, pa.PythonFile(_StoreSink(w), mode="w"), compression=compression)
    return _Shard(w.digest, w.size, table.num_rows)


class _WriteShards(beam.DoFn):
    """Buffers a bundle's records and writes them as Parquet shards into the store."""

    def __init__(self, settings: Settings, schema: pa.Schema | None, max_rows: int,
                 compression: str) -> None:
        self._settings = settings
        self._schema = schema
        self._max_rows = max_rows
        self._compression = compression
        self._rows: list[dict[str, Any]] = []

    def setup(self) -> None:
        self._store = ObjectStore(self._settings.store_url, options=self._settings.store_options)
        self._written = counter("write", "records_written")
        self._shards = counter("write", "shards_written")
        self._bytes = counter("write", "bytes_written")

    def start_bundle(self) -> None:
        self._rows = []

    def process(self, record: dict[str, Any]) -> Iterator[tuple[_Shard, TableProfiler]]:
        self._rows.append(record)
        if len(self._rows) >= self._max_rows:
            yield self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._rows:
            yield WindowedValue(self._flush(), MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self) -> tuple[_Shard, TableProfiler]:
        rows, self._rows = self._rows, []
        table = pa.Table.from_pylist(rows, schema=self._schema)
        shard = write_parquet_object(self._store, table, self._compression)
        profiler = TableProfiler("parquet")
        profiler.update(table)
        self._written.inc(shard.rows)
        self._shards.inc()
        self._bytes.inc(shard.size)
        return shard, profiler


class _GatherShards(beam.CombineFn):  # type: ignore[misc]
    """Shard descriptions into one list, profiles into one merged profile."""

    def create_accumulator(self) -> tuple[list[_Shard], TableProfiler]:
        return [], TableProfiler("parquet")

    def add_input(self, acc: tuple[list[_Shard], TableProfiler],
                  item: tuple[_Shard, TableProfiler]) -> tuple[list[_Shard], TableProfiler]:
        acc[0].append(item[0])
        acc[1].merge(item[1])
        return acc

    def merge_accumulators(
        self, accs: Any
    ) -> tuple[list[_Shard], TableProfiler]:
        it = iter(accs)
        shards, profiler = next(it)
        for more, prof in it:
            shards.extend(more)
            profiler.merge(prof)
        return shards, profiler

    def extract_output(
        self, acc: tuple[list[_Shard], TableProfiler]
    ) -> tuple[list[_Shard], TableProfiler]:
        return acc


class _Finalize(beam.DoFn):
    """Commits the version: one catalog run, one ``log_objects``, one transaction."""

    def __init__(self, settings: Settings, ctx: WriteContext, *, spec: OutputSpec,
                 schema: pa.Schema | None, compression: str) -> None:
        self._settings = settings
        self._ctx = ctx
        self._spec = spec
        self._schema = schema
        self._compression = compression

    def process(self, acc: tuple[list[_Shard], TableProfiler]) -> Iterator[VersionInfo]:
        shards, profiler = acc
        ctx = self._ctx
        with Catalog.open(settings=self._settings) as cat:
            done = committed_before(cat, ctx.job, ctx.write_id)
            if done is not None:
                log.info("headwater: %s was already committed by this write (%s); reusing it",
                         done.ref, ctx.write_id)
                yield done
                return
            if not shards:  # an empty table is still a table: one empty shard with the schema
                empty = (self._schema or pa.schema([])).empty_table()
                store = ObjectStore(self._settings.store_url,
                                    options=self._settings.store_options)
                shards = [write_parquet_object(store, empty, self._compression)]
                profiler.update(empty)
            ordered = sorted(shards)
            total = len(ordered)
            entries = [
                ManifestEntry(f"part-{i:05d}-of-{total:05d}.parquet", s.digest, s.size)
                for i, s in enumerate(ordered)
            ]
            with cat.run(ctx.job, inputs=ctx.inputs, params=ctx.params, code=ctx.code,
                         engine=ctx.engine, parent=ctx.parent, namespace=ctx.namespace,
                         job_type="BEAM_WRITE") as run:
                run.log_objects_spec(entries, replace(self._spec, stats={"shards": total}),
                                     profile=profiler.result())
            version = run.outputs[0].info()
        report_lineage("sink", version_uri(version))
        counter("write", "versions_committed").inc(1 if version.created else 0)
        yield version


def committed_before(cat: Catalog, job: str, write_id: str) -> VersionInfo | None:
    """The version a completed run of this very write (same ``write_id``) committed, if any."""
    for run in cat.runs(job=job, state="COMPLETED", limit=50):
        if run.params.get("write_id") == write_id and run.outputs:
            return cat.get(run.outputs[0]).info()
    return None


class WriteVersion(beam.PTransform):  # type: ignore[misc]
    """Write records (dicts) as ONE new version of ``name``; outputs its ``VersionInfo``.

    ``type``: dataset type (``table`` by default); ``schema``: an Arrow schema for every shard
    (default: inferred per shard — give one when a column may be entirely null in a shard and
    readers need one type); ``key``: the table's key columns (enables keyed row diffs);
    ``max_rows_per_shard`` bounds a worker's memory; ``settings`` as for ``ReadVersion``.
    The version's catalog run has every version read upstream (``ReadVersion``, a model) as
    inputs, the upstream steps' parameters and code fingerprints, and the pipeline's catalog run
    (or the Beam job) as its OpenLineage parent.
    """

    def __init__(self, name: str, *, type: str = "table", settings: Settings | None = None,
                 schema: pa.Schema | None = None, key: Sequence[str] | None = None,
                 metadata: Mapping[str, Any] | None = None,
                 max_rows_per_shard: int = DEFAULT_MAX_ROWS_PER_SHARD,
                 compression: str = "snappy", label: str | None = None) -> None:
        super().__init__(label)
        if not isinstance(name, str) or not name:
            raise InvalidArgument("WriteVersion needs a dataset name, e.g. 'users_clean'")
        if "@" in name:
            raise InvalidArgument(f"WriteVersion writes a new version of a dataset: give "
                                  f"{name.split('@')[0]!r}, not the reference {name!r}")
        if not isinstance(max_rows_per_shard, int) or max_rows_per_shard < 1:
            raise InvalidArgument(f"max_rows_per_shard must be a positive int, "
                                  f"not {max_rows_per_shard!r}")
        if schema is not None and not isinstance(schema, pa.Schema):
            # (``type`` is this method's dataset-type argument, not the builtin)
            raise InvalidArgument(
                f"schema must be a pyarrow.Schema, not {schema.__class__.__name__}")
        self.name = name
        self.type = type
        self.settings = settings
        self.schema = schema
        self.key = tuple(key) if key else None
        self.metadata = dict(metadata or {})
        self.max_rows_per_shard = max_rows_per_shard
        self.compression = compression
        self.write_id: str | None = None
        self.job: str | None = None

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        ctx = write_context(pcoll, self, dataset=self.name, settings=self.settings)
        settings = ctx.settings
        self.write_id, self.job = ctx.write_id, ctx.job
        return (
            pcoll
            | "Global" >> beam.WindowInto(GlobalWindows())
            | "Shards" >> beam.ParDo(_WriteShards(settings, self.schema, self.max_rows_per_shard,
                                                  self.compression))
            | "Gather" >> beam.CombineGlobally(_GatherShards())
            | "Commit" >> beam.ParDo(_Finalize(
                settings, ctx, spec=OutputSpec(self.name, type=self.type, key=self.key or None,
                                               metadata=self.metadata),
                schema=self.schema, compression=self.compression))
        )

    def display_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dataset": DisplayDataItem(self.name, label="Dataset"),
            "type": DisplayDataItem(self.type, label="Dataset type"),
            "format": DisplayDataItem("parquet", label="Shard format"),
            "compression": DisplayDataItem(self.compression, label="Compression"),
            "max_rows_per_shard": DisplayDataItem(self.max_rows_per_shard,
                                                  label="Rows per shard (max)"),
        }
        if self.key:
            data["key"] = DisplayDataItem(", ".join(self.key), label="Key columns")
        if self.write_id:
            data["write_id"] = DisplayDataItem(self.write_id, label="Write id")
        return data
