"""Namespaces, datasets, their versions tables and aliases (moving an alias needs a write token).

Why aliases live here: an alias belongs to a dataset (``prod/users@production``) and moving it is
the one write a person does from the UI; version content itself is immutable.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field, field_validator

from headwater.catalog import listings as queries
from headwater.catalog import repo
from headwater.server.deps import (
    CatalogDep,
    Limit,
    NameP,
    NamespaceP,
    Offset,
    Read,
    Write,
    dataset_name,
    version_ref,
)

router = APIRouter(tags=["datasets"])
AliasP = Annotated[str, Path(min_length=1, max_length=64, description="Alias name")]


class AliasMoveIn(BaseModel):
    version: str = Field(min_length=1, max_length=128,
                         description="Version to point at: a number, alias or digest prefix.")
    actor: str | None = Field(default=None, max_length=256,
                              description="Who moved it (kept in the alias history).")

    @field_validator("version", "actor")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("contains a NUL character (\\u0000), which the catalog cannot store")
        return value


@router.get("/datasets", dependencies=[Read], summary="List datasets (searchable)")
def list_datasets(
    catalog: CatalogDep,
    namespace: Annotated[str | None, Query(max_length=128)] = None,
    search: Annotated[str | None, Query(max_length=256,
                                        description="Substring of ns/name")] = None,
    type: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    with catalog.session() as s:
        total, items = queries.dataset_summaries(s, namespace=namespace, search=search,
                                                 type_=type, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "datasets": items}


@router.get("/datasets/{namespace}/{name}", dependencies=[Read], summary="One dataset")
def get_dataset(catalog: CatalogDep, namespace: NamespaceP, name: NameP) -> dict[str, Any]:
    ds_name = dataset_name(namespace, name)
    with catalog.session() as s:
        ds = repo.get_dataset(s, ds_name)
        out = queries.dataset_summary(s, ds.id)
        out.update({"metadata": ds.meta or {}, "key": (ds.meta or {}).get("key"),
                    "openlineage": queries.openlineage_names(s, ds.id)})
    out["alias_history"] = catalog.alias_history(str(ds_name))[-50:]
    return out


@router.get("/datasets/{namespace}/{name}/versions", dependencies=[Read],
            summary="Versions of a dataset (newest first)")
def list_versions(
    catalog: CatalogDep, namespace: NamespaceP, name: NameP,
    limit: Limit = 500, offset: Offset = 0,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
) -> dict[str, Any]:
    with catalog.session() as s:
        ds = repo.get_dataset(s, dataset_name(namespace, name))
        rows = queries.version_rows(s, ds.id, limit=limit, offset=offset,
                                    newest_first=order == "desc")
        total = repo.count_versions(s, ds.id)
    return {"dataset": f"{namespace}/{name}", "total": total, "versions": rows}


@router.get("/datasets/{namespace}/{name}/aliases", dependencies=[Read],
            summary="Aliases of a dataset and their history")
def list_aliases(catalog: CatalogDep, namespace: NamespaceP, name: NameP) -> dict[str, Any]:
    ds_name = dataset_name(namespace, name)
    with catalog.session() as s:
        ds = repo.get_dataset(s, ds_name)
        summary = queries.dataset_summary(s, ds.id)
    return {"aliases": summary["aliases"], "retracted_aliases": summary["retracted_aliases"],
            "history": catalog.alias_history(str(ds_name))}


@router.put("/datasets/{namespace}/{name}/aliases/{alias}", dependencies=[Write],
            summary="Point an alias at a version (write)")
def move_alias(
    catalog: CatalogDep, namespace: NamespaceP, name: NameP, alias: AliasP,
    body: Annotated[AliasMoveIn, Body()],
) -> dict[str, Any]:
    ref = version_ref(namespace, name, body.version)
    v = catalog.alias(ref, alias, actor=body.actor or "headwater-server")
    return {"alias": alias, "ref": v.ref, "number": v.number, "digest": v.digest}


@router.delete("/datasets/{namespace}/{name}/aliases/{alias}", dependencies=[Write],
               summary="Remove an alias (write)")
def remove_alias(
    catalog: CatalogDep, namespace: NamespaceP, name: NameP, alias: AliasP,
    actor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    ds_name = dataset_name(namespace, name)
    catalog.unalias(str(ds_name), alias, actor=actor or "headwater-server")
    return {"alias": alias, "removed": True}


@router.get("/datasets/{namespace}/{name}/scalars/{report}", dependencies=[Read],
            summary="A scalar report across the dataset's versions")
def scalar_series(catalog: CatalogDep, namespace: NamespaceP, name: NameP,
                  report: Annotated[str, Path(min_length=1, max_length=256)]) -> dict[str, Any]:
    series = catalog.scalar_series(str(dataset_name(namespace, name)), report)
    return {"name": report, "points": [{"version": n, "value": v} for n, v in series]}
