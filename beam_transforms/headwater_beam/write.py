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

**Row check** (every runner): the records that enter the write are counted on a side path
(``Count.Globally`` flattened into the gather, no side input) and the finalize refuses to commit
when the shards hold a different number of rows — a runner that loses output can never leave a
short (or empty) COMPLETED version; the pipeline fails instead.

**Runners that drop ``finish_bundle`` output** (Beam 2.77's ``DaskRunner``: it collects a
partition's results before calling ``finish_bundle``): the shards are cut in ``process`` after a
``GroupByKey`` on a block number, so no output is emitted at bundle end. The same runner mixes a
multi-output ``ParDo``'s tagged outputs into its main output and computes only the last leaf of
the graph, so on it a write downstream of a multi-output step, or a second write in one pipeline,
is refused when the pipeline is built (:func:`check_runner`).

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
from headwater.errors import InvalidArgument, RunFailed
from headwater.store import ManifestEntry, ObjectStore
from headwater.tables import TableProfiler
from headwater_beam.graph import WriteContext, write_context
from headwater_beam.metrics import counter, report_lineage, version_uri

__all__ = ["WriteVersion", "check_runner", "committed_before", "drops_finish_bundle"]

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


class _KeyByBlock(beam.DoFn):
    """``record`` → ``(block, record)``: the n-th ``max_rows`` records of a bundle share a key.

    Deterministic for a given bundle (a recomputed partition keys its records the same way)."""

    def __init__(self, max_rows: int) -> None:
        self._max_rows = max_rows

    def start_bundle(self) -> None:
        self._seen = 0

    def process(self, record: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
        block = self._seen // self._max_rows
        self._seen += 1
        yield block, record


class _WriteGroupedShards(_WriteShards):
    """One key's records → shards of at most ``max_rows`` rows, all emitted in ``process``."""

    def process(self, item: Any) -> Iterator[tuple[_Shard, TableProfiler]]:  # type: ignore[override]
        _, records = item
        self._rows = []
        for record in records:
            self._rows.append(record)
            if len(self._rows) >= self._max_rows:
                yield self._flush()
        if self._rows:
            yield self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        return iter(())


@dataclass(frozen=True)
class _Entered:
    """How many records entered the write (the side path's single element)."""

    rows: int


_Gathered = tuple[list[_Shard], TableProfiler, int]


class _GatherShards(beam.CombineFn):  # type: ignore[misc]
    """Shard descriptions into one list, profiles into one merged profile, and the count of
    records that entered the write (from the side path)."""

    def create_accumulator(self) -> _Gathered:
        return [], TableProfiler("parquet"), 0

    def add_input(self, acc: _Gathered, item: Any) -> _Gathered:
        shards, profiler, entered = acc
        if isinstance(item, _Entered):
            return shards, profiler, entered + item.rows
        shards.append(item[0])
        profiler.merge(item[1])
        return shards, profiler, entered

    def merge_accumulators(self, accs: Any) -> _Gathered:
        it = iter(accs)
        shards, profiler, entered = next(it)
        for more, prof, n in it:
            shards.extend(more)
            profiler.merge(prof)
            entered += n
        return shards, profiler, entered

    def extract_output(self, acc: _Gathered) -> _Gathered:
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

    def process(self, acc: _Gathered) -> Iterator[VersionInfo]:
        shards, profiler, entered = acc
        ctx = self._ctx
        written = sum(s.rows for s in shards)
        if written != entered:
            raise RunFailed(
                f"WriteVersion({self._spec.name!r}) refuses to commit: {entered} records entered "
                f"the write but its shards hold {written} rows (the runner lost output; Beam's "
                f"DaskRunner drops what a DoFn emits in finish_bundle). Nothing was committed.")
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


def drops_finish_bundle(runner: Any) -> bool:
    """Whether ``runner`` loses what a DoFn emits in ``finish_bundle`` (Beam 2.77's DaskRunner,
    and runners derived from it)."""
    return any(c.__name__ == "DaskRunner" for c in type(runner).__mro__)


def _multi_output_steps(pcoll: beam.PCollection) -> list[str]:
    """Labels of the multi-output ``ParDo``s upstream of ``pcoll``."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[Any] = [pcoll]
    while stack:
        value = stack.pop()
        applied = getattr(value, "producer", None)
        if applied is None or id(applied) in seen:
            continue
        seen.add(id(applied))
        if isinstance(applied.transform, beam.ParDo) and len(applied.outputs) > 1:
            found.append(applied.full_label)
        stack.extend(applied.inputs)
        stack.extend(si.pvalue for si in getattr(applied, "side_inputs", ()))
    return sorted(found)


def check_runner(pcoll: beam.PCollection, dataset: str) -> None:
    """Refuse, while the pipeline is built, a write that ``pcoll``'s runner cannot run correctly.

    Raises:
        InvalidArgument: on Beam's DaskRunner, when a multi-output ``ParDo`` feeds the write
            (the runner hands every output of such a step to each consumer) or the pipeline
            already has a ``WriteVersion`` (the runner computes only the last leaf of the graph).
    """
    pipeline = pcoll.pipeline
    if not drops_finish_bundle(pipeline.runner):
        return
    mixed = _multi_output_steps(pcoll)
    if mixed:
        raise InvalidArgument(
            f"WriteVersion({dataset!r}) cannot run on Beam's DaskRunner: it is fed by "
            f"multi-output steps ({', '.join(mixed)}), and DaskRunner (Beam "
            f"{beam.__version__}) passes every output of such a step - main and tagged - to "
            f"each consumer, which would write wrong rows. Run this pipeline on FnApiRunner, "
            f"PortableRunner (Flink, Spark) or Dataflow.")
    others = _pipeline_writes(pipeline)
    if others:
        raise InvalidArgument(
            f"WriteVersion({dataset!r}) cannot run on Beam's DaskRunner: the pipeline already "
            f"writes {', '.join(others)}, and DaskRunner (Beam {beam.__version__}) computes only "
            f"the last leaf of the graph, so an earlier write would silently not run. Use one "
            f"WriteVersion per pipeline on DaskRunner, or another runner.")


def _pipeline_writes(pipeline: beam.Pipeline) -> list[str]:
    """Labels of the WriteVersions already expanded in ``pipeline``."""
    out: list[str] = []

    class _Visitor(beam.pipeline.PipelineVisitor):  # type: ignore[misc]
        def enter_composite_transform(self, node: Any) -> None:
            if isinstance(node.transform, WriteVersion) and node.transform.write_id:
                out.append(node.full_label)

    pipeline.visit(_Visitor())
    return out


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
        check_runner(pcoll, self.name)
        ctx = write_context(pcoll, self, dataset=self.name, settings=self.settings)
        settings = ctx.settings
        self.write_id, self.job = ctx.write_id, ctx.job
        records = pcoll | "Global" >> beam.WindowInto(GlobalWindows())
        if drops_finish_bundle(pcoll.pipeline.runner):  # shards emitted in process only
            shards = (records
                      | "Block" >> beam.ParDo(_KeyByBlock(self.max_rows_per_shard))
                      | "GroupBlocks" >> beam.GroupByKey()
                      | "Shards" >> beam.ParDo(_WriteGroupedShards(
                          settings, self.schema, self.max_rows_per_shard, self.compression)))
        else:
            shards = records | "Shards" >> beam.ParDo(_WriteShards(
                settings, self.schema, self.max_rows_per_shard, self.compression))
        entered = (records
                   | "CountIn" >> beam.combiners.Count.Globally()
                   | "Entered" >> beam.Map(_Entered))
        return (
            (shards, entered)
            | "Join" >> beam.Flatten()
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
