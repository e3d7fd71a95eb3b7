"""Framework-free reference processing steps: clean, de-spam, ID merge, split (+ sample data).

Why a package of its own: the Airflow operators and Beam transforms wrap these steps, and the
core records their parameters, code fingerprints and stats; the steps themselves import nothing
from the rest of Headwater, nor Airflow or Beam, so they can be tested and reused on their own.
Steps are looked up by name with :func:`get_step` / :func:`make_step`.
"""

from headwater.steps.base import (
    InvalidStepParameter,
    Record,
    Step,
    StepParams,
    StepResult,
    UnknownStep,
    get_step,
    list_steps,
    make_step,
    register_step,
)

__all__ = [
    "InvalidStepParameter",
    "Record",
    "Step",
    "StepParams",
    "StepResult",
    "UnknownStep",
    "get_step",
    "list_steps",
    "make_step",
    "register_step",
]
