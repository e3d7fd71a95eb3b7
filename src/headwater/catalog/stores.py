"""Which store a version's objects are in, as the catalog records it.

A SQLite catalog file has an *own store*: the ``store`` directory beside it (``~/.headwater/
catalog.db`` and ``~/.headwater/store`` by default). Versions and reports kept there record
:data:`OWN_STORE` (``"."``) instead of the absolute path, resolved when read against wherever the
catalog file is now: copying or moving ``HEADWATER_HOME`` keeps every version readable. Any other
store (S3, GCS, a directory elsewhere, every store of a PostgreSQL catalog) is recorded by its
URL; when such a directory moved, :func:`relocate` rewrites the rows that name it (``headwater
store relocate OLD NEW``).

Every write of ``store_url`` goes through :func:`recorded`, every read through :func:`resolved`,
and every query by store through :func:`in_store`, so no comparison misses the rows that say
``"."`` (``gc`` would take their objects for garbage).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

#: ``store_url`` of a version kept in its catalog's own store.
OWN_STORE = "."


def own_store(catalog_url: str) -> str | None:
    """The ``store`` directory beside a SQLite catalog file (None: no file, no own store)."""
    try:
        url = make_url(catalog_url)
    except ArgumentError:
        return None
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None
    return os.path.join(os.path.dirname(os.path.abspath(os.path.expanduser(database))), "store")


def _local_path(store_url: str) -> str | None:
    if store_url.startswith("file://"):
        store_url = store_url.removeprefix("file://")
    elif "://" in store_url:
        return None
    return os.path.abspath(os.path.expanduser(store_url)).rstrip("/") or "/"


def recorded(store_url: str, catalog_url: str) -> str:
    """What the catalog records for objects kept in ``store_url``."""
    own = own_store(catalog_url)
    return OWN_STORE if own is not None and _local_path(store_url) == own else store_url


def resolved(stored: str, catalog_url: str) -> str:
    """The store a recorded ``store_url`` names, for this catalog as it is now."""
    if stored != OWN_STORE:
        return stored
    own = own_store(catalog_url)
    if own is None:  # only a SQLite catalog writes "."; a dump loaded elsewhere lost its place
        raise ValueError(f"store_url {OWN_STORE!r} recorded in a catalog with no own store")
    return own


def in_store(column: Any, store_url: str, catalog_url: str) -> ColumnElement[bool]:
    """``column`` names ``store_url``, in whichever form it was recorded."""
    forms = {store_url, recorded(store_url, catalog_url)}
    return or_(*(column == form for form in sorted(forms)))


def relocate(session: Session, old: str, new: str, catalog_url: str) -> dict[str, int]:
    """Point every version and report recorded in store ``old`` at ``new``; rows per table."""
    from headwater.catalog.models import Report, Version

    counts: dict[str, int] = {}
    target = recorded(new, catalog_url)
    for name, model in (("versions", Version), ("reports", Report)):
        result = session.execute(
            update(model).where(in_store(model.store_url, old, catalog_url))
            .values(store_url=target).execution_options(synchronize_session=False)
        )
        counts[name] = int(getattr(result, "rowcount", 0) or 0)
    return counts


def catalog_url_of(session: Session) -> str:
    """The URL of the catalog ``session`` is bound to (for :func:`recorded`/:func:`resolved`
    where only a session is at hand)."""
    return session.get_bind().engine.url.render_as_string(hide_password=False)
