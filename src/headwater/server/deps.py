"""Small FastAPI dependencies shared by the route modules: the catalog, references, paging.

Why: every route resolves ``{namespace}/{name}/{selector}`` the same way and pages the same way;
keeping that here means one place decides what a malformed reference answers (400, not 500).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from headwater.api import Catalog
from headwater.errors import InvalidArgument
from headwater.refs import DatasetName, VersionRef
from headwater.server.auth import require_read, require_write


def get_catalog(request: Request) -> Catalog:
    holder = request.app.state.catalog
    catalog: Catalog = holder.get()
    return catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
Read = Depends(require_read)
Write = Depends(require_write)

NamespaceP = Annotated[str, Path(min_length=1, max_length=128, description="Namespace")]
NameP = Annotated[str, Path(min_length=1, max_length=128, description="Dataset name")]
SelectorP = Annotated[
    str,
    Path(min_length=1, max_length=128,
         description="`latest`, a version number, an alias or a digest prefix (6+ hex)"),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many items.")]


def dataset_name(namespace: str, name: str) -> DatasetName:
    return DatasetName.parse(f"{namespace}/{name}", default_namespace=namespace)


def version_ref(namespace: str, name: str, selector: str) -> str:
    """``ns/name@selector``, checked now so a malformed one is a 400 naming it."""
    ref = f"{namespace}/{name}@{selector}"
    VersionRef.parse(ref, default_namespace=namespace)
    return ref


def split_ref(text: str) -> str:
    """A full reference given as a query value (``ns/name@7``), checked."""
    if "/" not in text:
        raise InvalidArgument(f"{text!r}: give a full reference such as ns/name@7")
    VersionRef.parse(text, default_namespace="default")
    return text


__all__ = [
    "CatalogDep",
    "Limit",
    "NameP",
    "NamespaceP",
    "Offset",
    "Read",
    "SelectorP",
    "Write",
    "dataset_name",
    "get_catalog",
    "split_ref",
    "version_ref",
]
