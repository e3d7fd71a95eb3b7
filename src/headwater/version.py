"""``Version``: what a user holds after logging or resolving — immutable facts plus readers.

The facts are copied out of the ORM row, so a Version outlives its database session and can be
pickled to a Beam worker or pushed through Airflow's XCom (see :meth:`to_dict`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from headwater.errors import HeadwaterError, InvalidArgument

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.api import Catalog
    from headwater.store.manifest import Manifest


@dataclass(frozen=True)
class VersionInfo:
    """The catalog's record of one immutable version."""

    namespace: str
    dataset: str
    type: str
    number: int
    digest: str
    store_url: str
    kind: str
    size: int
    file_count: int
    row_count: int | None
    schema: list[dict[str, Any]] | None
    table_fingerprint: str | None
    stats: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    run_id: str | None
    aliases: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    id: int = 0
    #: False when logging found identical content and returned the existing version
    created: bool = True
    #: immutable human label (``1.0-kaggle``), usable as ``name@label``
    label: str | None = None
    #: current description (Markdown) and properties; edits keep a history
    description: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    #: retracted now (its newest retraction entry is a retract; docs/retract-status.md): every
    #: alias in ``aliases`` then points at a retracted version
    retracted: bool = False

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.dataset}"

    @property
    def ref(self) -> str:
        """The exact, immutable reference: ``ns/name@number``."""
        return f"{self.name}@{self.number}"

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["ref"] = self.ref
        return d


@dataclass(frozen=True)
class Version(VersionInfo):
    """A version plus the means to read it back through the store it was written to."""

    _catalog: Catalog | None = field(default=None, repr=False, compare=False)

    def _cat(self) -> Catalog:
        if self._catalog is None:
            raise HeadwaterError(f"{self.ref} is detached from a catalog; use catalog.get()")
        return self._catalog

    def manifest(self, *, allow_foreign_store: bool = False) -> Manifest:
        return self._cat().manifest_of(self, allow_foreign_store=allow_foreign_store)

    def files(self, *, allow_foreign_store: bool = False) -> Iterator[str]:
        return (e.path for e in self.manifest(allow_foreign_store=allow_foreign_store))

    def checkout(self, dest: str | Path, *, allow_foreign_store: bool = False) -> Path:
        """Write the version's files under ``dest`` (verified). An external version kept
        outside the catalog's store raises ForeignStore unless ``allow_foreign_store``."""
        return self._cat().checkout(self, dest, allow_foreign_store=allow_foreign_store)

    def open(self, relpath: str, *, allow_foreign_store: bool = False) -> BinaryIO:
        """Open one file of the version for reading (verified at end of stream)."""
        return self._cat().open_file(self, relpath, allow_foreign_store=allow_foreign_store)

    def to_arrow(self) -> pa.Table:
        """The rows of a table version as one Arrow table."""
        if self.kind != "table":
            raise InvalidArgument(
                f"{self.ref} is not a table (kind {self.kind!r}); use checkout() or open()"
            )
        return self._cat().read_table(self)

    def info(self) -> VersionInfo:
        return VersionInfo(**{k: v for k, v in self.__dict__.items() if k != "_catalog"})
