"""``@versioned_task`` (also ``@task.headwater``): a function as a versioned Headwater step.

The function's parameters are filled at run time — resolved inputs, step parameters and ``run`` —
not at DAG-definition time, so calling the decorated function in a DAG takes only operator
overrides (``task_id=``, ``step_params=``, ``inputs=``…) and returns the task's XComArg.

    @versioned_task(inputs=["users_raw@latest"], outputs=["users_clean"])
    def clean(users_raw, run):
        return users_raw.filter(...)

    with DAG(...):
        clean() >> report()
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from headwater_airflow.operators.versioned import VersionedStepOperator


def versioned_task(python_callable: Callable[..., Any] | None = None, **defaults: Any) -> Any:
    """Decorate a function so that calling it in a DAG adds a :class:`VersionedStepOperator`."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def add_task(**overrides: Any) -> Any:
            kwargs = {**defaults, **overrides}
            task_id = kwargs.pop("task_id", fn.__name__)
            op = VersionedStepOperator(task_id=task_id, python_callable=fn, **kwargs)
            return op.output

        add_task.function = fn  # type: ignore[attr-defined]
        return add_task

    return wrap(python_callable) if python_callable is not None else wrap
