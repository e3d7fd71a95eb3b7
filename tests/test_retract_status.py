"""Retract / unretract, and stale status with causes (docs/retract-status.md), on SQLite and
PostgreSQL. Every lineage here is made by real runs through ``Catalog.run``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from headwater.api import Catalog
from headwater.errors import InvalidArgument, RetractedInput

_n = itertools.count()


def _file(tmp_path: Path, content: str) -> Path:
    p = tmp_path / f"f{next(_n)}.txt"
    p.write_text(content)
    return p


def _step(
    cat: Catalog, tmp_path: Path, job: str, inputs: list[str], out: str, *,
    code: str = "v1", params: dict[str, Any] | None = None, allow_retracted: bool = False,
) -> str:
    """One run reading ``inputs`` and writing ``out``; content depends on the inputs read."""
    with cat.run(job, inputs=inputs, code=code, params=params or {},
                 allow_retracted=allow_retracted) as run:
        content = "|".join(v.digest for v in run.inputs) + f"|{code}|{params}"
        run.log_output(_file(tmp_path, content), name=out)
    return run.outputs[0].ref


def _status(cat: Catalog, ref: str) -> tuple[str, list[dict[str, Any]]]:
    (st,) = cat.status(ref)
    return st.status, st.causes


def test_retraction_history_is_kept_and_unretract_appends(catalog: Catalog, tmp_path: Path) -> None:
    v = catalog.log(_file(tmp_path, "corpus"), name="corpus")
    catalog.retract(v.ref, reason="mislabelled", actor="ana")
    assert _status(catalog, v.ref)[0] == "retracted"
    with pytest.raises(InvalidArgument, match="already retracted"):
        catalog.retract(v.ref, reason="again", actor="ana")
    catalog.unretract(v.ref, reason="false alarm", actor="bo")
    assert _status(catalog, v.ref) == ("fresh", [])
    catalog.retract(v.ref, reason="really bad", actor="cy")
    history = catalog.retractions(v.ref)
    assert [(h["action"], h["actor"], h["reason"]) for h in history] == [
        ("retract", "ana", "mislabelled"),
        ("unretract", "bo", "false alarm"),
        ("retract", "cy", "really bad"),
    ]
    with pytest.raises(InvalidArgument, match="reason"):
        catalog.unretract(v.ref, reason="  ")


def test_run_refuses_retracted_input_unless_opted_in(catalog: Catalog, tmp_path: Path) -> None:
    v = catalog.log(_file(tmp_path, "corpus"), name="corpus")
    catalog.retract(v.ref, reason="bad labels", actor="ana")
    with pytest.raises(RetractedInput, match=r"retracted by ana.*bad labels.*allow_retracted"):
        _step(catalog, tmp_path, "clean", ["corpus"], "clean")
    assert catalog.runs(job="clean") == []  # refused before the run was recorded
    out = _step(catalog, tmp_path, "clean", ["corpus"], "clean", allow_retracted=True)
    state, causes = _status(catalog, out)
    assert state == "stale"
    assert causes == [{"cause": "input_retracted", "input": v.ref}]


def test_alias_pointing_at_retracted_version_is_flagged(catalog: Catalog, tmp_path: Path) -> None:
    v1 = catalog.log(_file(tmp_path, "a"), name="corpus")
    catalog.log(_file(tmp_path, "b"), name="corpus")
    catalog.alias(v1.ref, "production")
    catalog.alias("corpus@2", "candidate")
    assert catalog.retracted_aliases("corpus") == set()
    catalog.retract(v1.ref, reason="bad", actor="ana")
    assert catalog.retracted_aliases("corpus") == {"production"}


def test_transitive_retraction_and_fresh_after_rerun(catalog: Catalog, tmp_path: Path) -> None:
    bad = catalog.log(_file(tmp_path, "corpus v1"), name="corpus")
    users = catalog.log(_file(tmp_path, "users"), name="users")
    clean = _step(catalog, tmp_path, "clean", [bad.ref], "clean")
    split = _step(catalog, tmp_path, "split", [clean, users.ref], "split")
    model = _step(catalog, tmp_path, "train", [split], "model")
    other = _step(catalog, tmp_path, "other", [users.ref], "other")
    catalog.retract(bad.ref, reason="mislabelled", actor="ana")

    assert _status(catalog, clean) == ("stale", [{"cause": "input_retracted", "input": bad.ref}])
    assert _status(catalog, split) == (
        "stale", [{"cause": "input_retracted", "input": bad.ref, "via": clean}])
    assert _status(catalog, model) == (
        "stale", [{"cause": "input_retracted", "input": bad.ref, "via": split}])
    assert _status(catalog, other) == ("fresh", [])

    good = catalog.log(_file(tmp_path, "corpus v2"), name="corpus")
    clean2 = _step(catalog, tmp_path, "clean", [good.ref], "clean")
    split2 = _step(catalog, tmp_path, "split", [clean2, users.ref], "split")
    model2 = _step(catalog, tmp_path, "train", [split2], "model")
    for ref in (clean2, split2, model2):
        assert _status(catalog, ref) == ("fresh", [])
    # the namespace view shows each dataset's latest version: all fresh now except the corpus
    by_ref = {s.ref: s.status for s in catalog.status("default")}
    assert by_ref[model2] == "fresh" and by_ref[good.ref] == "fresh"


def test_alias_moved_cause(catalog: Catalog, tmp_path: Path) -> None:
    catalog.log(_file(tmp_path, "a"), name="corpus")
    catalog.alias("corpus@1", "production")
    out = _step(catalog, tmp_path, "clean", ["corpus@production"], "clean")
    down = _step(catalog, tmp_path, "train", [out], "model")
    assert _status(catalog, out) == ("fresh", [])
    catalog.log(_file(tmp_path, "b"), name="corpus")
    catalog.alias("corpus@2", "production")
    assert _status(catalog, out) == ("stale", [
        {"cause": "alias_moved", "input": "default/corpus@1", "selector": "production"}])
    assert _status(catalog, down) == ("stale", [{"cause": "upstream_stale", "input": out}])


def test_newer_input_under_latest_cause(catalog: Catalog, tmp_path: Path) -> None:
    catalog.log(_file(tmp_path, "a"), name="corpus")
    pinned = _step(catalog, tmp_path, "pinned", ["corpus@1"], "pinned")
    floating = _step(catalog, tmp_path, "floating", ["corpus"], "floating")
    catalog.log(_file(tmp_path, "b"), name="corpus")
    assert _status(catalog, pinned) == ("fresh", [])  # an exact number never moves
    assert _status(catalog, floating) == ("stale", [
        {"cause": "newer_input", "input": "default/corpus@1", "selector": "latest"}])


def test_code_and_params_changed_causes(catalog: Catalog, tmp_path: Path) -> None:
    src = catalog.log(_file(tmp_path, "a"), name="corpus")
    a = _step(catalog, tmp_path, "clean", [src.ref], "clean", code="v1", params={"k": 1})
    down = _step(catalog, tmp_path, "train", [a], "model")
    catalog.alias(a, "production")
    b = _step(catalog, tmp_path, "clean", [src.ref], "clean", code="v2", params={"k": 1})
    (flagged,) = catalog.status(a)  # an alias on a stale version is shown with it
    assert (flagged.status, flagged.aliases) == ("stale", ["production"])
    state, causes = _status(catalog, a)
    assert state == "stale" and [c["cause"] for c in causes] == ["code_changed"]
    assert _status(catalog, down) == ("stale", [{"cause": "upstream_stale", "input": a}])
    assert _status(catalog, b) == ("fresh", [])
    c = _step(catalog, tmp_path, "clean", [src.ref], "clean", code="v2", params={"k": 2})
    assert [x["cause"] for x in _status(catalog, b)[1]] == ["params_changed"]
    assert _status(catalog, c) == ("fresh", [])


def test_state_input_does_not_make_a_version_stale(catalog: Catalog, tmp_path: Path) -> None:
    """A step reading its own previous output as state supersedes it: not a cause."""
    src = catalog.log(_file(tmp_path, "a"), name="corpus")
    _step(catalog, tmp_path, "ids", [src.ref], "ids")
    with catalog.run("ids", inputs=[src.ref], code="v1", params={},
                     state_inputs=["ids"]) as run:
        run.log_output(_file(tmp_path, "ids 2"), name="ids")
    out = run.outputs[0].ref
    assert _status(catalog, out) == ("fresh", [])


def test_explicit_parents_carry_retraction(catalog: Catalog, tmp_path: Path) -> None:
    """A version logged with ``parents=`` (no run read it) is downstream too, as in lineage."""
    bad = catalog.log(_file(tmp_path, "corpus"), name="corpus")
    child = catalog.log(_file(tmp_path, "hand-made"), name="curated", parents=[bad.ref])
    down = _step(catalog, tmp_path, "train", [child.ref], "model")
    catalog.retract(bad.ref, reason="bad", actor="ana")
    assert _status(catalog, child.ref) == (
        "stale", [{"cause": "input_retracted", "input": bad.ref}])
    assert _status(catalog, down) == (
        "stale", [{"cause": "input_retracted", "input": bad.ref, "via": child.ref}])
