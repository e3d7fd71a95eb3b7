"""Which files of a version are table files, and in which format — by name alone.

Kept apart from :mod:`headwater.tables.formats` so that deciding whether a version is a table
imports nothing heavy: every ``log`` of a directory asks, and pyarrow costs ~0.15 s to import.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol, TypeVar

TABLE_FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".arrow": "arrow",
    ".feather": "arrow",
}


def is_data_file(path: str) -> bool:
    # plain string work: this runs once per file of every snapshot (a PurePosixPath per call
    # cost 0.4 s on 100k files)
    name = path.rsplit("/", 1)[-1]
    return not (name.startswith("_") or name.startswith("."))


def format_of(path: str) -> str | None:
    """The table format of a file, by its last recognised suffix (``x.csv.gz`` is not one)."""
    parts = path.rsplit("/", 1)[-1].split(".")
    for suffix in reversed(parts[1:]):
        fmt = TABLE_FORMATS.get("." + suffix.lower())
        if fmt:
            return fmt
    return None


def one_format(found: Collection[str | None]) -> str | None:
    """The table format of a version whose data files have the formats ``found`` (None for a
    data file of no table format): the single one, or None when there are several or none.

    The rule every caller shares, whether it saw the paths (:func:`detect_format`) or only the
    set of their formats (a snapshot remembers it in the stat cache).
    """
    if len(found) == 1:
        return next(iter(found))
    return None


def formats_of(paths: Iterable[str]) -> set[str | None]:
    """The table formats of the data files among ``paths`` (None: a data file of no format)."""
    return {format_of(p) for p in paths if is_data_file(p)}


def detect_format(paths: Iterable[str]) -> str | None:
    """The one table format shared by every data file in ``paths``, or None."""
    return one_format(formats_of(paths))


class _HasPath(Protocol):
    @property
    def path(self) -> str: ...


E = TypeVar("E", bound=_HasPath)


def table_files(entries: Iterable[E], fmt: str | None = None) -> tuple[str | None, list[E]]:
    """The table format of ``entries`` (manifest entries) and the entries that are its table
    files, in order: what reading or profiling a version as one table iterates over.

    ``fmt``, when the caller already knows it, skips detection. ``(None, [])`` when the
    version is not a table.
    """
    items = list(entries)
    if fmt is None:
        fmt = detect_format(e.path for e in items)
    if fmt is None:
        return None, []
    return fmt, [e for e in items if is_data_file(e.path) and format_of(e.path) == fmt]
