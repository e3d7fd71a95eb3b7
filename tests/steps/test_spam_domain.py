"""De-spam knows its domain (issue 16): the model records a profile of its training text, and
applying it to text far from that profile warns in the stats and, past a limit, fails unless
forced. Held-out e-mail comes from ``sample_mail.generate_mail_bodies`` (no installed package
ships an e-mail ham corpus; see its docstring)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.steps.despam import DespamParams, DespamStep, OutOfDomainText
from headwater.steps.sample_mail import generate_mail_bodies
from headwater.steps.spam_model import (
    DomainCounts,
    SpamModel,
    group_split,
    judge_domain,
    load_sms_spam,
)


@pytest.fixture(scope="module")
def mail() -> pa.Table:
    bodies = generate_mail_bodies(600, seed=3)
    return pa.table({"record_id": [str(i) for i in range(len(bodies))], "signup_text": bodies})


def test_model_records_a_profile_of_its_training_text(spam_model: SpamModel,
                                                       tmp_path: Path) -> None:
    prof = spam_model.profile
    assert prof is not None
    lo, hi = prof["length_band"]
    assert 0 < lo < prof["length_quantiles"]["p50"] < hi < 1000
    assert prof["vocabulary_words"] > 5000
    assert 0.02 < prof["heldout_oov_rate"] < 0.2
    meta = json.loads((spam_model.save(tmp_path / "m") / "model.json").read_text())
    assert meta["stats"]["profile"] == prof
    assert SpamModel.load(tmp_path / "m").profile == prof


def test_email_bodies_fail_the_step(spam_model: SpamModel, mail: pa.Table) -> None:
    with pytest.raises(OutOfDomainText, match="force=True") as err:
        DespamStep(model=spam_model).run_table(mail)
    d = err.value.domain
    assert d["over_limit"] and d["shift_lower"] > 0.5
    assert d["outside_length_share"] > 0.7 and d["oov_rate"] > d["training_oov_rate"]


def test_forced_run_records_the_warning(spam_model: SpamModel, mail: pa.Table) -> None:
    res = DespamStep(DespamParams(force=True), model=spam_model).run_table(mail)
    d = res.stats["domain"]
    assert d["forced"] is True and d["over_limit"] is True
    assert res.stats["warnings"] == [d["warning"]]
    assert "unlike the spam model's training text" in d["warning"]
    # what the model would have done: block a share of legitimate mail
    assert res.stats["rows_spam"] > 0
    json.dumps(res.stats)  # stats stay JSON


def test_limit_is_configurable(spam_model: SpamModel, mail: pa.Table) -> None:
    res = DespamStep(DespamParams(domain_limit=None), model=spam_model).run_table(mail)
    assert "warnings" in res.stats and not res.stats["domain"].get("forced")
    with pytest.raises(ValueError, match="'domain_limit'"):
        DespamParams(domain_warn=0.3, domain_limit=0.2)


def test_in_domain_text_passes_without_warning(spam_model: SpamModel,
                                               clean_users: pa.Table) -> None:
    res = DespamStep(model=spam_model).run_table(clean_users)
    d = res.stats["domain"]
    assert d["checked"] and "warning" not in d and "warnings" not in res.stats
    assert d["shift_lower"] < 0.1
    corpus = load_sms_spam()
    texts = corpus["text"].to_pylist()
    held = [t for t, m in zip(texts, group_split(texts, 0.25, 0), strict=True) if m]
    res = DespamStep(model=spam_model).run_table(pa.table({"signup_text": held}))
    assert "warnings" not in res.stats and res.stats["domain"]["shift"] < 0.05


def test_a_few_long_texts_do_not_fail_a_run(spam_model: SpamModel) -> None:
    table = pa.table({"signup_text": generate_mail_bodies(2, seed=1)})
    res = DespamStep(model=spam_model).run_table(table)
    assert not res.stats["domain"]["over_limit"]  # 2 of 2 outside: too few to be sure


def test_model_without_profile_is_noted(spam_model: SpamModel, clean_users: pa.Table) -> None:
    old = SpamModel(spam_model.pipeline, threshold=0.5,
                    stats={k: v for k, v in spam_model.stats.items() if k != "profile"})
    res = DespamStep(model=old).run_table(clean_users.slice(0, 50))
    assert res.stats["domain"]["checked"] is False
    assert "no training-text profile" in res.stats["warnings"][0]


def test_counts_add_up_across_batches(spam_model: SpamModel, mail: pa.Table) -> None:
    texts = mail["signup_text"].to_pylist()
    whole = spam_model.domain_counts(texts)
    parts = DomainCounts()
    for i in range(0, len(texts), 77):
        parts = parts + spam_model.domain_counts(texts[i:i + 77])
    assert parts == whole
    assert judge_domain(parts, spam_model.profile, warn=0.1, limit=0.5) == judge_domain(
        whole, spam_model.profile, warn=0.1, limit=0.5)
