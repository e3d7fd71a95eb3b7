"""One dead-letter table for a whole pipeline: ``step, reason, column, record_id, record``.

Why: each step's dead letters are the original record plus ``reason`` and ``column``, so their
columns differ from step to step (clean's carry ``user_id``, despam's do not). A version needs
one schema, so :class:`DeadLetters` flattens the dead-letter outputs of several steps into
uniform rows whose ``record`` is the original record as canonical JSON — nothing is lost, and
``reason`` counts reconcile with each step's ``dead_lettered`` counter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.display import DisplayDataItem

from headwater.canonical import canonical_json
from headwater.errors import InvalidArgument

__all__ = ["DEAD_LETTER_SCHEMA", "DeadLetters", "dead_letter_row"]

DEAD_LETTER_SCHEMA = pa.schema([
    ("step", pa.string()), ("reason", pa.string()), ("column", pa.string()),
    ("record_id", pa.string()), ("record", pa.string()),
])


def dead_letter_row(record: Mapping[str, Any], step: str, id_column: str | None,
                    ) -> dict[str, Any]:
    """The uniform dead-letter row of one step's dead letter.

    Raises:
        InvalidArgument: ``record`` is not a mapping — a runner handed this step's dead-letter
            consumer another output of the step (Beam's DaskRunner does that with tagged
            outputs; ``WriteVersion`` refuses such a pipeline on it when it is built).
    """
    if not isinstance(record, Mapping):
        raise InvalidArgument(
            f"dead letter of step {step!r} is a {type(record).__name__}, not a record (a "
            f"mapping): the runner mixed another output of {step!r} into its dead letters")
    body = {k: v for k, v in record.items() if k not in ("reason", "column")}
    rid = body.get(id_column) if id_column else None
    return {
        "step": step,
        "reason": record.get("reason"),
        "column": record.get("column"),
        "record_id": None if rid is None else str(rid),
        "record": canonical_json(body),
    }


class DeadLetters(beam.PTransform):  # type: ignore[misc]
    """``{step name: dead-letter PCollection}`` → one PCollection of uniform rows
    (write it with ``WriteVersion(..., schema=DEAD_LETTER_SCHEMA)``)."""

    def __init__(self, *, id_column: str | None = "record_id", label: str | None = None) -> None:
        super().__init__(label)
        self.id_column = id_column

    def expand(self, inputs: Mapping[str, beam.PCollection]) -> beam.PCollection:
        parts = [
            pcoll | f"Uniform_{step}" >> beam.Map(dead_letter_row, step, self.id_column)
            for step, pcoll in sorted(inputs.items())
        ]
        return parts | "Flatten" >> beam.Flatten()

    def display_data(self) -> dict[str, Any]:
        return {"id_column": DisplayDataItem(self.id_column or "", label="Record id column")}
