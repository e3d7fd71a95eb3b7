"""The Beam transforms refuse what the table path refuses (issue 16): a column the step would
add already in the input, a non-text spam column, a missing required column, and text far from
the spam model's training profile — the pipeline fails naming the problem, instead of
dead-lettering every record or writing scores nobody should trust."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from headwater_beam import DEAD_LETTER, OUTPUT, Clean, Despam, Split
from headwater_beam.steps import DOMAIN, SPAM

from headwater.steps.base import InputSchemaError
from headwater.steps.clean import CleanParams, ColumnSpec
from headwater.steps.despam import DespamParams, DespamStep
from headwater.steps.sample_mail import generate_mail_bodies
from headwater.steps.split import SplitParams, SplitStep
from tests.beam.conftest import FNAPI


def _run(records: list[dict[str, Any]], transform: beam.PTransform) -> None:
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        _ = p | beam.Create(records) | transform


def test_despam_refuses_an_existing_score_column(spam_model: Any) -> None:
    records = [{"record_id": "1", "signup_text": "see you at lunch", "spam_score": 0.3}]
    with pytest.raises(Exception, match=r"\['spam_score'\].*'score_column'"):
        _run(records, Despam(model=spam_model))


def test_despam_refuses_a_user_reason_column(spam_model: Any) -> None:
    # spam and dead letters add reason/column: a user column of that name is never clobbered
    records = [{"record_id": "1", "signup_text": "see you at lunch", "reason": "mine"}]
    with pytest.raises(Exception, match=r"rename the input column 'reason'"):
        _run(records, Despam(model=spam_model))


def test_despam_non_text_column_fails_naming_it(spam_model: Any) -> None:
    records = [{"record_id": str(i), "age": 30 + i} for i in range(5)]
    with pytest.raises(Exception, match=r"'age' whose values are int"):
        _run(records, Despam(DespamParams(text_column="age"), model=spam_model))


def test_clean_missing_required_column_fails_instead_of_dead_lettering_all() -> None:
    spec = (ColumnSpec("record_id", "id", required=True), ColumnSpec("dob", "date", required=True))
    records = [{"record_id": str(i), "name": "Ann"} for i in range(5)]
    with pytest.raises(Exception, match=r"required column\(s\) \['dob'\]"):
        _run(records, Clean(CleanParams(columns=spec)))


def test_clean_refuses_a_user_reason_column() -> None:
    records = [{"record_id": "1", "name": "Ann", "reason": "moved"}]
    spec = (ColumnSpec("name", required=True),)
    with pytest.raises(Exception, match=r"\['reason'\]"):
        _run(records, Clean(CleanParams(columns=spec)))


def test_despam_out_of_domain_fails_unless_forced(spam_model: Any) -> None:
    bodies = generate_mail_bodies(300, seed=3)
    records = [{"record_id": str(i), "signup_text": b} for i, b in enumerate(bodies)]
    with pytest.raises(Exception, match="force=True"):
        _run(records, Despam(model=spam_model, batch_size=64))
    table = DespamStep(DespamParams(force=True), model=spam_model).run_table(
        pa.Table.from_pylist(records))
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        out = p | beam.Create(records) | Despam(DespamParams(force=True), model=spam_model,
                                                batch_size=64)
        assert_that(out[DOMAIN], equal_to([table.stats["domain"]]), label="Domain")
        assert_that(out[OUTPUT] | beam.Map(lambda r: r["record_id"]),
                    equal_to(table.output["record_id"].to_pylist()), label="Kept")
        assert_that(out[SPAM] | beam.Map(lambda r: r["record_id"]),
                    equal_to(table.side_outputs["spam"]["record_id"].to_pylist()), label="Spam")
        assert_that(out[DEAD_LETTER], equal_to([]), label="NoDead")


# -- Split: the same column rule (base.claim_columns) as the table path ------------------------
@pytest.mark.parametrize(("records", "params", "match"), [
    # the split column is already a user column: refused, never overwritten
    ([{"record_id": str(i), "split": "mine"} for i in range(5)], SplitParams(),
     r"\['split'\].*'split_column'"),
    # a user column named like a dead letter's reason: refused even without a dead letter
    ([{"record_id": str(i), "reason": "moved"} for i in range(5)], SplitParams(),
     r"rename the input column 'reason'"),
    ([{"record_id": "1", "part": "x"}], SplitParams(split_column="part"),
     r"\['part'\].*'split_column'"),
])
def test_split_refuses_a_column_it_would_add(records: list[dict[str, Any]], params: SplitParams,
                                             match: str) -> None:
    table = pa.Table.from_pylist(records)
    with pytest.raises(InputSchemaError, match=match) as table_error:  # the table path
        SplitStep(params).run_table(table)
    with pytest.raises(Exception, match=match) as beam_error:
        _run(records, Split(params, buckets=4))
    assert str(table_error.value) in str(beam_error.value)  # the same one-line error


def test_split_with_a_free_split_column_still_runs() -> None:
    records = [{"record_id": str(i), "part": "x"} for i in range(10)]
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        out = p | beam.Create(records) | Split(SplitParams(ratios=(0.5, 0.5), parts=("a", "b")))
        assert_that(out[OUTPUT] | beam.Map(lambda r: (r["part"], r["split"] in ("a", "b"))),
                    equal_to([("x", True)] * 10))
