"""Input pins: the one mechanism a rebuild uses to substitute a version for a step's input."""

from __future__ import annotations

import pytest

from headwater import Catalog
from headwater.errors import InvalidArgument, InvalidReference
from headwater.refs import apply_pins, parse_pins
from headwater.settings import Settings


def test_parse_pins_normalises_names_and_refuses_a_pin_for_another_dataset() -> None:
    assert parse_pins('{"corpus": "corpus@3"}', default_namespace="spam") == {
        "spam/corpus": "spam/corpus@3"}
    with pytest.raises(InvalidReference, match="another dataset"):
        parse_pins({"spam/corpus": "spam/other@3"}, default_namespace="d")
    with pytest.raises(InvalidReference, match="not valid JSON"):
        parse_pins("{", default_namespace="d")
    assert apply_pins(["spam/corpus@production", "users@2"], {"spam/corpus": "spam/corpus@3"},
                      default_namespace="d") == ["spam/corpus@3", "users@2"]


def test_a_pinned_run_reads_and_records_the_pinned_version(tmp_path) -> None:
    cat = Catalog.open(f"sqlite:///{tmp_path}/c.db", store_url=str(tmp_path / "s"))
    (tmp_path / "a.txt").write_text("bad")
    cat.log(tmp_path / "a.txt", name="spam/corpus")
    cat.alias("spam/corpus@1", "production")
    (tmp_path / "a.txt").write_text("good")
    cat.log(tmp_path / "a.txt", name="spam/corpus")
    with cat.run("train", inputs=["spam/corpus@production"],
                 pins={"spam/corpus": "spam/corpus@2"}) as run:
        assert [v.ref for v in run.inputs] == ["spam/corpus@2"]
    assert run.input_refs == ["spam/corpus@2"]


def test_pins_come_from_the_environment_and_a_bad_value_is_one_clear_error(tmp_path) -> None:
    env = {"HEADWATER_HOME": str(tmp_path), "HEADWATER_PINS": '{"a/b": "a/b@4"}'}
    assert Settings.resolve(environ=env).pins == {"a/b": "a/b@4"}
    with pytest.raises(InvalidArgument, match="HEADWATER_PINS"):
        Settings.resolve(environ={**env, "HEADWATER_PINS": '{"a/b": "a/c@4"}'})
