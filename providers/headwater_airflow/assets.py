"""``headwater://namespace/dataset`` Assets: each Headwater dataset is one Airflow Asset.

A task that commits a version of a dataset emits an asset event for it whose ``extra`` holds the
version (ref, number, digest, run id), so a DAG scheduled on the Asset runs on every new version
and can read exactly the version that triggered it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from headwater.refs import DatasetName
from headwater_airflow.version_compat import Asset

SCHEME = "headwater"


def asset_uri(dataset: str | DatasetName, *, default_namespace: str = "default") -> str:
    name = dataset if isinstance(dataset, DatasetName) else DatasetName.parse(
        dataset, default_namespace=default_namespace)
    return f"{SCHEME}://{name.namespace}/{name.name}"


def dataset_asset(dataset: str, *, default_namespace: str = "default") -> Asset:
    """The Asset standing for a Headwater dataset (``ns/name`` or ``name``)."""
    name = DatasetName.parse(dataset, default_namespace=default_namespace)
    return Asset(uri=asset_uri(name), name=f"headwater:{name}", group="headwater")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's URI handler for the ``headwater`` scheme: ``headwater://ns/name``."""
    if not uri.netloc:
        raise ValueError("headwater asset URIs need a namespace: headwater://namespace/dataset")
    name = uri.path.strip("/")
    if not name or "/" in name:
        raise ValueError("headwater asset URIs look like headwater://namespace/dataset")
    DatasetName.parse(f"{uri.netloc}/{name}", default_namespace="default")
    return uri._replace(path=f"/{name}", query="", fragment="")


def create_asset(*, namespace: str, dataset: str, **_: Any) -> Asset:
    return dataset_asset(f"{namespace}/{dataset}")


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any = None) -> Any:
    """No OpenLineage dataset for a ``headwater://`` Asset: ``None``.

    The Assets exist for scheduling only. Headwater's operators describe their datasets
    themselves (``get_openlineage_facets_on_*``, with the catalog's names and version facets);
    when a START has no inputs yet, Airflow's openlineage provider falls back to the task's
    outlets, and an Asset name sent as a dataset becomes an empty external dataset beside the
    real one on a Headwater server (``headwater://reference`` / ``users_raw``). Returning
    ``None`` makes the provider skip the Asset."""
    return None
