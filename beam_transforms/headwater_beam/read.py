"""``ReadVersion``: the records of one exact, immutable version, read on the workers.

Why this shape: the reference (``users@latest``, ``users@production``) is resolved once, in the
launcher, to an exact ``ns/name@N`` and its manifest; from then on nothing depends on the
catalog: workers read content-addressed objects straight from the store and verify their
digests, so a run that started on version 7 keeps reading version 7 even if 8 is logged
meanwhile. The pinned version is an input of the pipeline's catalog run and of every version a
``WriteVersion`` downstream of it commits (both find it by walking the pipeline graph for
transforms that expose ``headwater_inputs``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.transforms.display import DisplayDataItem

from headwater import Catalog, Settings, VersionInfo
from headwater.errors import InvalidArgument
from headwater.store import ManifestEntry, ObjectStore
from headwater.tables import table_files
from headwater.tables.detect import format_of
from headwater.tables.formats import iter_batches
from headwater_beam.metrics import counter, report_lineage, version_uri
from headwater_beam.options import pinned_ref, settings_from_options, with_option_pins

__all__ = ["ReadVersion", "resolve_version"]


def resolve_version(settings: Settings, ref: str) -> tuple[VersionInfo, list[ManifestEntry]]:
    """Pin ``ref`` to an exact version and list its table files (launcher side).

    Raises:
        VersionNotFound: no such dataset or version.
        InvalidArgument: the version holds no table files.
    """
    with Catalog(settings) as cat:
        version = cat.get(ref)
        manifest = version.manifest()
        info = version.info()
    fmt, entries = table_files(manifest)
    if fmt is None:
        raise InvalidArgument(
            f"{info.ref} holds no table files of one format (Parquet, CSV, JSON Lines, Arrow); "
            "ReadVersion reads tables — use version.checkout() for other files"
        )
    return info, entries


class _ReadEntry(beam.DoFn):
    """Reads one table file of the version (verified against its digest) into records."""

    def __init__(self, settings: Settings, version: VersionInfo,
                 columns: Sequence[str] | None) -> None:
        self._settings = settings
        self._version = version
        self._columns = list(columns) if columns else None
        self._store: ObjectStore | None = None

    def setup(self) -> None:
        self._store = ObjectStore(self._version.store_url, options=self._settings.store_options)
        self._records = counter("read", "records_read")
        self._files = counter("read", "files_read")

    def process(self, entry: ManifestEntry) -> Iterator[dict[str, Any]]:
        if self._store is None:
            self.setup()
        store = self._store
        fmt = format_of(entry.path) or ""
        context = f"{self._version.ref} file {entry.path}"
        if entry.digest is not None:
            stream = store.open(entry.digest, context=context)
        else:  # reference-mode entry: data left in place, read through the catalog's checks
            with Catalog(self._settings) as cat:
                stream = cat.open_file(self._version, entry.path)
        with stream:
            for batch in iter_batches(stream, fmt):
                if self._columns:
                    batch = batch.select(self._columns)
                rows = batch.to_pylist()
                self._records.inc(len(rows))
                yield from rows
        self._files.inc()


class ReadVersion(beam.PTransform):  # type: ignore[misc]
    """Records (dicts) of the exact version ``ref`` resolves to when the pipeline is built.

    ``settings``: where the catalog and store are (default: the ``--headwater_*`` pipeline
    options, then the ``HEADWATER_*`` environment). ``columns``: read only these.
    A pin for the dataset (``--headwater_pins``, ``HEADWATER_PINS``) replaces ``ref``.
    After ``expand``, ``.version`` is the pinned :class:`~headwater.VersionInfo`.
    """

    def __init__(self, ref: str, *, settings: Settings | None = None,
                 columns: Sequence[str] | None = None, label: str | None = None) -> None:
        super().__init__(label)
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("ReadVersion needs a version reference, e.g. 'users@latest'")
        self.ref = ref
        self.settings = settings
        self.columns = tuple(columns) if columns else None
        self.version: VersionInfo | None = None
        #: exact refs this transform reads (collected into the catalog runs' inputs)
        self.headwater_inputs: tuple[str, ...] = ()

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        options = pbegin.pipeline.options
        settings = (with_option_pins(self.settings, options) if self.settings is not None
                    else settings_from_options(options))
        # a pin (--headwater_pins, HEADWATER_PINS) substitutes its exact version for the ref
        version, entries = resolve_version(settings, pinned_ref(settings, self.ref))
        self.version = version
        self.headwater_inputs = (version.ref,)
        return (
            pbegin
            | "Files" >> beam.Create(entries)
            | "Spread" >> beam.Reshuffle()
            | "Lineage" >> beam.Map(_report_source, version)
            | "Read" >> beam.ParDo(_ReadEntry(settings, version, self.columns))
        )

    def display_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ref": DisplayDataItem(self.ref, label="Reference")}
        if self.version is not None:
            data["version"] = DisplayDataItem(self.version.ref, label="Pinned version")
            data["digest"] = DisplayDataItem(self.version.digest, label="Root digest")
        if self.columns:
            data["columns"] = DisplayDataItem(", ".join(self.columns), label="Columns")
        return data


def _report_source(entry: ManifestEntry, version: VersionInfo) -> ManifestEntry:
    # the version *is* its manifest object: one lineage FQN per version, as in OpenLineage
    report_lineage("source", version_uri(version))
    return entry
