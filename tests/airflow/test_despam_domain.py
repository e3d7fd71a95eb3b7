"""The Airflow de-spam operator and the model's domain (issue 16): applied to e-mail bodies the
task fails with ``OutOfDomainText``; with ``step_params={"force": True}`` it runs and the output
version's stats carry the domain measurement and the warning. The operator's ``execute`` is
called in-process with a minimal task-instance context (as test_manual_run_context does)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("airflow")


def _context(task_id: str, n: int) -> dict[str, Any]:
    when = datetime(2026, 11, 30, 23, 0, n, tzinfo=UTC)
    ti = SimpleNamespace(dag_id="mail_dag", task_id=task_id, run_id=f"manual__{n}",
                         try_number=1, map_index=-1)
    dag_run = SimpleNamespace(dag_id="mail_dag", run_id=f"manual__{n}", logical_date=when,
                              run_after=when, clear_number=0, conf={})
    return {"ti": ti, "dag_run": dag_run, "logical_date": when}


def test_despam_operator_fails_out_of_domain_unless_forced(
        hw_home: Path, open_catalog: Callable[[], Any], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    import pyarrow as pa
    from headwater_airflow.operators.steps import DespamOperator

    from headwater.steps.despam import OutOfDomainText
    from headwater.steps.sample_mail import generate_mail_bodies
    from headwater.steps.spam_model import load_sms_spam, train_spam_model

    monkeypatch.setenv("HEADWATER_HOME", str(hw_home))
    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT", raising=False)
    corpus = load_sms_spam()
    model = train_spam_model(corpus["text"].to_pylist(), corpus["label"].to_pylist())
    bodies = generate_mail_bodies(200, seed=5)
    with open_catalog() as cat:
        cat.log(model.save(tmp_path / "model"), name="t/model", type="model")
        cat.log(pa.table({"record_id": [str(i) for i in range(len(bodies))],
                          "signup_text": bodies}), name="t/mail", type="table")

    def op(task_id: str, **params: Any) -> DespamOperator:
        return DespamOperator(task_id=task_id, input="t/mail@latest", model="t/model@latest",
                              output=f"t/{task_id}", spam_output=f"t/{task_id}_spam",
                              step_params=params)

    with pytest.raises(OutOfDomainText, match="force=True"):
        op("strict").execute(_context("strict", 1))  # type: ignore[arg-type]
    op("forced", force=True).execute(_context("forced", 2))  # type: ignore[arg-type]
    with open_catalog() as cat:
        stats = cat.get("t/forced@latest").stats
        with pytest.raises(LookupError):  # the failed task wrote nothing
            cat.get("t/strict@latest")
    assert stats["domain"]["forced"] is True and stats["domain"]["over_limit"] is True
    assert "unlike the spam model's training text" in stats["warnings"][0]
