"""``Despam(model_ref=...)`` honours input pins (``--headwater_pins``, ``Settings.pins``) like
``ReadVersion``: a rebuild that pins the model's dataset to a known-good version scores with that
version and records it as the input of what it writes — not whatever ``@latest`` is now."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from headwater_beam import OUTPUT, SPAM, Despam, WriteVersion

from headwater import Catalog, Settings
from headwater.steps.despam import DespamParams, DespamStep
from headwater.steps.spam_model import SpamModel, load_sms_spam
from tests.beam.conftest import FNAPI


def _log_model(cat: Catalog, model: SpamModel) -> str:
    with tempfile.TemporaryDirectory(prefix="hw-test-model-") as tmp:
        model.save(tmp)
        return cat.log(tmp, name="spam_model", type="model").ref


@pytest.mark.parametrize("pinned_by", ["option", "settings"])
def test_despam_model_ref_uses_the_pinned_model_version(
        pinned_by: str, spam_model: SpamModel, tmp_path: Path) -> None:
    base = Settings(catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
                    store_url=str(tmp_path / "store"))
    # @1 is the good model; @2 (the latest) flags everything as spam (threshold 0)
    bad = SpamModel(spam_model.pipeline, threshold=0.0, stats=spam_model.stats)
    with Catalog.open(settings=base) as cat:
        good_ref, bad_ref = _log_model(cat, spam_model), _log_model(cat, bad)
    assert good_ref != bad_ref

    corpus = load_sms_spam().slice(0, 300).to_pylist()
    records = [{"record_id": str(i), "signup_text": r["text"]} for i, r in enumerate(corpus)]
    want = DespamStep(DespamParams(), model=spam_model).run_table(pa.Table.from_pylist(records))
    assert 0 < want.output.num_rows < len(records)  # the good model keeps most, not all

    pins = {"spam_model": good_ref}
    if pinned_by == "option":
        settings = None
        args = [*FNAPI, f"--headwater_catalog_url={base.catalog_url}",
                f"--headwater_store_url={base.store_url}",
                f"--headwater_pins={json.dumps(pins)}"]
    else:
        settings = base.with_(pins={f"{base.namespace}/spam_model": good_ref})
        args = list(FNAPI)
    despam = Despam(model_ref="spam_model@latest", settings=settings, batch_size=64)
    with beam.Pipeline(options=PipelineOptions(args)) as p:
        out = p | beam.Create(records) | despam
        _ = out[OUTPUT] | "Kept" >> WriteVersion("kept", settings=settings)
        _ = out[SPAM] | "Spam" >> WriteVersion("spam", settings=settings)

    assert despam.headwater_inputs == (good_ref,)
    assert despam.headwater_params["model"] == good_ref
    with Catalog.open(settings=base) as cat:
        kept, spam = cat.get("kept@latest"), cat.get("spam@latest")
        assert kept.row_count == want.output.num_rows  # scored by the pinned model
        assert spam.row_count == want.side_outputs["spam"].num_rows
        for version in (kept, spam):
            assert cat.get_run(version.run_id or "").inputs == (good_ref,)


def test_without_a_pin_despam_model_ref_resolves_latest(spam_model: SpamModel,
                                                        tmp_path: Path) -> None:
    settings = Settings(catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
                        store_url=str(tmp_path / "store"))
    with Catalog.open(settings=settings) as cat:
        _log_model(cat, spam_model)
        latest = _log_model(cat, SpamModel(spam_model.pipeline, threshold=0.0,
                                           stats=spam_model.stats))
    despam = Despam(model_ref="spam_model@latest", settings=settings)
    records: list[dict[str, Any]] = [{"record_id": "1", "signup_text": "see you at lunch"}]
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        _ = p | beam.Create(records) | despam
    assert despam.headwater_inputs == (latest,)
