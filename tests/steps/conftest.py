"""Shared fixtures for the step tests: small generated samples and one trained spam model."""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater.steps.clean import CleanStep
from headwater.steps.sample import generate_users
from headwater.steps.spam_model import SpamModel, load_sms_spam, train_spam_model


@pytest.fixture(scope="session")
def raw_users() -> pa.Table:
    return generate_users(n_records=3000, seed=11)


@pytest.fixture(scope="session")
def clean_users(raw_users: pa.Table) -> pa.Table:
    return CleanStep().run_table(raw_users).output


@pytest.fixture(scope="session")
def spam_model() -> SpamModel:
    corpus = load_sms_spam()
    return train_spam_model(corpus["text"].to_pylist(), corpus["label"].to_pylist())
