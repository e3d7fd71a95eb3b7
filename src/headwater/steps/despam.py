"""De-spam: score each record's free text with the trained spam model and set spam aside.

Why: spam sign-ups pollute every downstream dataset (merged users, training splits), but
deleting them silently would make the pipeline unauditable. Records scoring at or above the
threshold go to the ``spam`` side output with their score; the rest continue, also with their
score. ``rows in = rows out + rows spam`` always holds. Scoring is per record, so the Beam path
(:meth:`DespamStep.process_batch` inside a DoFn, the model loaded once per worker in ``setup``)
and the table path give the same result.

The step refuses what it cannot handle, before scoring anything: a text column that is not
text, and an input that already has the score column or the ``reason``/``column`` columns the
spam side output adds (:func:`headwater.steps.base.claim_columns`). A model only knows the kind
of text it was trained on: each run measures how far the input lies from the model's training
profile (:func:`headwater.steps.spam_model.judge_domain`), records it under ``domain`` in the
stats (with a ``warnings`` entry past ``domain_warn``) and, past ``domain_limit``, fails with
:class:`OutOfDomainText` unless ``force=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from headwater.steps.base import (
    COLUMN,
    DEAD_LETTER_COLUMNS,
    REASON,
    InvalidStepParameter,
    Record,
    Step,
    StepParams,
    StepResult,
    claim_columns,
    dead_letter_schema,
    records_to_table,
    register_step,
    require_text_column,
    require_text_value,
)
from headwater.steps.spam_model import DomainCounts, SpamModel, judge_domain

__all__ = ["DespamParams", "DespamStep", "OutOfDomainText", "check_domain", "check_record",
           "split_spam"]


class OutOfDomainText(ValueError):
    """The input text lies too far from the spam model's training text to trust its scores."""

    def __init__(self, domain: dict[str, Any]) -> None:
        self.domain = domain
        super().__init__(
            f"step 'despam': {domain.get('warning', 'input text is out of the model domain')}. "
            f"The shift (lower bound {domain['shift_lower']}) is past domain_limit "
            f"{domain['limit']}: train a model on text like this input, raise domain_limit, "
            "or pass force=True to score it anyway")


@dataclass(frozen=True)
class DespamParams(StepParams):
    """``text_column`` to score; ``threshold`` on P(spam) (None: the model's own threshold);
    ``score_column`` added to every record. ``domain_warn`` / ``domain_limit``: how far the
    input may lie from the model's training text (see :func:`judge_domain`) before a warning
    is recorded / the step fails (None: never fails); ``force`` scores it anyway."""

    STEP = "despam"

    text_column: str = "signup_text"
    threshold: float | None = None
    score_column: str = "spam_score"
    domain_warn: float = 0.1
    domain_limit: float | None = 0.5
    force: bool = False

    def validate(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise self.bad("threshold", f"must be in (0, 1] or None, got {self.threshold!r}")
        if not self.text_column:
            raise self.bad("text_column", "must name the free-text column")
        if not self.score_column:
            raise self.bad("score_column", "must name the column the score is written to")
        if self.score_column in DEAD_LETTER_COLUMNS:
            raise self.bad("score_column", f"must not be one of {DEAD_LETTER_COLUMNS}, which "
                           "the spam side output adds")
        if not 0.0 <= self.domain_warn <= 1.0:
            raise self.bad("domain_warn", f"must be in [0, 1], got {self.domain_warn!r}")
        if self.domain_limit is not None and not self.domain_warn <= self.domain_limit <= 1.0:
            raise self.bad("domain_limit", f"must be in [domain_warn, 1] or None, got "
                           f"{self.domain_limit!r}")
        if not isinstance(self.force, bool):
            raise self.bad("force", f"must be true or false, got {self.force!r}")

    def added_columns(self) -> dict[str, str | None]:
        """The columns de-spam adds, with the parameter naming each (None: fixed)."""
        return {self.score_column: "score_column", REASON: None, COLUMN: None}


def check_record(record: Record, params: DespamParams) -> None:
    """Refuse a record the step cannot handle (the per-record form of the table checks)."""
    claim_columns(DespamParams.STEP, record.keys(), params.added_columns())
    require_text_value(DespamParams.STEP, params.text_column, "text_column",
                       record.get(params.text_column))


def check_domain(counts: DomainCounts, model: SpamModel, params: DespamParams,
                 ) -> dict[str, Any]:
    """The ``domain`` stats; raises :class:`OutOfDomainText` past the limit unless forced."""
    domain = judge_domain(counts, model.profile, warn=params.domain_warn,
                          limit=params.domain_limit)
    if domain.get("over_limit"):
        if not params.force:
            raise OutOfDomainText(domain)
        domain["forced"] = True
    return domain


def split_spam(
    records: Sequence[Record], model: SpamModel, params: DespamParams
) -> tuple[list[Record], list[Record]]:
    """``(kept, spam)``: every record gets ``score_column``; spam also gets reason/column.

    Raises:
        InputSchemaError: a record already has a column de-spam adds, or its text is not text.
    """
    for r in records:
        check_record(r, params)
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
        p = self.params
        require_text_column(self.NAME, table.schema, p.text_column, "text_column")
        claim_columns(self.NAME, table.schema, p.added_columns())
        domain = check_domain(
            self.model.domain_counts(table.column(p.text_column).to_pylist()), self.model, p)
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
            "domain": domain,
        }
        if "warning" in domain:
            stats["warnings"] = [domain["warning"]]
        if stats["rows_in"] != stats["rows_out"] + stats["rows_spam"]:
            raise RuntimeError(f"despam: counts do not reconcile: {stats}")
        empty = records_to_table([], dead_letter_schema(table.schema))
        return StepResult(output=out, dead_letter=empty, stats=stats, side_outputs={"spam": side})
