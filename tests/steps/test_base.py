"""The step interface: registry, parameter validation, fingerprints."""

from __future__ import annotations

import pickle

import pytest

from headwater.steps import base
from headwater.steps.base import InvalidStepParameter, UnknownStep, get_step, list_steps, make_step
from headwater.steps.clean import CleanParams, CleanStep
from headwater.steps.split import SplitParams, SplitStep


def test_registry_knows_every_step() -> None:
    assert {"clean", "split", "despam", "train_spam_model", "id_merge"} <= set(list_steps())
    assert get_step("clean") is CleanStep


def test_unknown_step_lists_known_ones() -> None:
    with pytest.raises(UnknownStep, match=r"known steps: .*clean"):
        get_step("nope")


def test_make_step_rejects_unknown_parameter() -> None:
    with pytest.raises(InvalidStepParameter, match=r"'ratio' is not a parameter"):
        make_step("split", {"ratio": 0.5})


def test_make_step_builds_from_plain_mapping() -> None:
    step = make_step("split", {"ratios": (0.5, 0.5), "parts": ("a", "b"), "seed": 3})
    assert isinstance(step, SplitStep)
    assert step.params.to_dict()["ratios"] == [0.5, 0.5]


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: SplitParams(ratios=(0.5, 0.4)), "ratios"),
        (lambda: SplitParams(ratios=(0.6, 0.2, 0.2), parts=("a", "a", "b")), "parts"),
        (lambda: CleanParams(default_region="XX"), "default_region"),
        (lambda: CleanParams(min_year=2000, max_year=1990), "min_year"),
    ],
)
def test_bad_parameters_name_the_parameter(make: object, param: str) -> None:
    with pytest.raises(InvalidStepParameter) as err:
        make()  # type: ignore[operator]
    assert err.value.parameter == param
    assert repr(param) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_params_are_frozen() -> None:
    p = SplitParams()
    with pytest.raises(AttributeError):
        p.seed = 1  # type: ignore[misc]


def test_fingerprint_is_stable_and_changes_with_version(monkeypatch: pytest.MonkeyPatch) -> None:
    a = CleanStep().code_fingerprint()
    assert a == CleanStep().code_fingerprint()
    assert a.startswith("blake2b:")
    assert a != SplitStep().code_fingerprint()
    monkeypatch.setattr(CleanStep, "VERSION", "999")
    assert CleanStep().code_fingerprint() != a


def test_fingerprint_changes_with_source(monkeypatch: pytest.MonkeyPatch) -> None:
    a = CleanStep().code_fingerprint()
    real = base._module_source
    monkeypatch.setattr(base, "_module_source",
                        lambda m: real(m) + (b"# edit" if m == "headwater.steps.clean" else b""))
    assert CleanStep().code_fingerprint() != a


def test_steps_pickle() -> None:
    step = CleanStep(CleanParams(default_region="GB"))
    again = pickle.loads(pickle.dumps(step))
    assert again.params == step.params


def test_wrong_params_type_is_rejected() -> None:
    with pytest.raises(InvalidStepParameter, match="must be a CleanParams"):
        CleanStep(SplitParams())  # type: ignore[arg-type]
