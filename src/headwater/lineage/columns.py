"""Column-level lineage of Headwater's own steps: which input columns each output column comes
from, as the ``fields`` of OpenLineage's ``columnLineage`` dataset facet.

Why one module: the event builder (:mod:`headwater.lineage.facets`) emits the facet for a run of
a known step, and the server (``headwater.server.marquez``) derives the same mapping for runs it
has no event for; both call :func:`field_lineage`. The mapping is computed from the input and
output schemas plus the small table :data:`STEPS` of the columns each step derives; a column an
output shares by name with an input passes through. No step module is imported (they pull in
pyarrow and scikit-learn, and this runs on the delivery path).

A step is recognised by the ``step`` or Airflow ``task_id`` of the run's engine (the reference
DAG's tasks are named after their steps: ``clean``, ``split``, ``despam``, ``id_merge``); a run
of anything else gets no column lineage from us.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALL = "*"


@dataclass(frozen=True)
class Derived:
    """An output column a step computes. ``output`` and each of ``inputs`` are a column name or
    ``(parameter, default)``: the step parameter that names the column. ``ALL``: every column
    of the main (first) input."""

    output: str | tuple[str, str]
    inputs: tuple[str | tuple[str, str | None], ...]
    description: str
    subtype: str = "TRANSFORMATION"


@dataclass(frozen=True)
class StepColumns:
    #: Subtype of a column that keeps its name: IDENTITY (values unchanged) or TRANSFORMATION
    passthrough: str = "IDENTITY"
    passthrough_description: str = "passed through unchanged"
    derived: tuple[Derived, ...] = field(default_factory=tuple)


STEPS: dict[str, StepColumns] = {
    "clean": StepColumns(
        passthrough="TRANSFORMATION",
        passthrough_description="validated and normalised (text trimmed, emails lower-cased, "
                                "phones E.164, dates ISO 8601)",
        derived=(Derived("reason", (ALL,), "why the row was rejected (dead-letter output)"),
                 Derived("column", (ALL,), "the column that failed (dead-letter output)")),
    ),
    "split": StepColumns(derived=(
        Derived(("split_column", "split"), (("key_column", "record_id"), ("label_column", None)),
                "deterministic part assignment from a hash of the key, stratified by label"),
    )),
    "despam": StepColumns(derived=(
        Derived(("score_column", "spam_score"), (("text_column", "signup_text"),),
                "spam probability of the text from the spam model"),
    )),
    "id_merge": StepColumns(derived=(
        Derived(("user_id_column", "user_id"),
                (("id_column", "record_id"), "full_name", "email", "phone", "address", "city",
                 "dob"),
                "person id from record linkage of the identifying columns"),
    )),
}


@dataclass(frozen=True)
class Source:
    """An input dataset as the facet names it, with its column names."""

    namespace: str
    name: str
    columns: tuple[str, ...]


def step_of(engine: Mapping[str, Any] | None) -> str | None:
    """The known step a run ran, from its engine's ``step`` or ``task_id`` (None: unknown)."""
    for key in ("step", "task_id"):
        value = (engine or {}).get(key)
        if isinstance(value, str):
            name = value.rsplit(".", 1)[-1]
            if name in STEPS:
                return name
    return None


def _column(spec: str | tuple[str, Any], params: Mapping[str, Any]) -> str | None:
    if isinstance(spec, str):
        return spec
    param, default = spec
    value = params.get(param, default)
    return value if isinstance(value, str) and value else None


def _input_field(src: Source, column: str, subtype: str, description: str) -> dict[str, Any]:
    return {"namespace": src.namespace, "name": src.name, "field": column,
            "transformations": [{"type": "DIRECT", "subtype": subtype,
                                 "description": description, "masking": False}]}


def field_lineage(step: str, params: Mapping[str, Any], inputs: Sequence[Source],
                  output_columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``columnLineage`` facet's ``fields`` for one output of ``step`` (empty: none known).

    An output column named like an input column comes from the first input that has it; a
    derived column comes from the input columns :data:`STEPS` names (those the inputs have)."""
    spec = STEPS.get(step)
    if spec is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    derived = {name: d for d in spec.derived if (name := _column(d.output, params))}
    for column in output_columns:
        d = derived.get(column)
        if d is not None:
            wanted: list[str] = []
            for item in d.inputs:
                if item == ALL:
                    wanted += [c for src in inputs[:1] for c in src.columns if c not in wanted]
                elif (name := _column(item, params)) and name not in wanted:
                    wanted.append(name)
            found = [_input_field(src, c, d.subtype, d.description)
                     for c in wanted for src in inputs[:1] if c in src.columns]
            if found:
                out[column] = {"inputFields": found, "transformationDescription": d.description,
                               "transformationType": "TRANSFORMATION"}
            continue
        src = next((s for s in inputs if column in s.columns), None)
        if src is not None:
            out[column] = {
                "inputFields": [_input_field(src, column, spec.passthrough,
                                             spec.passthrough_description)],
                "transformationDescription": spec.passthrough_description,
                "transformationType": spec.passthrough,
            }
    return out


__all__ = ["ALL", "STEPS", "Derived", "Source", "StepColumns", "field_lineage", "step_of"]
