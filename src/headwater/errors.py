"""The one error family of Headwater.

Every error a user can cause is a ``HeadwaterError``; each subclass also subclasses the nearest
built-in so callers that already catch ``LookupError`` or ``ValueError`` keep working. Messages
name the dataset, version or object involved and say what to do next: the CLI prints them as a
single line, so they must stand on their own.
"""

from __future__ import annotations


class HeadwaterError(Exception):
    """Base class of every error Headwater raises on purpose."""


class InvalidReference(HeadwaterError, ValueError):
    """A reference (``ns/name@selector``) or a dataset name is malformed."""


class DatasetNotFound(HeadwaterError, LookupError):
    """No dataset of that name exists in the catalog."""


class VersionNotFound(HeadwaterError, LookupError):
    """The dataset exists but the selector matches no version."""


class AmbiguousReference(HeadwaterError, LookupError):
    """A digest prefix matches more than one version."""


class InvalidArgument(HeadwaterError, ValueError):
    """An argument is out of range or of the wrong kind; the message names it."""


class UnsafePath(HeadwaterError, ValueError):
    """A manifest path would escape its checkout directory."""


class ObjectCorrupted(HeadwaterError, OSError):
    """A stored object's bytes do not hash to its digest."""


class ObjectMissing(HeadwaterError, FileNotFoundError):
    """A stored object a manifest refers to is not in the store."""


class ReferenceChanged(HeadwaterError, OSError):
    """Data tracked by reference changed at its source since the version was logged."""


class CatalogUnavailable(HeadwaterError, ConnectionError):
    """The catalog database cannot be reached or opened."""


class CatalogSchemaOutdated(HeadwaterError, RuntimeError):
    """The catalog database is at an older schema revision than this Headwater needs."""


class StoreUnavailable(HeadwaterError, ConnectionError):
    """The object store cannot be reached, or its backend library is not installed."""


class RunFailed(HeadwaterError, RuntimeError):
    """A run could not be committed; nothing it wrote became visible."""


class ForeignStore(HeadwaterError, PermissionError):
    """An external version (recorded from OpenLineage) would be read from a store that is not the
    catalog's: its producer chose both the store and the digest, so the digest proves nothing."""


class IncomparableFingerprints(HeadwaterError, ValueError):
    """Two table fingerprints were made by different algorithms (or one is not a fingerprint):
    equal or unequal strings say nothing about the rows; recompute from the stored data."""


class RetractedInput(HeadwaterError, ValueError):
    """A run was given a retracted version as input; pass ``allow_retracted=True`` to use it
    anyway (docs/retract-status.md)."""
