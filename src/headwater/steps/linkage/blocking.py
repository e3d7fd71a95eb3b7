"""Blocking: the few keys under which two records must meet to be compared at all.

Why: comparing every pair is quadratic (5 x 10^11 pairs for 1M records). Each record instead
emits several keys (phonetic surname + birth year, given name + full birth date, e-mail local
part, phone digits, street number + postcode, national id…); two records are compared only if
they share a key. Several keys keep recall when any one field has a typo. A block larger than
``max_block_size`` (a common surname in a common year) is not compared all-pairs: its members
are sorted and each is compared with its ``window`` nearest neighbours (the sorted-neighbourhood
method), so the work stays near-linear in the number of records.

Everything here is a pure function of its arguments, for Beam: ``records → FlatMap(keys) →
GroupByKey → FlatMap(pairs_in_block)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import jellyfish

from headwater.steps.linkage.normalize import NormRecord

__all__ = ["blocking_keys", "email_key", "group_blocks", "pairs_in_block", "sort_key"]

Id = TypeVar("Id", str, int)


def email_key(email: str) -> str:
    """Local part without dots or ``+tag`` (``John.Smith+x@…`` ≡ ``johnsmith``)."""
    local = email.split("@", 1)[0].split("+", 1)[0]
    return local.replace(".", "").replace("_", "")


def blocking_keys(rec: NormRecord) -> list[str]:
    """The blocking keys of one normalised record (each prefixed by its kind)."""
    keys: list[str] = []
    given, surname, dob = rec.get("given_name", ""), rec.get("surname", ""), rec.get("dob", "")
    if surname and dob:
        keys.append(f"sd:{jellyfish.soundex(surname)}{dob}")
    if given and dob:
        keys.append(f"gd:{jellyfish.soundex(given)}{dob}")
    if given and surname:
        pc = rec.get("postcode") or rec.get("city", "")[:4]
        if pc:
            keys.append(f"np:{given[:1]}{jellyfish.soundex(surname)}:{pc}")
    if "email" in rec:
        local = email_key(rec["email"])
        if len(local) >= 4:
            keys.append(f"em:{local}")
    if "phone" in rec:
        keys.append(f"ph:{rec['phone']}")
    if "national_id" in rec:
        keys.append(f"id:{rec['national_id']}")
    if "street_number" in rec and "postcode" in rec:
        keys.append(f"ad:{rec['street_number']}:{rec['postcode']}")
    elif "address" in rec and ("postcode" in rec or "city" in rec):
        keys.append(f"ad:{rec['address'][:12]}:{rec.get('postcode') or rec.get('city', '')}")
    return keys


def sort_key(rec: NormRecord) -> str:
    """Order inside an oversized block: surname, given name, then birth date."""
    return f"{rec.get('surname', '')} {rec.get('given_name', '')} {rec.get('dob', '')}"


def pairs_in_block(
    members: Sequence[tuple[str, Id]], *, max_block_size: int, window: int
) -> Iterator[tuple[Id, Id]]:
    """Candidate pairs ``(id_a, id_b)`` with ``id_a < id_b`` from one block.

    ``members`` are ``(sort_key, record_id)``. Blocks up to ``max_block_size`` give all pairs;
    larger ones give each member's ``window - 1`` next neighbours in sort order.
    """
    ordered = sorted(members)
    n = len(ordered)
    span = n if n <= max_block_size else window
    for i in range(n):
        a = ordered[i][1]
        for j in range(i + 1, min(n, i + span)):
            b = ordered[j][1]
            if a != b:
                yield (a, b) if a < b else (b, a)


def group_blocks(
    items: Iterable[tuple[Id, NormRecord]],
) -> dict[str, list[tuple[str, Id]]]:
    """In-memory GroupByKey: ``block key → [(sort_key, record_id)]`` (the table path)."""
    blocks: dict[str, list[tuple[str, Id]]] = {}
    for rid, rec in items:
        sk = sort_key(rec)
        for k in blocking_keys(rec):
            blocks.setdefault(k, []).append((sk, rid))
    return blocks
