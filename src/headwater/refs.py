"""References to datasets and versions: ``[ns/]name[@selector]``.

A selector is ``latest`` (the default), a version number, an alias such as ``production``, or a
hex prefix of a version's root digest (at least 6 characters). Six or more digits are ambiguous
(a huge version number or an all-digit digest prefix): they resolve as a number if that version
exists, else as a digest prefix. Parsing is pure; resolving a
reference against the catalog lives in :mod:`headwater.catalog.resolve`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from headwater.errors import InvalidReference

# ``\Z``, not ``$``: ``$`` also matches before a trailing newline, which let "name\n" through
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}\Z")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,127}\Z")
HEX_RE = re.compile(r"^[0-9a-f]{6,64}\Z")
MIN_DIGEST_PREFIX = 6
LATEST = "latest"


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true of "²" and "٣", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def check_name(value: str, *, what: str = "dataset name") -> str:
    if not NAME_RE.match(value):
        raise InvalidReference(
            f"invalid {what} {value!r}: use letters, digits, '_', '.', '-' "
            "(at most 128 characters, starting with a letter or digit)"
        )
    return value


def check_alias(value: str) -> str:
    if not ALIAS_RE.match(value):
        raise InvalidReference(
            f"invalid alias {value!r}: start with a letter; then letters, digits, '_', '.', '-'"
        )
    if HEX_RE.match(value):
        raise InvalidReference(
            f"alias {value!r} looks like a digest prefix; pick a name that is not all hex digits"
        )
    return value


def check_label(value: str) -> str:
    """A version label (``1.0-kaggle``): refused when it could be read as another selector."""
    if not isinstance(value, str) or not LABEL_RE.match(value):
        raise InvalidReference(
            f"invalid label {value!r}: letters, digits, '_', '.', '+', '-' (at most 128, "
            "starting with a letter or digit)"
        )
    if value == LATEST:
        raise InvalidReference("'latest' cannot be a label: it always means the newest version")
    if _is_number(value):
        raise InvalidReference(f"label {value!r} would read as version number {int(value)}")
    if HEX_RE.match(value):
        raise InvalidReference(f"label {value!r} would read as a digest prefix")
    return value


@dataclass(frozen=True)
class DatasetName:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str, *, default_namespace: str) -> DatasetName:
        if "@" in text:
            raise InvalidReference(f"{text!r} is a reference, not a dataset name (drop '@...')")
        ns, sep, name = text.rpartition("/")
        if not sep:
            ns = default_namespace
        check_name(ns, what="namespace")
        check_name(name)
        return cls(ns, name)


@dataclass(frozen=True)
class VersionRef:
    """A parsed reference. ``kind`` is one of latest, number, alias (an alias or a label),
    digest."""

    dataset: DatasetName
    selector: str = LATEST

    @property
    def kind(self) -> str:
        if self.selector == LATEST:
            return "latest"
        if _is_number(self.selector) and len(self.selector) < MIN_DIGEST_PREFIX:
            return "number"
        if HEX_RE.match(self.selector):
            # all-hex words such as "beef12" are digests: check_alias keeps aliases from them
            return "digest"
        return "alias"

    def __str__(self) -> str:
        return f"{self.dataset}@{self.selector}"

    @classmethod
    def parse(cls, text: str, *, default_namespace: str) -> VersionRef:
        if not isinstance(text, str) or not text.strip():
            raise InvalidReference("empty reference: expected [namespace/]name[@selector]")
        text = text.strip()
        name_part, sep, selector = text.partition("@")
        if sep and not selector:
            raise InvalidReference(
                f"reference {text!r} ends with '@': add latest, a number, "
                "an alias or a digest prefix"
            )
        if "@" in selector:
            raise InvalidReference(f"reference {text!r} has more than one '@'")
        dataset = DatasetName.parse(name_part, default_namespace=default_namespace)
        selector = selector or LATEST
        if _is_number(selector) and len(selector) < MIN_DIGEST_PREFIX:
            if int(selector) < 1:
                raise InvalidReference(f"reference {text!r}: version numbers start at 1")
            return cls(dataset, str(int(selector)))
        if selector != LATEST and not HEX_RE.match(selector) and not LABEL_RE.match(selector):
            raise InvalidReference(
                f"reference {text!r}: selector {selector!r} is not a number, an alias, a label "
                f"or a digest prefix of at least {MIN_DIGEST_PREFIX} hex characters"
            )
        return cls(dataset, selector)


def parse_pins(pins: Mapping[str, str] | str | None, *, default_namespace: str) -> dict[str, str]:
    """Input pins, normalised: ``{"ns/name": "ns/name@N"}``.

    A pin substitutes an exact version for whatever reference a step names for that dataset
    (``spam/corpus@production`` → ``spam/corpus@3``); a rebuild passes them to the engine
    (Airflow DAG-run conf ``headwater_pins``, Beam ``--headwater_pins``, ``HEADWATER_PINS``).
    Accepts a mapping or its JSON text. A pin must name the same dataset it substitutes.
    """
    if pins is None or pins == "":
        return {}
    if isinstance(pins, str):
        try:
            loaded = json.loads(pins)
        except json.JSONDecodeError as exc:
            raise InvalidReference(f"pins are not valid JSON ({exc.msg}): {pins[:80]!r}") from None
        pins = loaded
    if not isinstance(pins, Mapping):
        raise InvalidReference('pins must be a JSON object such as {"ns/name": "ns/name@3"}')
    out: dict[str, str] = {}
    for key, value in pins.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidReference(f"pin {key!r}: {value!r} must map a dataset name to a reference")
        name = DatasetName.parse(key, default_namespace=default_namespace)
        ref = VersionRef.parse(value, default_namespace=default_namespace)
        if ref.dataset != name:
            raise InvalidReference(f"pin {key!r} names another dataset: {value!r}")
        out[str(name)] = str(ref)
    return out


def apply_pins(refs: Sequence[str], pins: Mapping[str, str], *,
               default_namespace: str) -> list[str]:
    """``refs`` with every reference to a pinned dataset replaced by its pin (see
    :func:`parse_pins`); the others unchanged. A malformed ref is left for resolution to
    report."""
    if not pins:
        return list(refs)
    out = []
    for text in refs:
        try:
            name = str(VersionRef.parse(text, default_namespace=default_namespace).dataset)
        except InvalidReference:
            out.append(text)
            continue
        out.append(pins.get(name, text))
    return out
