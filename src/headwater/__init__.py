"""Headwater: dataset versioning and provenance for Apache Airflow and Apache Beam pipelines.

The public API::

    from headwater import Catalog
    cat = Catalog.open()
    v = cat.log("data/users.parquet", name="users_raw")
    with cat.run("despam", inputs=["users_raw@latest"]) as run:
        run.log_output(table, name="users_clean")
"""

from headwater.api import Catalog, DatasetInfo
from headwater.errors import HeadwaterError
from headwater.run import RunContext, RunInfo
from headwater.settings import Settings
from headwater.version import Version, VersionInfo

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "DatasetInfo",
    "HeadwaterError",
    "RunContext",
    "RunInfo",
    "Settings",
    "Version",
    "VersionInfo",
    "__version__",
]
