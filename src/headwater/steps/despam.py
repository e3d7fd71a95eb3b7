"""De-spam: score each record's free text with the trained spam model and set spam aside.

Why: spam sign-ups pollute every downstream dataset (merged users, training splits), but
deleting them silently would make the pipeline unauditable. Records scoring at or above the
threshold go to the ``spam`` side output with their score; the rest continue, also with their
score. ``rows in = rows out + rows spam`` always holds. Scoring is per record, so the Beam path
(:meth:`DespamStep.process_batch` inside a DoFn, the model loaded once per worker in ``setup``)
and the table path give the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from headwater.steps.base import (
    COLUMN,
    REASON,
    InvalidStepParameter,
    Record,
    Step,
    StepParams,
    StepResult,
    dead_letter_schema,
    records_to_table,
    register_step,
    require_columns,
)
from headwater.steps.spam_model import SpamModel

__all__ = ["DespamParams", "DespamStep", "split_spam"]


@dataclass(frozen=True)
class DespamParams(StepParams):
    """``text_column`` to score; ``threshold`` on P(spam) (None: the model's own threshold);
    ``score_column`` added to every record."""

    STEP = "despam"

    text_column: str = "signup_text"
    threshold: float | None = None
    score_column: str = "spam_score"

    def validate(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise self.bad("threshold", f"must be in (0, 1] or None, got {self.threshold!r}")
        if not self.text_column:
            raise self.bad("text_column", "must name the free-text column")


def split_spam(
    records: Sequence[Record], model: SpamModel, params: DespamParams
) -> tuple[list[Record], list[Record]]:
    """``(kept, spam)``: every record gets ``score_column``; spam also gets reason/column."""
    threshold = model.threshold if params.threshold is None else params.threshold
    scores = model.score([r.get(params.text_column) for r in records])
    kept: list[Record] = []
    spam: list[Record] = []
    for r, s in zip(records, scores, strict=True):
        rec = {**r, params.score_column: round(float(s), 6)}
        if s >= threshold:
            spam.append({**rec, REASON: "spam", COLUMN: params.text_column})
        else:
            kept.append(rec)
    return kept, spam


@register_step
class DespamStep(Step):
    """Apply a :class:`SpamModel` (the ``model`` input) to user records."""

    NAME: ClassVar[str] = "despam"
    VERSION: ClassVar[str] = "1"
    PARAMS: ClassVar[type[StepParams]] = DespamParams
    SOURCE_MODULES: ClassVar[tuple[str, ...]] = ("headwater.steps.spam_model",)
    params: DespamParams

    def __init__(self, params: StepParams | None = None, *, model: SpamModel | None = None) -> None:
        super().__init__(params)
        if not isinstance(model, SpamModel):
            raise InvalidStepParameter(self.NAME, "model",
                                       "is required: load one with SpamModel.load(directory)")
        self.model = model

    @property
    def threshold(self) -> float:
        return self.model.threshold if self.params.threshold is None else self.params.threshold

    @property
    def input_schema(self) -> pa.Schema:
        return pa.schema([(self.params.text_column, pa.string())])

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([(self.params.score_column, pa.float64())])

    def process_batch(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """``(kept, spam)`` — spam is a side output, not a dead letter, but Beam can tag it the
        same way."""
        return split_spam(records, self.model, self.params)

    def run_table(self, table: pa.Table) -> StepResult:
        require_columns(self.NAME, table.schema, [self.params.text_column])
        kept, spam = self.process_batch(table.to_pylist())
        schema = table.schema.append(pa.field(self.params.score_column, pa.float64()))
        spam_schema = schema.append(pa.field(REASON, pa.string())).append(
            pa.field(COLUMN, pa.string()))
        out = records_to_table(kept, schema)
        side = records_to_table(spam, spam_schema)
        stats = {
            "rows_in": table.num_rows, "rows_out": out.num_rows, "rows_spam": side.num_rows,
            "rows_dead_letter": 0, "threshold": self.threshold,
            "spam_fraction": round(side.num_rows / table.num_rows, 6) if table.num_rows else 0.0,
            "model": {k: self.model.stats.get(k) for k in ("precision", "recall", "f1")},
        }
        if stats["rows_in"] != stats["rows_out"] + stats["rows_spam"]:
            raise RuntimeError(f"despam: counts do not reconcile: {stats}")
        empty = records_to_table([], dead_letter_schema(table.schema))
        return StepResult(output=out, dead_letter=empty, stats=stats, side_outputs={"spam": side})
