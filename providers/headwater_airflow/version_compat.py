"""Every Airflow-version branch of the provider lives here (Airflow 3.x, ``airflow.sdk``)."""

from __future__ import annotations

from airflow.sdk import Asset, BaseHook, BaseOperator, Context, Metadata
from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory

try:
    from airflow.sdk.exceptions import AirflowNotFoundException
except ImportError:  # pragma: no cover - older task SDKs
    from airflow.exceptions import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        AirflowNotFoundException,
    )

__all__ = [
    "AirflowNotFoundException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "Context",
    "DecoratedOperator",
    "Metadata",
    "task_decorator_factory",
]
