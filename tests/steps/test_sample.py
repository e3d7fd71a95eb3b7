"""The sample generator: deterministic, with duplicates, spam and invalid rows."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from headwater.steps.base import InvalidStepParameter
from headwater.steps.sample import SAMPLE_SCHEMA, SampleParams, generate_users


def test_same_seed_same_bytes() -> None:
    a = generate_users(n_records=500, seed=5)
    b = generate_users(n_records=500, seed=5)
    assert a.equals(b)
    assert not a.equals(generate_users(n_records=500, seed=6))


def test_mix(raw_users: pa.Table) -> None:
    assert raw_users.schema == SAMPLE_SCHEMA
    assert raw_users.num_rows == 3000
    persons = Counter(raw_users["_true_person_id"].to_pylist())
    assert sum(1 for c in persons.values() if c > 1) > 300  # people sign up repeatedly
    spam = sum(raw_users["_is_spam"].to_pylist())
    assert 0.02 * 3000 < spam < 0.09 * 3000
    invalid = Counter(r for r in raw_users["_invalid_reason"].to_pylist() if r)
    assert set(invalid) == {"email", "phone", "dob", "name"}
    assert len(set(raw_users["record_id"].to_pylist())) == 3000


def test_bad_params() -> None:
    with pytest.raises(InvalidStepParameter, match="'spam_rate'"):
        SampleParams(spam_rate=1.5)
    with pytest.raises(InvalidStepParameter, match="'n_records'"):
        SampleParams(n_records=-1)
