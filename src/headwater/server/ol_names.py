"""Catalog names for OpenLineage datasets and jobs that Headwater did not write.

Why a rule at all: the catalog's names are ``namespace/name`` with a small alphabet (letters,
digits, ``_ . -``, at most 128 characters each), while OpenLineage names are URIs and paths
(``s3://bucket`` + ``warehouse/orders/2024``). The rule below is deterministic and readable; the
first mapping chosen for an OpenLineage dataset is stored (table ``ol_datasets``), so it never
changes afterwards, and two OpenLineage datasets that would derive the same name are told apart
by a short hash suffix.

Rule (documented in docs/server.md):

* namespace: the OpenLineage namespace with its scheme separator dropped and every run of other
  characters turned into ``.`` — ``s3://bucket`` → ``s3.bucket``, ``postgres://db:5432`` →
  ``postgres.db.5432``, ``file`` → ``file``;
* name: the OpenLineage name the same way, with ``/`` → ``.`` — ``/data/orders.csv`` →
  ``data.orders.csv``, ``public.orders`` stays;
* a part longer than 128 characters keeps its first 119 and gets ``-`` + 8 hex digits of the
  SHA-256 of the whole original; an empty result becomes ``unnamed``.
"""

from __future__ import annotations

import hashlib
import re

from headwater.refs import NAME_RE

MAX_PART = 128
_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def catalog_part(text: str, *, limit: int = MAX_PART) -> str:
    """One catalog name part (namespace or dataset name) derived from arbitrary text."""
    original = text
    text = _SCHEME.sub(lambda m: m.group(1) + ".", text.strip())
    text = _BAD.sub(".", text.replace("/", "."))
    text = re.sub(r"\.{2,}", ".", text).strip(".-_")
    if not text:
        text = "unnamed"
    if not text[0].isalnum():
        text = "x" + text
    if len(text) > limit or not NAME_RE.match(text):
        text = f"{text[: limit - 9]}-{short_hash(original)}"
    return text


def catalog_dataset_name(ol_namespace: str, ol_name: str) -> tuple[str, str]:
    """``(namespace, name)`` in the catalog for a foreign OpenLineage dataset."""
    return catalog_part(ol_namespace), catalog_part(ol_name)


def disambiguated(name: str, ol_namespace: str, ol_name: str) -> str:
    """``name`` with a suffix unique to the OpenLineage dataset, for a name already taken."""
    suffix = short_hash(ol_namespace, ol_name)
    return f"{name[: MAX_PART - 9]}-{suffix}"


def job_name(ol_name: str, *, limit: int = 256) -> str:
    """A catalog job name (jobs allow any text up to 256 characters)."""
    if len(ol_name) <= limit:
        return ol_name
    return f"{ol_name[: limit - 9]}-{short_hash(ol_name)}"


def dataset_key(ol_namespace: str, ol_name: str) -> str:
    """The fixed-width key of an OpenLineage dataset in ``ol_datasets``."""
    return hashlib.sha256(f"{ol_namespace}\0{ol_name}".encode()).hexdigest()


__all__ = ["catalog_dataset_name", "catalog_part", "dataset_key", "disambiguated", "job_name"]
