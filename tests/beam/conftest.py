"""Fixtures for the Beam adapter tests: runner option sets, settings per test, sample data and
one trained spam model (logged as a version where a test needs a ref)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from headwater import Settings
from headwater.steps.sample import generate_users
from headwater.steps.spam_model import SpamModel, load_sms_spam, train_spam_model

#: Each runner the transforms must work on (FACTS.md: name FnApiRunner; the plain DirectRunner
#: tries to download Prism). BundleBasedDirectRunner is the one that retries failed bundles.
FNAPI = ["--runner=FnApiRunner"]
MULTI = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
         "--direct_num_workers=2"]
PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]
RETRYING = ["--runner=BundleBasedDirectRunner"]
RUNNERS = {"fnapi": FNAPI, "multiprocess": MULTI, "portable": PORTABLE}


def settings_for(catalog_url: str, tmp_path: Path) -> Settings:
    return Settings(catalog_url=catalog_url, store_url=str(tmp_path / "store"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)


@pytest.fixture(scope="session")
def users() -> pa.Table:
    return generate_users(n_records=1200, seed=5)


@pytest.fixture(scope="session")
def spam_model() -> SpamModel:
    corpus = load_sms_spam()
    return train_spam_model(corpus["text"].to_pylist(), corpus["label"].to_pylist())


@pytest.fixture(scope="session")
def spam_model_dir(spam_model: SpamModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spam_model.save(tmp_path_factory.mktemp("model"))
