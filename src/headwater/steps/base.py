"""The small interface every reference step implements, and the registry of steps by name.

Why: the Airflow operators and the Beam transforms must wrap every step the same way — read a
table (or a bundle of records), run, hand back outputs, a dead-letter table and JSON stats — and
the core's cache key needs a code fingerprint that changes when the step's code changes. Keeping
that contract in one short module (and importing nothing else from Headwater) lets the adapters
and the core evolve separately from the steps.

A step is a plain, pickleable object: its parameters are a frozen dataclass validated on
construction, and it holds no global state, so a Beam ``DoFn`` can carry it to workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pyarrow as pa

from headwater.canonical import canonical_json

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "InputSchemaError",
    "InvalidStepParameter",
    "Record",
    "Step",
    "StepParams",
    "StepResult",
    "UnknownStep",
    "claim_columns",
    "get_step",
    "list_steps",
    "make_step",
    "register_step",
    "require_columns",
    "require_text_column",
    "require_text_value",
]

Record = dict[str, Any]

REASON = "reason"
COLUMN = "column"
#: The columns every dead letter (and the spam side output) adds to the original record.
DEAD_LETTER_COLUMNS = (REASON, COLUMN)


class InvalidStepParameter(ValueError):
    """A step parameter is out of range or of the wrong kind; the message names it."""

    def __init__(self, step: str, parameter: str, problem: str) -> None:
        self.step = step
        self.parameter = parameter
        super().__init__(f"step {step!r}: parameter {parameter!r} {problem}")


class InputSchemaError(InvalidStepParameter):
    """The input does not fit the step: a column it needs is missing or of the wrong type, or a
    column it would add is already there. Raised before any record is processed; ``columns``
    lists the offending input columns."""

    def __init__(self, step: str, parameter: str, problem: str, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        super().__init__(step, parameter, problem)


class UnknownStep(LookupError):
    """No step is registered under that name."""


@dataclass(frozen=True)
class StepParams:
    """Base of every step's parameters: a frozen dataclass that validates itself.

    Subclasses override :meth:`validate` and raise :class:`InvalidStepParameter` through
    :meth:`bad`. ``to_dict`` gives the canonical JSON-able form the cache key is built from.
    """

    STEP: ClassVar[str] = "step"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the values; raise :class:`InvalidStepParameter` naming the bad one."""

    def bad(self, parameter: str, problem: str) -> InvalidStepParameter:
        return InvalidStepParameter(self.STEP, parameter, problem)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _jsonable(dataclasses.asdict(self))
        return out

    def canonical_json(self) -> str:
        return canonical_json(self.to_dict(), stringify=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class StepResult:
    """What one run of a step hands back.

    ``output`` is the main table; ``dead_letter`` holds the records that could not be processed
    (their original columns plus ``reason`` and ``column``); ``side_outputs`` holds records that
    were set aside on purpose (e.g. spam with its score) so nothing is lost; ``artifacts`` holds
    non-tabular outputs (a serialised model) as named bytes; ``stats`` is JSON-serialisable.
    """

    output: pa.Table
    dead_letter: pa.Table
    stats: dict[str, Any]
    side_outputs: dict[str, pa.Table] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)


