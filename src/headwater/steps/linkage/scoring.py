"""Pairwise scoring: a Fellegi-Sunter match weight for two normalised records.

Why: a match weight adds evidence from each field in proportion to how telling it is — two
records sharing a phone number say far more than two sharing a state — and a missing field adds
nothing instead of counting against the pair. For each role the similarity (Jaro-Winkler for
names and addresses, exact or one-edit for dates and ids, exact for phones and e-mails, from
``jellyfish``) is bucketed into agree / partial / disagree, and each level contributes
``log2(m/u)``: m = P(level | same person), u = P(level | different people). The default m/u are
set from general record-linkage experience, not fitted to any test set; :class:`FieldWeights`
lets a user override them. The pair is a match when the summed weight reaches the threshold.

``score_pair`` is pure and cheap, for Beam's per-block ``FlatMap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jellyfish

from headwater.steps.linkage.blocking import email_key
from headwater.steps.linkage.normalize import NormRecord

__all__ = ["DEFAULT_WEIGHTS", "FieldWeights", "compare", "score_pair"]


@dataclass(frozen=True)
class FieldWeights:
    """m/u probabilities of the agree and partial levels of one role (disagree is the rest)."""

    m_agree: float
    u_agree: float
    m_partial: float = 0.0
    u_partial: float = 0.0

    def __post_init__(self) -> None:
        for name in ("m_agree", "u_agree", "m_partial", "u_partial"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"field weights: {name} must be in [0, 1), got {v!r}")
        if self.m_agree + self.m_partial >= 1.0 or self.u_agree + self.u_partial >= 1.0:
            raise ValueError("field weights: agree + partial probabilities must stay below 1")

    @property
    def levels(self) -> tuple[float, float, float]:
        """Weights of (agree, partial, disagree) in bits."""
        agree = math.log2(self.m_agree / self.u_agree)
        partial = math.log2(self.m_partial / self.u_partial) if self.m_partial else 0.0
        md = 1.0 - self.m_agree - self.m_partial
        ud = 1.0 - self.u_agree - self.u_partial
        return agree, partial, math.log2(md / ud)


DEFAULT_WEIGHTS: dict[str, FieldWeights] = {
    "given_name": FieldWeights(0.88, 0.01, 0.08, 0.03),
    "surname": FieldWeights(0.88, 0.005, 0.08, 0.02),
    "email": FieldWeights(0.80, 0.0001, 0.05, 0.0005),
    "phone": FieldWeights(0.80, 0.0001, 0.05, 0.001),
    "dob": FieldWeights(0.88, 0.0005, 0.08, 0.01),
    "address": FieldWeights(0.80, 0.001, 0.10, 0.01),
    "street_number": FieldWeights(0.85, 0.01, 0.05, 0.03),
    "address2": FieldWeights(0.70, 0.005, 0.10, 0.02),
    "city": FieldWeights(0.85, 0.02, 0.08, 0.03),
    "postcode": FieldWeights(0.85, 0.005, 0.05, 0.02),
    "state": FieldWeights(0.92, 0.20),
    "national_id": FieldWeights(0.85, 0.0001, 0.08, 0.001),
}
_JW_ROLES = ("given_name", "surname", "address", "address2", "city")


def _one_edit(a: str, b: str) -> bool:
    return jellyfish.damerau_levenshtein_distance(a, b) <= 1


def compare(role: str, a: str, b: str) -> int:
    """Agreement level of two non-empty values: 0 agree, 1 partial, 2 disagree."""
    if a == b:
        return 0
    if role in _JW_ROLES:
        sim = jellyfish.jaro_winkler_similarity(a, b)
        if sim >= 0.94:
            return 0 if role in ("address", "address2", "city") else 1
        return 1 if sim >= 0.85 else 2
    if role == "email":
        return 1 if email_key(a) == email_key(b) else 2
    if role in ("dob", "national_id", "postcode", "street_number", "phone"):
        return 1 if _one_edit(a, b) else 2
    return 2


def score_pair(
    a: NormRecord, b: NormRecord, weights: dict[str, FieldWeights] | None = None
) -> float:
    """Summed match weight (bits) of two normalised records; higher means more alike.

    Roles present in only one record (or in neither) contribute nothing. A given name and
    surname found swapped (a common entry error) count as a partial agreement of both.
    """
    w = DEFAULT_WEIGHTS if weights is None else weights
    total = 0.0
    swapped = (
        "given_name" in a and "surname" in a and "given_name" in b and "surname" in b
        and a["given_name"] == b["surname"] and a["surname"] == b["given_name"]
        and a["given_name"] != a["surname"]
    )
    for role, fw in w.items():
        va, vb = a.get(role), b.get(role)
        if not va or not vb:
            continue
        level = 1 if swapped and role in ("given_name", "surname") else compare(role, va, vb)
        total += fw.levels[level]
    return round(total, 6)
