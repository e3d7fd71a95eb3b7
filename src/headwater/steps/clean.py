"""Clean: validate records against a declared column spec and normalise them.

Why: every later step (de-spam, ID merge, split) is simpler and more accurate on normalised
values — NFKC-folded, trimmed text, lower-case e-mails, E.164 phones (via Google's
``phonenumbers``, the reference implementation of libphonenumber) and ISO 8601 dates. Rows that
fail are not dropped silently: they go to the dead-letter output with the column and the reason,
and ``rows in = rows out + rows dead-lettered`` always holds.

The per-record function :func:`clean_record` is pure; the table path runs exactly the same
function over every row, so feeding records in batches (Beam) or as one table (Airflow) gives
the same output.

A problem of the input's shape is not a problem of its rows: an input without a required
column, or one that already has the ``reason``/``column`` columns dead letters add, fails the
step with :class:`~headwater.steps.base.InputSchemaError` before any row is dead-lettered
(:func:`check_input`; the Beam path runs it on each record's keys).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import phonenumbers
import pyarrow as pa

from headwater.steps.base import (
    COLUMN,
    REASON,
    InputSchemaError,
    Record,
    Step,
    StepParams,
    StepResult,
    claim_columns,
    dead_letter_schema,
    records_to_table,
    register_step,
)

__all__ = ["DEFAULT_USER_SPEC", "CleanParams", "CleanStep", "ColumnSpec", "check_input",
           "clean_record"]

KINDS = ("text", "email", "phone", "date", "id", "int", "float", "bool")
_ARROW = {
    "text": pa.string(), "email": pa.string(), "phone": pa.string(), "date": pa.string(),
    "id": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
}
# Pragmatic address check (one @, a dot in the domain, no spaces): full RFC 5322 validation
# accepts addresses no mail system delivers to, and DNS checks would need the network.
_EMAIL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ColumnSpec:
    """One declared column: its name, its kind (text/email/phone/date/id/int/float/bool) and
    whether a value is required."""

    name: str
    kind: str = "text"
    required: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"column spec: name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"column spec {self.name!r}: kind must be one of {KINDS}, "
                             f"got {self.kind!r}")


DEFAULT_USER_SPEC: tuple[ColumnSpec, ...] = (
    ColumnSpec("record_id", "id", required=True),
    ColumnSpec("name", "text", required=True),
    ColumnSpec("email", "email"),
    ColumnSpec("phone", "phone"),
    ColumnSpec("address", "text"),
    ColumnSpec("city", "text"),
    ColumnSpec("dob", "date"),
    ColumnSpec("signup_text", "text"),
)
DEFAULT_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%m/%d/%Y", "%d %b %Y", "%b %d, %Y",
                        "%d %B %Y", "%B %d, %Y", "%d.%m.%Y")


@dataclass(frozen=True)
class CleanParams(StepParams):
    """``columns``: the declared spec; ``default_region``: ISO 3166 region for phones written
    without a country code; ``date_formats``: accepted ``strptime`` formats, tried in order
    (ISO first: ambiguous day/month orders are resolved by the order given)."""

    STEP = "clean"

    columns: tuple[ColumnSpec, ...] = DEFAULT_USER_SPEC
    default_region: str = "US"
    date_formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    min_year: int = 1900
    max_year: int = 2100
    collapse_whitespace: bool = True

    def validate(self) -> None:
        if not self.columns or not all(isinstance(c, ColumnSpec) for c in self.columns):
            raise self.bad("columns", "must be a non-empty tuple of ColumnSpec")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise self.bad("columns", f"names must be unique, got {names}")
        if self.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise self.bad("default_region",
                           f"must be a region phonenumbers knows (e.g. 'US', 'GB'), "
                           f"got {self.default_region!r}")
        if not self.date_formats:
            raise self.bad("date_formats", "must name at least one strptime format")
        if self.min_year > self.max_year:
            raise self.bad("min_year", f"({self.min_year}) is after max_year ({self.max_year})")


class _Invalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(v: Any, collapse: bool) -> str | None:
    if v is None:
        return None
    s = unicodedata.normalize("NFKC", str(v)).strip()
    if collapse:
        s = _SPACES.sub(" ", s)
    return s or None


def _email(s: str) -> str:
    s = s.replace(" ", "").lower()
    if not _EMAIL.match(s) or ".." in s:
        raise _Invalid("invalid_email")
    return s


def _phone(s: str, region: str) -> str:
    try:
        num = phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException:
        raise _Invalid("unparseable_phone") from None
    if not phonenumbers.is_valid_number(num):
        raise _Invalid("invalid_phone")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _date(v: Any, formats: Sequence[str], lo: int, hi: int) -> str:
    if isinstance(v, dt.datetime):
        d = v.date()
    elif isinstance(v, dt.date):
        d = v
    else:
        s = str(v)
        parsed: dt.date | None = None
        for fmt in formats:
            try:
                parsed = dt.datetime.strptime(s, fmt).date()
                break
            except ValueError:
                continue
        if parsed is None:
            raise _Invalid("invalid_date")
        d = parsed
    if not lo <= d.year <= hi:
        raise _Invalid("date_out_of_range")
    return d.isoformat()


def _convert(spec: ColumnSpec, v: Any, p: CleanParams) -> Any:
    if spec.kind in ("int", "float", "bool") and not isinstance(v, str):
        raw: Any = v
    else:
        raw = _text(v, p.collapse_whitespace)
    if raw is None:
        if spec.required:
            raise _Invalid("missing_required")
        return None
    kind = spec.kind
    if kind == "email":
        return _email(raw)
    if kind == "phone":
        return _phone(raw, p.default_region)
    if kind == "date":
        return _date(raw, p.date_formats, p.min_year, p.max_year)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            low = str(raw).lower()
            if low in ("true", "1", "yes", "y"):
                return True
            if low in ("false", "0", "no", "n"):
                return False
            raise ValueError(raw)
    except (TypeError, ValueError):
        raise _Invalid(f"invalid_{kind}") from None
    return raw


def check_input(names: pa.Schema | Iterable[str], params: CleanParams) -> None:
    """Refuse an input whose shape the step cannot handle (the table's schema, or one record's
    keys on the Beam path): a required column is absent, or a dead-letter column is taken.

    Raises:
        InputSchemaError: naming the missing (or clashing) columns.
    """
    have = set(names.names if isinstance(names, pa.Schema) else names)
    missing = [c.name for c in params.columns if c.required and c.name not in have]
    if missing:
        raise InputSchemaError(
            CleanParams.STEP, "columns",
            f"declare required column(s) {missing} which the input does not have "
            f"(it has {sorted(have)}); every row would fail, so nothing was dead-lettered",
            missing)
    claim_columns(CleanParams.STEP, have, {REASON: None, COLUMN: None})


def clean_record(record: Record, params: CleanParams) -> tuple[Record | None, Record | None]:
    """Clean one record: ``(cleaned, None)`` or ``(None, dead_letter)``.

    Columns not in the spec pass through unchanged. The dead letter is the original record plus
    ``reason`` and ``column`` of the first failure (all failures in ``errors``).
    """
    out = dict(record)
    failures: list[tuple[str, str]] = []
    for spec in params.columns:
        try:
            out[spec.name] = _convert(spec, record.get(spec.name), params)
        except _Invalid as e:
            failures.append((spec.name, e.reason))
    if not failures:
        return out, None
    dead = dict(record)
    dead[COLUMN], dead[REASON] = failures[0]
    if len(failures) > 1:
        dead[REASON] += " (also: " + ", ".join(f"{c}: {r}" for c, r in failures[1:]) + ")"
    return None, dead


@register_step
class CleanStep(Step):
    """Validate against :class:`CleanParams.columns` and normalise; bad rows to dead-letter."""

    NAME: ClassVar[str] = "clean"
    VERSION: ClassVar[str] = "1"
    PARAMS: ClassVar[type[StepParams]] = CleanParams
    params: CleanParams

    @property
    def input_schema(self) -> pa.Schema:
        return pa.schema([(c.name, pa.string()) for c in self.params.columns])

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([(c.name, _ARROW[c.kind]) for c in self.params.columns])

    def process_batch(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        good: list[Record] = []
        dead: list[Record] = []
        checked: set[frozenset[str]] = set()
        for r in records:
            keys = frozenset(r)
            if keys not in checked:
                check_input(keys, self.params)
                checked.add(keys)
            ok, bad = clean_record(r, self.params)
            if ok is not None:
                good.append(ok)
            if bad is not None:
                dead.append(bad)
        return good, dead

    def _out_schema(self, table_schema: pa.Schema) -> pa.Schema:
        declared = {c.name: _ARROW[c.kind] for c in self.params.columns}
        fields = [pa.field(f.name, declared.get(f.name, f.type)) for f in table_schema]
        fields += [pa.field(n, t) for n, t in declared.items() if n not in table_schema.names]
        return pa.schema(fields)

    def run_table(self, table: pa.Table) -> StepResult:
        check_input(table.schema, self.params)
        good, dead = self.process_batch(table.to_pylist())
        out = records_to_table(good, self._out_schema(table.schema))
        dl = records_to_table(dead, dead_letter_schema(table.schema))
        reasons = Counter(f"{d[COLUMN]}: {d[REASON].split(' (')[0]}" for d in dead)
        stats = {
            "rows_in": table.num_rows, "rows_out": out.num_rows, "rows_dead_letter": dl.num_rows,
            "dead_letter_reasons": dict(sorted(reasons.items())),
        }
        if stats["rows_in"] != stats["rows_out"] + stats["rows_dead_letter"]:
            raise RuntimeError(f"clean: counts do not reconcile: {stats}")
        return StepResult(output=out, dead_letter=dl, stats=stats)
