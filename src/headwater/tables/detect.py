"""Which files of a version are table files, and in which format — by name alone.

Kept apart from :mod:`headwater.tables.formats` so that deciding whether a version is a table
imports nothing heavy: every ``log`` of a directory asks, and pyarrow costs ~0.15 s to import.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def detect_format(paths: Iterable[str]) -> str | None:
    """The one table format shared by every data file in ``paths``, or None."""
    found: set[str | None] = {format_of(p) for p in paths if is_data_file(p)}
    if len(found) == 1:
        fmt = found.pop()
        return fmt
    return None