class Step(ABC):
    """One processing step. Subclasses set ``NAME``, ``VERSION`` and ``PARAMS``.

    ``VERSION`` is bumped by hand when the step's behaviour changes in a way its source does not
    show (e.g. a data file it ships). ``SOURCE_MODULES`` lists every module whose source affects
    the output; the fingerprint hashes them all.
    """

    NAME: ClassVar[str]
    VERSION: ClassVar[str]
    PARAMS: ClassVar[type[StepParams]]
    SOURCE_MODULES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: StepParams | None = None) -> None:
        if params is None:
            params = self.PARAMS()
        if not isinstance(params, self.PARAMS):
            raise InvalidStepParameter(
                self.NAME, "params",
                f"must be a {self.PARAMS.__name__}, not {type(params).__name__}",
            )
        self.params = params

    # --- description -------------------------------------------------------------------
    @property
    @abstractmethod
    def input_schema(self) -> pa.Schema:
        """The columns the step needs (extra columns pass through where it makes sense)."""

    @property
    @abstractmethod
    def output_schema(self) -> pa.Schema:
        """The columns the step adds or guarantees on its main output."""

    def code_fingerprint(self) -> str:
        """Digest of the step's name, ``VERSION`` and the source of its modules.

        Any edit to those modules changes it, so the core's cache key notices code changes.
        """
        return self.class_fingerprint()

    @classmethod
    def class_fingerprint(cls) -> str:
        """:meth:`code_fingerprint` without an instance (it depends on the class only)."""
        modules = (cls.__module__, "headwater.steps.base", *cls.SOURCE_MODULES)
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{cls.NAME}\0{cls.VERSION}\0".encode())
        for name in sorted(set(modules)):
            h.update(name.encode() + b"\0")
            h.update(_module_source(name))
        return "blake2b:" + h.hexdigest()

    # --- running -------------------------------------------------------------------------
    @abstractmethod
    def run_table(self, table: pa.Table) -> StepResult:
        """Run on a whole Arrow table (the Airflow path)."""

    @abstractmethod
    def process_batch(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """Run on a bundle of records (the Beam path): ``(good records, dead letters)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


def _module_source(module: str) -> bytes:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise UnknownStep(f"cannot find the source of module {module!r} to fingerprint it")
    return Path(spec.origin).read_bytes()


# --- registry ----------------------------------------------------------------------------
_REGISTRY: dict[str, type[Step]] = {}
_BUILTINS = (
    "headwater.steps.clean",
    "headwater.steps.split",
    "headwater.steps.despam",
    "headwater.steps.spam_model",
    "headwater.steps.id_merge",
)

S = TypeVar("S", bound=type[Step])


def register_step(cls: S) -> S:
    """Class decorator: make a step findable by its ``NAME``."""
    existing = _REGISTRY.get(cls.NAME)
    if existing is not None and existing is not cls:
        raise ValueError(f"step name {cls.NAME!r} is already taken by {existing.__qualname__}")
    _REGISTRY[cls.NAME] = cls
    return cls


def _load_builtins() -> None:
    for module in _BUILTINS:
        importlib.import_module(module)


def get_step(name: str) -> type[Step]:
    """The step class registered under ``name``.

    Raises:
        UnknownStep: no such step; the message lists the known ones.
    """
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_steps())
        raise UnknownStep(f"no step named {name!r}; known steps: {known}") from None


def list_steps() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def make_step(name: str, params: Mapping[str, Any] | None = None, **extra: Any) -> Step:
    """Build a step from its name and a plain mapping of parameters (e.g. from a DAG file).

    Unknown parameter names raise :class:`InvalidStepParameter` naming them.
    """
    cls = get_step(name)
    fields = {f.name for f in dataclasses.fields(cls.PARAMS)}
    given = dict(params or {})
    for key in given:
        if key not in fields:
            raise InvalidStepParameter(name, key, f"is not a parameter (known: {sorted(fields)})")
    return cls(cls.PARAMS(**given), **extra)


# --- helpers shared by the steps ---------------------------------------------------------
def records_to_table(
    records: Iterable[Record], schema: pa.Schema | None = None, *, like: pa.Schema | None = None
) -> pa.Table:
    """Build a table from records, keeping ``like``'s column order and types where present."""
    rows = list(records)
    if schema is not None:
        return pa.Table.from_pylist(rows, schema=schema)
    if like is not None:
        names = list(like.names)
        extra: list[str] = []
        for r in rows:
            for k in r:
                if k not in like.names and k not in extra:
                    extra.append(k)
        fields = [like.field(n) for n in names]
        if rows:
            probe = pa.Table.from_pylist(rows)
            fields += [probe.schema.field(n) for n in extra]
        else:
            fields += [pa.field(n, pa.string()) for n in extra]
        return pa.Table.from_pylist(rows, schema=pa.schema(fields))
    return pa.Table.from_pylist(rows)


def dead_letter_schema(like: pa.Schema) -> pa.Schema:
    """The dead-letter schema: the input columns plus ``reason`` and ``column``."""
    fields = [f for f in like if f.name not in (REASON, COLUMN)]
    return pa.schema([*fields, pa.field(REASON, pa.string()), pa.field(COLUMN, pa.string())])


def require_columns(step: str, schema: pa.Schema, columns: Iterable[str],
                    parameter: str = "columns") -> None:
    """Raise a clear :class:`InputSchemaError` if a configured column is missing."""
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise InputSchemaError(
            step, parameter,
            f"refer to {missing} which the input does not have ({schema.names})", missing)


def claim_columns(step: str, names: pa.Schema | Iterable[str],
                  added: Mapping[str, str | None]) -> None:
    """The one rule for the columns a step adds: it never overwrites or duplicates an input
    column.

    ``added`` maps each column the step will add (to its output, its dead letters or a side
    output) to the parameter that names it, or to None for the fixed dead-letter columns
    (:data:`DEAD_LETTER_COLUMNS`). If the input (a schema, or the keys of one record) already
    has any of them, raise :class:`InputSchemaError` naming each column and what to change:
    the parameter, or (for a fixed name) the input column. The Beam path calls it on every
    record's keys, so both paths refuse the same inputs.
    """
    have = set(names.names if isinstance(names, pa.Schema) else names)
    clash = [c for c in added if c in have]
    if not clash:
        return
    fixes = [f"set {added[c]!r} to another name" if added[c] else
             f"rename the input column {c!r} (reserved for dead letters)" for c in clash]
    params = sorted({added[c] or "input" for c in clash})
    raise InputSchemaError(
        step, params[0] if len(params) == 1 else ", ".join(params),
        f"would add column(s) {clash} which the input already has; steps never overwrite input "
        f"columns: {'; '.join(fixes)}", clash)


def _is_text_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text_type(t.value_type)
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t) or pa.types.is_null(t))


def require_text_column(step: str, schema: pa.Schema, column: str, parameter: str) -> None:
    """Raise :class:`InputSchemaError` unless ``column`` exists and holds text (string types,
    or all-null)."""
    require_columns(step, schema, [column], parameter)
    t = schema.field(column).type
    if not _is_text_type(t):
        raise InputSchemaError(
            step, parameter, f"names column {column!r} of type {t}; it must be a text (string) "
            "column", [column])


def require_text_value(step: str, column: str, parameter: str, value: Any) -> None:
    """The per-record form of :func:`require_text_column` (Beam): None or ``str`` pass."""
    if value is not None and not isinstance(value, str):
        raise InputSchemaError(
            step, parameter, f"names column {column!r} whose values are "
            f"{type(value).__name__} (e.g. {value!r:.40}); it must be a text (string) column",
            [column])

