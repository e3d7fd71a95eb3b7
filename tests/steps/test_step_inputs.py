"""Reference steps refuse inputs they cannot handle, before processing a row (issue 16).

One rule for every column a step adds (``base.claim_columns``): it never overwrites or
duplicates an input column — the step fails naming the column and the parameter to change.
A non-text spam column and a missing required column are schema errors, not per-row failures.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater.steps.base import InputSchemaError, InvalidStepParameter, claim_columns
from headwater.steps.clean import CleanParams, CleanStep, ColumnSpec
from headwater.steps.despam import DespamParams, DespamStep
from headwater.steps.spam_model import SpamModel
from headwater.steps.split import SplitParams, SplitStep

TEXTS = ["see you at lunch?", "WINNER!! claim your prize now, call 09061701461",
         "running late, start without me", "ok thanks"]


def _users(**extra: list[object]) -> pa.Table:
    return pa.table({"record_id": ["1", "2", "3", "4"], "name": ["Ann", "Bob", "Cy", "Di"],
                     "signup_text": TEXTS, **extra})


def test_despam_refuses_an_existing_score_column(spam_model: SpamModel) -> None:
    table = DespamStep(model=spam_model).run_table(_users()).output  # already de-spammed
    with pytest.raises(InputSchemaError, match=r"\['spam_score'\].*'score_column'") as err:
        DespamStep(model=spam_model).run_table(table)
    assert err.value.columns == ["spam_score"] and err.value.parameter == "score_column"
    # the per-record (Beam) path refuses the same input
    with pytest.raises(InputSchemaError, match="spam_score"):
        DespamStep(model=spam_model).process_batch(table.to_pylist())


def test_despam_score_column_is_configurable(spam_model: SpamModel) -> None:
    table = _users(spam_score=[0.1, 0.2, 0.3, 0.4])  # the user's own column of that name
    res = DespamStep(DespamParams(score_column="sms_spam_p"), model=spam_model).run_table(table)
    cols = [*table.column_names, "sms_spam_p"]
    out = pa.concat_tables([res.output.select(cols), res.side_outputs["spam"].select(cols)])
    assert out.column_names.count("spam_score") == 1
    assert sorted(out["spam_score"].to_pylist()) == [0.1, 0.2, 0.3, 0.4]  # untouched


def test_despam_refuses_a_user_reason_column(spam_model: SpamModel) -> None:
    table = _users(reason=["a", "b", "c", "d"])
    with pytest.raises(InputSchemaError, match=r"\['reason'\].*rename the input column"):
        DespamStep(model=spam_model).run_table(table)


def test_despam_on_a_non_text_column_names_column_and_type(spam_model: SpamModel) -> None:
    table = _users(age=pa.array([31, 45, 22, 60], pa.int64()))
    with pytest.raises(InputSchemaError, match=r"'age' of type int64.*text") as err:
        DespamStep(DespamParams(text_column="age"), model=spam_model).run_table(table)
    assert err.value.parameter == "text_column" and err.value.columns == ["age"]
    with pytest.raises(InputSchemaError, match=r"'age' whose values are int"):
        DespamStep(DespamParams(text_column="age"), model=spam_model).process_batch(
            table.to_pylist())


def test_despam_accepts_dictionary_and_all_null_text(spam_model: SpamModel) -> None:
    t = _users().set_column(2, "signup_text",
                            pa.array(TEXTS).dictionary_encode())
    assert DespamStep(model=spam_model).run_table(t).stats["rows_in"] == 4
    nulls = _users().set_column(2, "signup_text", pa.nulls(4))
    assert DespamStep(model=spam_model).run_table(nulls).stats["rows_spam"] == 0


def test_clean_keeps_a_user_reason_column_out_of_harm() -> None:
    table = _users(reason=["moved", "new job", None, "other"],
                   email=["ann@example.com", "not-an-email", "cy@example.com", None])
    with pytest.raises(InputSchemaError, match=r"\['reason'\]") as err:
        CleanStep(CleanParams(columns=(ColumnSpec("name", required=True),
                                       ColumnSpec("email", "email")))).run_table(table)
    assert err.value.columns == ["reason"]


def test_clean_missing_required_column_is_a_schema_error() -> None:
    spec = (ColumnSpec("record_id", "id", required=True), ColumnSpec("name", required=True),
            ColumnSpec("dob", "date", required=True), ColumnSpec("email", "email"))
    table = _users()  # no dob, no email (email is optional: fine)
    with pytest.raises(InputSchemaError, match=r"required column\(s\) \['dob'\]") as err:
        CleanStep(CleanParams(columns=spec)).run_table(table)
    assert err.value.columns == ["dob"] and isinstance(err.value, InvalidStepParameter)
    with pytest.raises(InputSchemaError, match="dob"):
        CleanStep(CleanParams(columns=spec)).process_batch(table.to_pylist())
    # a required column that is present but null in a row still dead-letters that row only
    ok = CleanStep(CleanParams(columns=spec[:2])).run_table(
        table.set_column(1, "name", pa.array(["Ann", None, "Cy", "Di"])))
    assert ok.stats["rows_dead_letter"] == 1


def test_split_refuses_an_existing_split_column() -> None:
    table = _users(split=["a", "b", "c", "d"])
    with pytest.raises(InputSchemaError, match=r"'split_column'"):
        SplitStep().run_table(table)
    res = SplitStep(SplitParams(split_column="part")).run_table(table)
    assert res.output.column_names.count("split") == 1
    assert res.output["split"].to_pylist() == ["a", "b", "c", "d"]
    with pytest.raises(InvalidStepParameter, match="'split_column'"):
        SplitParams(split_column="reason")


def test_claim_columns_lists_every_clash() -> None:
    with pytest.raises(InputSchemaError) as err:
        claim_columns("x", ["a", "score", "reason"], {"score": "score_column", "reason": None,
                                                      "column": None})
    assert err.value.columns == ["score", "reason"]
    assert "set 'score_column' to another name" in str(err.value)
    claim_columns("x", pa.schema([("a", pa.string())]), {"b": "b_column"})  # no clash: fine
