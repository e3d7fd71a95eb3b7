"""Blocking: the keys under which two records must meet to be compared at all.

Why: comparing every pair is quadratic (5 x 10^11 pairs for 1M records). Each record instead
emits one key per blocking *rule*; two records are compared only if they share a key. A rule is
a ``+``-joined list of parts, each a role with an optional transform::

    soundex(surname)+year(dob)        nysiis(surname)+first1(given_name)+city
    metaphone(given_name)+monthday(dob)   local(email)   phone   sn:first2(surname)

Transforms: ``firstN`` (first N characters), ``soundex``/``metaphone``/``nysiis`` (jellyfish
phonetic codes), ``year``/``month``/``day``/``monthday`` (parts of a birth date), ``local`` (an
e-mail's local part without dots or ``+tag``); a bare role is the exact value. A record gets a
rule's key only if every part is non-empty. The default rules are chosen so that every field is
absent from at least one rule: one typo in any one field (a surname, the birth year, the day)
never loses the pair. A block larger than ``max_block_size`` (a common surname in a common
year) is not compared all-pairs: its members are sorted and each is compared with its
``window - 1`` next neighbours (the sorted-neighbourhood method), so the work stays near-linear;
an ``sn:`` rule always works that way (sorted neighbourhood over a coarse key).

Everything here is a pure function of its arguments, for Beam: ``records → FlatMap(keys) →
GroupByKey → FlatMap(pairs_in_block)``; the table path computes the same keys column-wise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import jellyfish

from headwater.steps.linkage.normalize import NormRecord

__all__ = ["BlockingRule", "default_rules", "email_key", "pairs_in_block", "parse_rule",
           "rule_keys", "sort_key", "transform"]

Id = TypeVar("Id", str, int)
_PART = re.compile(r"^(?:([a-z]+)(\d*)\()?([a-z_0-9]+)\)?$")


def email_key(email: str) -> str:
    """Local part without dots or ``+tag`` (``John.Smith+x@…`` ≡ ``johnsmith``)."""
    local = email.split("@", 1)[0].split("+", 1)[0]
    return local.replace(".", "").replace("_", "")


def _dob_part(lo: int, hi: int) -> Callable[[str], str]:
    def f(v: str) -> str:
        p = v[lo:hi]
        return "" if not p or set(p) == {"0"} else p
    return f


def _monthday(v: str) -> str:
    m, d = v[4:6], v[6:8]
    return "" if m in ("", "00") or d in ("", "00") else m + d


def _local(v: str) -> str:
    k = email_key(v)
    return k if len(k) >= 4 else ""


def _phonetic(f: Callable[[str], str]) -> Callable[[str], str]:
    def g(v: str) -> str:
        return f(v.replace(" ", "")) if v else ""
    return g


_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "soundex": _phonetic(jellyfish.soundex), "metaphone": _phonetic(jellyfish.metaphone),
    "nysiis": _phonetic(jellyfish.nysiis), "year": _dob_part(0, 4), "month": _dob_part(4, 6),
    "day": _dob_part(6, 8), "monthday": _monthday, "local": _local,
}


def transform(name: str, n: int | None, value: str) -> str:
    """One part's key of a normalised ``value`` (``""`` = no key)."""
    if not value:
        return ""
    if name == "exact":
        return value
    if name == "first":
        return value[: n or 1]
    return _TRANSFORMS[name](value)


@dataclass(frozen=True)
class BlockingRule:
    """A parsed rule: ``parts`` are ``(transform, n, role)``; ``sorted_window`` = ``sn:``."""

    text: str
    parts: tuple[tuple[str, int | None, str], ...]
    sorted_window: bool = False

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for _, _, r in self.parts)


def parse_rule(text: str, roles: Sequence[str]) -> BlockingRule:
    """Parse ``text`` (see the module docstring); ``ValueError`` names what is wrong."""
    body = text.strip()
    sn = body.startswith("sn:")
    if sn:
        body = body[3:]
    parts: list[tuple[str, int | None, str]] = []
    for raw in body.split("+"):
        m = _PART.match(raw.strip())
        if not m:
            raise ValueError(f"blocking rule {text!r}: cannot read part {raw!r}")
        fn, num, role = m.group(1) or "exact", m.group(2), m.group(3)
        if fn != "first" and num:
            raise ValueError(f"blocking rule {text!r}: only first<N> takes a number")
        if fn not in _TRANSFORMS and fn not in ("exact", "first"):
            raise ValueError(f"blocking rule {text!r}: unknown transform {fn!r} "
                             f"(known: exact, first<N>, {', '.join(_TRANSFORMS)})")
        if role not in roles:
            raise ValueError(f"blocking rule {text!r}: {role!r} is not a role ({', '.join(roles)})")
        parts.append((fn, int(num) if num else None, role))
    return BlockingRule(text, tuple(parts), sn)


def default_rules(available: set[str]) -> tuple[str, ...]:
    """Rules over the roles the user mapped; every field is left out of at least one."""
    has = available.__contains__
    place = "postcode" if has("postcode") else "city" if has("city") else None
    rules: list[str] = []
    if has("surname") and has("dob"):
        rules.append("soundex(surname)+year(dob)")
    if has("given_name") and has("dob"):
        rules.append("soundex(given_name)+monthday(dob)")
    if has("dob") and has("surname"):
        rules.append("dob+first1(surname)")
    if has("dob") and has("given_name"):
        rules.append("dob+first1(given_name)")
    if has("given_name") and has("surname"):
        rules.append("metaphone(given_name)+metaphone(surname)")
        if place:
            rules.append(f"dob+first3({place})")
            rules.append(f"nysiis(surname)+first1(given_name)+first3({place})")
    if has("email"):
        rules.append("local(email)")
    if has("phone"):
        rules.append("phone")
    if has("national_id"):
        rules.append("national_id")
    if has("street_number") and has("postcode"):
        rules.append("street_number+postcode")
    elif has("address") and place:
        rules.append(f"first12(address)+{place}")
    return tuple(rules)


def rule_keys(rec: NormRecord, rules: Sequence[BlockingRule]) -> list[str]:
    """The blocking keys of one normalised record (``"<rule no>:<key>"``)."""
    keys: list[str] = []
    for i, rule in enumerate(rules):
        vals = [transform(fn, n, rec.get(role, "")) for fn, n, role in rule.parts]
        if all(vals):
            keys.append(f"{i}:{'|'.join(vals)}")
    return keys


def sort_key(rec: NormRecord) -> str:
    """Order inside an oversized block: surname, given name, then birth date."""
    return f"{rec.get('surname', '')} {rec.get('given_name', '')} {rec.get('dob', '')}"


def pairs_in_block(
    members: Sequence[tuple[str, Id]], *, max_block_size: int, window: int,
    sorted_window: bool = False,
) -> Iterator[tuple[Id, Id]]:
    """Candidate pairs ``(id_a, id_b)`` with ``id_a < id_b`` from one block.

    ``members`` are ``(sort_key, record_id)``. Blocks up to ``max_block_size`` give all pairs
    (unless ``sorted_window``); larger ones give each member's ``window - 1`` next neighbours in
    sort order.
    """
    ordered = sorted(members)
    n = len(ordered)
    span = window if sorted_window or n > max_block_size else n
    for i in range(n):
        a = ordered[i][1]
        for j in range(i + 1, min(n, i + span)):
            b = ordered[j][1]
            if a != b:
                yield (a, b) if a < b else (b, a)
