"""Reports logged with a version: tables, histograms, figures, samples and scalars.

What ClearML's ``report_table``/``report_histogram``/``report_matplotlib_figure``/``report_media``
and W&B's logged tables give users, attached to immutable versions. A report's payload (a Parquet
table, a PNG, sample files) is a content-addressed object in the store; its catalog row says what
it is, with a small JSON ``body`` (counts, axis titles, captions, a Vega-Lite spec, the scalar).
Adding a report never changes the version's digest; logging the same name again keeps both.

This module turns user payloads into :class:`ReportPayload` (pure, no catalog); recording them is
``Catalog.report`` / ``RunContext.report``.
"""

from __future__ import annotations

import io
import json
import math
import mimetypes
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from headwater.errors import InvalidArgument

KINDS = ("table", "histogram", "figure", "samples", "scalar")
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_INLINE_SAMPLE = 4096


class ReportError(InvalidArgument):
    """A report's payload is unsupported, cannot be rendered, or is too large."""


@dataclass
class ReportPayload:
    """A report ready to store: ``blobs`` become objects; ``body`` is kept in the catalog."""

    name: str
    kind: str
    body: dict[str, Any] = field(default_factory=dict)
    blob: bytes | None = None
    media_type: str | None = None
    extra_blobs: list[tuple[bytes, str | None]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.blob or b"") + sum(len(b) for b, _ in self.extra_blobs)


@dataclass(frozen=True)
class ReportInfo:
    id: int
    version: str
    name: str
    kind: str
    body: dict[str, Any]
    digest: str | None
    media_type: str | None
    size: int
    created_at: datetime
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"] = self.created_at.isoformat()
        return d


def _bad(name: str, problem: str) -> ReportError:
    return ReportError(f"report {name!r}: {problem}")


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")


def check_header_safe(p: ReportPayload) -> ReportPayload:
    """Refuse what would break the headers a download is served with: control characters (CR,
    LF, NUL…) in the report's name or a sample's file name, and media types that are not a plain
    ``type/subtype``. Checked when the report is logged, so nothing stored can break later."""
    if any(not c.isprintable() for c in p.name):
        raise ReportError(f"report name {p.name!r} contains a control character (CR, LF, tab, "
                          "NUL…); use printable characters only")
    raw_items = p.body.get("items")
    items: list[Any] = raw_items if isinstance(raw_items, list) else []
    medias = [p.media_type, *(m for _, m in p.extra_blobs)]
    medias += [it.get("media_type") for it in items if isinstance(it, dict)]
    for media in medias:
        if media is not None and not _MEDIA_TYPE.fullmatch(str(media)):
            raise _bad(p.name, f"media type {media!r} is not of the form type/subtype "
                               "(letters, digits, !#$&^_.+-)")
    for it in items:
        filename = it.get("filename") if isinstance(it, dict) else None
        if isinstance(filename, str) and any(not c.isprintable() for c in filename):
            raise _bad(p.name, f"sample file name {filename!r} contains a control character")
    return p


def check_size(p: ReportPayload, max_bytes: int) -> ReportPayload:
    if p.size > max_bytes:
        raise _bad(p.name, f"is {p.size} bytes, over the {max_bytes}-byte limit "
                           "(HEADWATER_REPORT_MAX_BYTES); report a sample or an aggregate")
    return p


