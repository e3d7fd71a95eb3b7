"""What a step says about a dataset it writes: one small frozen value, built by every adapter.

Why: the same keyword list (name, type, key, metadata, stats, parents, label, description,
properties) was written out in ``Catalog.log``, ``RunContext.log_output``, ``log_objects``, the
run's internal ``_add``, Airflow's ``Output`` and Beam's ``WriteVersion``; each copy dropped a
field or two (issue 14, section 9). Adapters now build an :class:`OutputSpec` (Airflow's
``Output`` *is* this class) and hand it to ``RunContext.log_spec`` / ``log_objects_spec``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from headwater.errors import InvalidArgument
from headwater.version import VersionInfo

__all__ = ["OutputSpec"]


@dataclass(frozen=True)
class OutputSpec:
    """A dataset a step writes: ``name`` (``ns/name``) and what its new version records.

    ``type``: the dataset type (``table``, ``model``…; None lets the content decide); ``key``:
    key columns for row diffs; ``metadata``/``stats``: recorded with the version; ``parents``:
    explicit parent versions; ``label``: an immutable human name for the new version;
    ``description``/``properties``: an editable annotation.
    """

    name: str
    _: KW_ONLY
    type: str | None = None
    key: Sequence[str] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    parents: Sequence[str | VersionInfo] = ()
    label: str | None = None
    description: str | None = None
    properties: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgument(f"an output needs a dataset name, not {self.name!r}")
        if isinstance(self.key, str):
            raise InvalidArgument(f"output {self.name}: key is a list of columns, not a string")
        # frozen: normalise once so that equal specs compare equal whatever sequence was given
        object.__setattr__(self, "key", tuple(self.key) if self.key is not None else None)
        object.__setattr__(self, "parents", tuple(self.parents))

    @classmethod
    def of(cls, spec: str | Mapping[str, Any] | OutputSpec) -> OutputSpec:
        """An output spec from a name, a dict with ``name`` (e.g. from a DAG's params), or a spec.

        Raises :class:`InvalidArgument` for anything else or an unknown field.
        """
        if isinstance(spec, OutputSpec):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Mapping) and "name" in spec:
            values = dict(spec)
            try:
                return cls(values.pop("name"), **values)
            except TypeError as exc:
                raise InvalidArgument(f"output spec {spec!r}: {exc}") from exc
        raise InvalidArgument(f"output spec {spec!r}: give a name, a dict with 'name', or Output")
