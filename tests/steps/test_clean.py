"""Clean: normalisation, dead-letter reasons, reconciling counts, batch == table."""

from __future__ import annotations

import pyarrow as pa

from headwater.steps.clean import CleanParams, CleanStep, ColumnSpec, clean_record

SPEC = (
    ColumnSpec("id", "id", required=True),
    ColumnSpec("name", "text", required=True),
    ColumnSpec("email", "email"),
    ColumnSpec("phone", "phone"),
    ColumnSpec("born", "date"),
    ColumnSpec("age", "int"),
)


def _clean(**record: object) -> tuple[dict | None, dict | None]:
    base = {"id": "1", "name": "Ann", "email": None, "phone": None, "born": None, "age": None}
    return clean_record({**base, **record}, CleanParams(columns=SPEC, default_region="GB"))


def test_nfkc_trim_and_whitespace() -> None:
    ok, _ = _clean(name="  \uff2a\uff4f\uff48\uff4e\u00a0 Smith  ")  # full-width "John", NBSP
    assert ok is not None and ok["name"] == "John Smith"


def test_email_lower_case() -> None:
    ok, _ = _clean(email="  John.Smith@Example.COM ")
    assert ok is not None and ok["email"] == "john.smith@example.com"


def test_phone_to_e164_with_default_region() -> None:
    assert _clean(phone="020 7946 0018")[0]["phone"] == "+442079460018"  # type: ignore[index]
    assert _clean(phone="+1 (415) 555-2671")[0]["phone"] == "+14155552671"  # type: ignore[index]


def test_dates_to_iso() -> None:
    for raw in ("1985-03-07", "19850307", "03/07/1985", "7 Mar 1985", "Mar 07, 1985"):
        ok, dead = _clean(born=raw)
        assert dead is None, raw
        assert ok is not None and ok["born"] == "1985-03-07", raw


def test_dead_letter_reasons() -> None:
    cases = {
        "email": ({"email": "john@@x.com"}, "invalid_email"),
        "phone": ({"phone": "call me"}, "unparseable_phone"),
        "born": ({"born": "1990-02-30"}, "invalid_date"),
        "name": ({"name": "   "}, "missing_required"),
        "age": ({"age": "old"}, "invalid_int"),
    }
    for column, (patch, reason) in cases.items():
        ok, dead = _clean(**patch)
        assert ok is None
        assert dead is not None and dead["column"] == column and dead["reason"] == reason
        # the dead letter keeps the original values
        for k, v in patch.items():
            assert dead[k] == v


def test_invalid_number_is_reported() -> None:
    _, dead = _clean(phone="+44 20 1234")
    assert dead is not None and dead["reason"] == "invalid_phone"


def test_counts_reconcile_and_ground_truth_caught(raw_users: pa.Table) -> None:
    res = CleanStep().run_table(raw_users)
    s = res.stats
    assert s["rows_in"] == raw_users.num_rows == s["rows_out"] + s["rows_dead_letter"]
    assert res.output.num_rows + res.dead_letter.num_rows == raw_users.num_rows
    assert {"reason", "column"} <= set(res.dead_letter.column_names)
    truth = [r for r in raw_users["_invalid_reason"].to_pylist() if r]
    assert res.dead_letter.num_rows == len(truth)  # every planted defect, nothing else
    assert sorted(res.dead_letter["column"].to_pylist()) == sorted(
        {"email": "email", "phone": "phone", "dob": "dob", "name": "name"}[r] for r in truth)
    phones = [p for p in res.output["phone"].to_pylist() if p]
    assert all(p.startswith("+1") and p[1:].isdigit() for p in phones)


def test_batch_and_table_agree(raw_users: pa.Table) -> None:
    step = CleanStep()
    table = step.run_table(raw_users)
    rows = raw_users.to_pylist()
    good: list[dict] = []
    dead: list[dict] = []
    for i in range(0, len(rows), 137):  # odd-sized bundles, as Beam might send
        g, d = step.process_batch(rows[i:i + 137])
        good += g
        dead += d
    assert good == table.output.to_pylist()
    assert dead == table.dead_letter.to_pylist()
