"""Spam model training on the SMS Spam Collection, and de-spam on user records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from headwater.steps.base import InvalidStepParameter
from headwater.steps.despam import DespamParams, DespamStep
from headwater.steps.spam_model import (
    CorpusCountMismatch,
    SpamModel,
    TrainSpamModelStep,
    TrainSpamParams,
    group_split,
    load_sms_spam,
    normalise_text,
)


def test_corpus_counts_match_published_totals() -> None:
    c = load_sms_spam()
    assert c.num_rows == 4837
    assert sum(c["label"].to_pylist()) == 638


def test_uci_file_counts_are_checked(tmp_path: Path) -> None:
    f = tmp_path / "SMSSpamCollection"
    f.write_text("ham\thello\nspam\tWIN now\n")
    with pytest.raises(CorpusCountMismatch, match="5574 / 747"):
        load_sms_spam(f)


def test_duplicates_stay_on_one_side() -> None:
    texts = load_sms_spam()["text"].to_pylist()
    test = group_split(texts, 0.25, 0)
    train_keys = {normalise_text(t) for t, m in zip(texts, test, strict=True) if not m}
    assert not any(normalise_text(t) in train_keys for t, m in zip(texts, test, strict=True) if m)
    assert 0.2 < test.mean() < 0.3


def test_heldout_quality(spam_model: SpamModel) -> None:
    s = spam_model.stats
    assert s["duplicate_texts_across_split"] == 0
    assert s["f1"] > 0.90 and s["precision"] > 0.95 and s["recall"] > 0.88


def test_save_load_roundtrip(spam_model: SpamModel, tmp_path: Path) -> None:
    spam_model.save(tmp_path / "m")
    again = SpamModel.load(tmp_path / "m")
    texts = ["WINNER!! claim your prize now, call 09061701461", "see you at lunch?"]
    assert np.allclose(again.score(texts), spam_model.score(texts))
    assert again.stats == spam_model.stats
    (tmp_path / "m" / "model.pkl").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="does not match the digest"):
        SpamModel.load(tmp_path / "m")


def test_training_step_outputs_artifacts() -> None:
    res = TrainSpamModelStep(TrainSpamParams(seed=1)).run_table(load_sms_spam())
    assert set(res.artifacts) == {"model.pkl", "model.json"}
    assert res.stats["f1"] > 0.85
    assert dict(zip(*res.output.to_pydict().values(), strict=True))["f1"] == res.stats["f1"]


def test_despam_on_generated_users(spam_model: SpamModel, clean_users: pa.Table) -> None:
    res = DespamStep(DespamParams(threshold=0.5), model=spam_model).run_table(clean_users)
    spam = res.side_outputs["spam"]
    s = res.stats
    assert s["rows_in"] == s["rows_out"] + s["rows_spam"] == clean_users.num_rows
    assert all(x >= 0.5 for x in spam["spam_score"].to_pylist())
    assert all(x < 0.5 for x in res.output["spam_score"].to_pylist())
    truth = clean_users["_is_spam"].to_pylist()
    caught = sum(spam["_is_spam"].to_pylist())
    assert caught / sum(truth) > 0.95  # recall on planted spam
    assert sum(res.output["_is_spam"].to_pylist()) / max(1, res.output.num_rows) < 0.01
    assert (spam.num_rows - caught) / (len(truth) - sum(truth)) < 0.02  # false positive rate


def test_despam_batch_equals_table(spam_model: SpamModel, clean_users: pa.Table) -> None:
    step = DespamStep(model=spam_model)
    t = clean_users.slice(0, 500)
    res = step.run_table(t)
    kept, spam = [], []
    for i in range(0, 500, 64):
        k, s = step.process_batch(t.slice(i, 64).to_pylist())
        kept += k
        spam += s
    assert kept == res.output.to_pylist()
    assert spam == res.side_outputs["spam"].to_pylist()


def test_despam_needs_a_model() -> None:
    with pytest.raises(InvalidStepParameter, match="'model'"):
        DespamStep()
    with pytest.raises(InvalidStepParameter, match="'threshold'"):
        DespamParams(threshold=1.5)