# -- tables -------------------------------------------------------------------------------------
def table_payload(name: str, data: Any) -> ReportPayload:
    """An Arrow table, a pandas DataFrame, CSV text, or a path to a CSV/Parquet file."""
    import pyarrow as pa  # imported on use: most runs log no table report
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if isinstance(data, pa.Table):
        table = data
    elif type(data).__name__ == "DataFrame" and hasattr(data, "to_parquet"):
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif isinstance(data, Path) or (isinstance(data, str) and "\n" not in data
                                    and Path(data).suffix.lower() in (".csv", ".parquet")):
        path = Path(data)
        if not path.is_file():
            raise _bad(name, f"file {str(path)!r} does not exist")
        table = pq.read_table(path) if path.suffix.lower() == ".parquet" else pacsv.read_csv(path)
    elif isinstance(data, str):
        try:
            table = pacsv.read_csv(io.BytesIO(data.encode()))
        except pa.ArrowInvalid as exc:
            raise _bad(name, f"is not valid CSV: {exc}") from exc
    elif isinstance(data, Sequence) and data and all(isinstance(r, Mapping) for r in data):
        table = pa.Table.from_pylist([dict(r) for r in data])
    else:
        raise _bad(name, f"a table must be an Arrow table, a DataFrame, CSV text, a CSV/Parquet "
                         f"path or a list of dicts, not {data.__class__.__name__}")
    buf = io.BytesIO()
    pq.write_table(table, buf)
    body = {"columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "rows": table.num_rows}
    return ReportPayload(name, "table", body, buf.getvalue(), "application/vnd.apache.parquet")


# -- histograms ---------------------------------------------------------------------------------
def histogram_payload(
    name: str, values: Any = None, *, counts: Mapping[Any, float] | None = None,
    bins: int | Sequence[float] = 20, x_title: str | None = None, y_title: str | None = "count",
) -> ReportPayload:
    """From raw ``values`` (numbers → ``bins``; strings/bools → one bar per value) or from
    precomputed ``counts`` ({label: count})."""
    if (values is None) == (counts is None):
        raise _bad(name, "give either values or counts")
    if counts is not None:
        labels = [str(k) for k in counts]
        heights = [float(v) for v in counts.values()]
        if any(math.isnan(h) or h < 0 for h in heights):
            raise _bad(name, "counts must be non-negative numbers")
        body = {"labels": labels, "counts": heights}
    else:
        vals = list(values.to_pylist() if hasattr(values, "to_pylist") else values)
        vals = [v for v in vals if v is not None]
        if vals and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            import numpy as np

            hist, edges = np.histogram(np.asarray(vals, dtype=float), bins=bins)
            body = {"edges": [float(e) for e in edges], "counts": [int(c) for c in hist]}
        else:
            tally: dict[str, int] = {}
            for v in vals:
                tally[str(v)] = tally.get(str(v), 0) + 1
            body = {"labels": sorted(tally), "counts": [tally[k] for k in sorted(tally)]}
    body.update({"x_title": x_title, "y_title": y_title})
    return ReportPayload(name, "histogram", body)


# -- figures ------------------------------------------------------------------------------------
def figure_payload(name: str, figure: Any, *, caption: str | None = None) -> ReportPayload:
    """A matplotlib figure (rendered to PNG), a Vega-Lite spec (dict), PNG/SVG bytes or a path."""
    body: dict[str, Any] = {"caption": caption}
    if isinstance(figure, Mapping):
        schema = str(figure.get("$schema", ""))
        if "vega" not in schema and "mark" not in figure and "layer" not in figure:
            raise _bad(name, "a dict figure must be a Vega-Lite spec ($schema or mark)")
        body["vega_lite"] = json.loads(json.dumps(figure, default=str))
        return ReportPayload(name, "figure", body)
    if hasattr(figure, "savefig"):
        buf = io.BytesIO()
        try:
            figure.savefig(buf, format="png", bbox_inches="tight")
        except Exception as exc:  # the figure's own rendering failed
            raise _bad(name, f"the matplotlib figure cannot be rendered: {exc}") from exc
        return ReportPayload(name, "figure", body, buf.getvalue(), "image/png")
    if isinstance(figure, str | Path) and Path(figure).is_file():
        data = Path(figure).read_bytes()
    elif isinstance(figure, bytes | bytearray):
        data = bytes(figure)
    else:
        raise _bad(name, f"unsupported figure {figure.__class__.__name__}: give a matplotlib "
                         "figure, a Vega-Lite dict, PNG/SVG bytes or a path")
    media = _sniff_image(data)
    if media is None:
        raise _bad(name, "the bytes are neither PNG nor SVG")
    return ReportPayload(name, "figure", body, data, media)


def _sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "image/svg+xml"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


# -- samples ------------------------------------------------------------------------------------
def samples_payload(name: str, items: Iterable[Any]) -> ReportPayload:
    """Debug samples: each item is a record (dict), a text, a file path, or ``{"path"|"data"|
    "record"|"text": …, "caption": …}``. Files (images, audio…) become objects."""
    out: list[dict[str, Any]] = []
    blobs: list[tuple[bytes, str | None]] = []
    for item in items:
        spec = dict(item) if isinstance(item, Mapping) and (
            {"path", "data", "record", "text"} & set(item)) else None
        if spec is None:
            if isinstance(item, Mapping):
                spec = {"record": dict(item)}
            elif isinstance(item, Path) or (isinstance(item, str) and Path(item).is_file()):
                spec = {"path": item}
            elif isinstance(item, str):
                spec = {"text": item}
            else:
                raise _bad(name, f"unsupported sample {item.__class__.__name__}")
        entry: dict[str, Any] = {"caption": spec.get("caption")}
        if "record" in spec:
            entry.update(type="record", record=json.loads(json.dumps(spec["record"], default=str)))
        elif "text" in spec:
            entry.update(type="text", text=str(spec["text"])[:MAX_INLINE_SAMPLE])
        else:
            if "path" in spec:
                path = Path(spec["path"])
                if not path.is_file():
                    raise _bad(name, f"sample file {str(path)!r} does not exist")
                data, filename = path.read_bytes(), path.name
            else:
                data, filename = bytes(spec["data"]), spec.get("filename") or "sample"
            media = spec.get("media_type") or mimetypes.guess_type(filename)[0] \
                or _sniff_image(data) or "application/octet-stream"
            entry.update(type=media.split("/", 1)[0], media_type=media, filename=filename,
                         blob_index=len(blobs))
            blobs.append((data, media))
        out.append(entry)
    if not out:
        raise _bad(name, "no samples given")
    return ReportPayload(name, "samples", {"items": out}, extra_blobs=blobs)


# -- scalars ------------------------------------------------------------------------------------
def scalar_payload(name: str, value: float) -> ReportPayload:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad(name, f"a scalar must be a number, not {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise _bad(name, "a scalar must be finite")
    return ReportPayload(name, "scalar", {"value": number})


def build_payload(name: str, kind: str, data: Any, **options: Any) -> ReportPayload:
    """Dispatch on ``kind``; unknown kinds and options are clear errors."""
    if not name or not isinstance(name, str) or len(name) > 256:
        raise ReportError("a report needs a name of 1 to 256 characters")
    builders: dict[str, Callable[..., ReportPayload]] = {
        "table": table_payload, "histogram": histogram_payload, "figure": figure_payload,
        "samples": samples_payload, "scalar": scalar_payload}
    if kind not in builders:
        raise _bad(name, f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if any(not c.isprintable() for c in name):
        raise ReportError(f"report name {name!r} contains a control character (CR, LF, tab, "
                          "NUL…); use printable characters only")
    try:
        payload = builders[kind](name, data, **options)
    except TypeError as exc:
        raise _bad(name, f"bad options for a {kind} report: {exc}") from exc
    return check_header_safe(payload)
