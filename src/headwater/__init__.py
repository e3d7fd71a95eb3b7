"""Headwater: dataset versioning and provenance for Apache Airflow and Apache Beam pipelines.

The public API::

    from headwater import Catalog
    cat = Catalog.open()
    v = cat.log("data/users.parquet", name="users_raw")
    with cat.run("despam", inputs=["users_raw@latest"]) as run:
        run.log_output(table, name="users_clean")

The names are loaded on first use (PEP 562): importing a light submodule such as
``headwater.store.walk`` (which the ``headwater`` command does first, to start listing a
directory while SQLAlchemy is still being imported) must not import the whole API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.api import Catalog, DatasetInfo
    from headwater.errors import HeadwaterError
    from headwater.outputs import OutputSpec
    from headwater.run import RunContext, RunInfo
    from headwater.settings import Settings
    from headwater.version import Version, VersionInfo

__version__ = "0.1.0"

_WHERE = {
    "Catalog": "api",
    "DatasetInfo": "api",
    "HeadwaterError": "errors",
    "OutputSpec": "outputs",
    "RunContext": "run",
    "RunInfo": "run",
    "Settings": "settings",
    "Version": "version",
    "VersionInfo": "version",
}

__all__ = [
    "Catalog",
    "DatasetInfo",
    "HeadwaterError",
    "OutputSpec",
    "RunContext",
    "RunInfo",
    "Settings",
    "Version",
    "VersionInfo",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"headwater.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
