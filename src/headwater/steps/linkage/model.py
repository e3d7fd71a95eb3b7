"""Comparison levels and an unsupervised Fellegi-Sunter model fitted by EM, as Splink does.

Why: fixed match weights fit the data they were tuned on and nothing else. Here every role is
compared into a few *levels* (exact / close / different; dates by parts), and each level's
weight is ``log2(m / u)`` with

* ``u`` = P(level | two different people), measured on pseudo-random record pairs (records put
  in buckets by a hash of their id, all pairs within a bucket — the same pairs in the table
  path and in Beam);
* ``m`` = P(level | same person), fitted by expectation-maximisation on the counts of the
  comparison patterns of the candidate pairs (``u`` held fixed, as Splink's ``estimate_u`` then
  ``estimate_parameters_using_expectation_maximisation``);
* term-frequency adjustment of the exact level: agreeing on a value that ``c`` of ``N`` records
  share has ``u = c / N``, so a rare surname weighs more than a common one.

A pair's match weight is the prior ``log2(λ / (1 - λ))`` plus the weights of its levels (a role
missing on either side adds nothing). Two records whose given name and birth date are both
present and both clearly different are never the same person, whatever contact details they
share (household members on one landline), unless a national id agrees: the pair is *vetoed*
and cannot be linked.

Everything is a pure function; the fitted :class:`FSModel` is a small JSON-able value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jellyfish

from headwater.steps.linkage.blocking import email_key
from headwater.steps.linkage.normalize import NAME_ROLES, NormRecord

__all__ = [
    "COMPARISONS",
    "FSModel",
    "compare",
    "fit_model",
    "gamma",
    "one_edit",
    "random_bucket_count",
    "score_pair",
    "swapped",
    "training_sessions",
    "vetoed",
]

#: role -> number of levels (0 = exact ... last = different)
COMPARISONS: dict[str, int] = {
    "given_name": 4, "second_given_name": 4, "surname": 4, "second_surname": 4, "dob": 4,
    "email": 3, "phone": 3, "national_id": 3, "address": 3, "address2": 3, "street_number": 3,
    "city": 3, "postcode": 3, "state": 2,
}
#: roles whose exact level is term-frequency adjusted
TF_ROLES = frozenset(COMPARISONS) - {"state"}
#: identifier roles: a value shared by many different people is a placeholder
SHARED_ROLES = ("email", "phone", "national_id", "address")
MISSING = -1


def one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance <= 1 (one insertion, deletion, substitution or adjacent
    transposition), in linear time: this is the hot path of every comparison."""
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i, m = 0, min(la, lb)
    while i < m and a[i] == b[i]:
        i += 1
    if la == lb:
        return a[i + 1:] == b[i + 1:] or (
            i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2:] == b[i + 2:])
    return a[i:] == b[i + 1:] if la < lb else a[i + 1:] == b[i:]


def _compare_dob(a: str, b: str) -> int:
    """0 same; 1 a small slip (day/month transposed, year off by one or one digit); 2 one
    part wrong; 3 more; MISSING if no part is known on both sides."""
    ya, ma, da, yb, mb, db = a[:4], a[4:6], a[6:8], b[:4], b[4:6], b[6:8]
    if ya != yb and ma != mb and da != db and "0000" not in (ya, yb) and "00" not in (
            ma, mb, da, db) and not (ma == db and da == mb):
        return 3  # the common case of two strangers, decided early
    known = [(x, y) for x, y, z in ((ya, yb, "0000"), (ma, mb, "00"), (da, db, "00"))
             if x != z and y != z and x and y]
    if not known:
        return MISSING
    wrong = sum(x != y for x, y in known)
    if wrong == 0:
        return 0
    if ma == db and da == mb and ya == yb and "00" not in (ma, da, mb, db):
        return 1  # day and month transposed
    if wrong == 1:
        if ya != yb and "0000" not in (ya, yb) and (
                abs(int(ya) - int(yb)) == 1 or sorted(ya) == sorted(yb)
                or sum(x != y for x, y in zip(ya, yb, strict=False)) == 1):
            return 1
        if ma == mb and da != db and "00" not in (da, db) and (
                sum(x != y for x, y in zip(da, db, strict=False)) == 1 or da[::-1] == db):
            return 1
        return 2
    return 3


def compare(role: str, a: str, b: str) -> int:
    """Level of two normalised values of ``role`` (``MISSING`` if either is empty)."""
    if not a or not b:
        return MISSING
    if role == "dob":
        return _compare_dob(a, b)
    if a == b:
        return 0
    if role in NAME_ROLES:
        if len(a) == 1 or len(b) == 1:  # an initial
            return 2 if a[0] == b[0] else 3
        if one_edit(a, b):
            return 1
        jw = jellyfish.jaro_winkler_similarity(a, b)
        if jw >= 0.92:
            return 1
        return 2 if jw >= 0.80 else 3
    if role in ("address", "address2", "city"):
        return 1 if jellyfish.jaro_winkler_similarity(a, b) >= 0.88 else 2
    if role == "email":
        return 1 if one_edit(a, b) or email_key(a) == email_key(b) else 2
    if role == "state":
        return 1
    return 1 if one_edit(a, b) else 2


def gamma(a: NormRecord, b: NormRecord, roles: Sequence[str]) -> tuple[int, ...]:
    """The comparison pattern of two records over ``roles``. A given name and surname found
    swapped (a common entry error) count as level 1 of both."""
    out = [compare(r, a.get(r, ""), b.get(r, "")) for r in roles]
    if "given_name" in roles and "surname" in roles:
        gi, si = roles.index("given_name"), roles.index("surname")
        if swapped(out[gi], out[si], a.get("given_name", ""), a.get("surname", ""),
                   b.get("given_name", ""), b.get("surname", "")):
            out[gi] = out[si] = 1
    return tuple(out)


def swapped(level_given: int, level_surname: int, ga: str, sa: str, gb: str, sb: str) -> bool:
    """Given name and surname entered the other way round (each at most a close match, with
    the same first letter)."""
    return (level_given >= 2 and level_surname >= 2 and ga != sa and bool(ga) and bool(sa)
            and ga[:1] == sb[:1] and sa[:1] == gb[:1]
            and 0 <= compare("surname", ga, sb) <= 1 and 0 <= compare("given_name", sa, gb) <= 1)


def vetoed(pattern: Sequence[int], roles: Sequence[str]) -> bool:
    """Given name and birth date both present and both clearly different, and no personal
    identifier (national id) agreeing: contact details alone never make these one person."""
    lv = dict(zip(roles, pattern, strict=True))
    return (lv.get("given_name") == COMPARISONS["given_name"] - 1 and lv.get("dob") == 3
            and lv.get("national_id", MISSING) not in (0, 1))


def random_bucket_count(n: int, target_pairs: int) -> int:
    """Buckets for ``n`` records so that all pairs within buckets are about ``target_pairs``
    (``n (n - 1) / 2`` pairs spread over the buckets; one bucket = every pair)."""
    if n < 2:
        return 1
    return max(1, math.ceil(n * (n - 1) / (2 * target_pairs)))


@dataclass(frozen=True)
class FSModel:
    """Fitted parameters: ``m``/``u`` per role and level, prior ``lam``, record count ``n``."""

    roles: tuple[str, ...]
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    lam: float
    n: int
    iterations: int = 0
    tf: bool = True
    weights: tuple[tuple[float, ...], ...] = field(init=False)
    prior: float = field(init=False)

    def __post_init__(self) -> None:
        w = tuple(tuple(math.log2(mi / ui) for mi, ui in zip(m, u, strict=True))
                  for m, u in zip(self.m, self.u, strict=True))
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "prior", math.log2(self.lam / (1.0 - self.lam)))

    def exact_weight(self, i: int, count: int) -> float:
        """Weight of an exact agreement on a value ``count`` records share (TF-adjusted)."""
        role = self.roles[i]
        if not self.tf or role not in TF_ROLES or count < 1 or self.n < 2:
            return self.weights[i][0]
        # Splink's adjustment: the base weight plus log2(u_exact / tf(value))
        return self.weights[i][0] + math.log2(self.u[i][0] / max(count / self.n, 1e-12))

    def to_dict(self) -> dict[str, Any]:
        return {"lambda": round(self.lam, 6), "iterations": self.iterations, "records": self.n,
                "weights_bits": {r: [round(x, 3) for x in w]
                                 for r, w in zip(self.roles, self.weights, strict=True)},
                "m": {r: [round(x, 5) for x in m] for r, m in zip(self.roles, self.m,
                                                                   strict=True)},
                "u": {r: [round(x, 7) for x in u] for r, u in zip(self.roles, self.u,
                                                                   strict=True)}}


def u_from_counts(roles: Sequence[str], level_counts: Mapping[tuple[int, int], int]
                  ) -> tuple[tuple[float, ...], ...]:
    """``u`` per role from ``{(role index, level): pairs}`` of random pairs (add-one)."""
    out = []
    for i, r in enumerate(roles):
        k = COMPARISONS[r]
        c = [level_counts.get((i, lv), 0) + 1 for lv in range(k)]
        tot = float(sum(c))
        out.append(tuple(x / tot for x in c))
    return tuple(out)


def _initial_m(k: int) -> tuple[float, ...]:
    raw = [0.9 * (0.25 ** i) for i in range(k - 1)]
    rest = max(1.0 - sum(raw), 0.01)
    tot = sum(raw) + rest
    return tuple(x / tot for x in [*raw, rest])


IDENTITY_ROLES = frozenset({"given_name", "second_given_name", "surname", "second_surname",
                            "dob"})


def _em(items: Sequence[tuple[tuple[int, ...], int]], m: list[tuple[float, ...]],
        u: Sequence[tuple[float, ...]], lam: float, active: Sequence[bool], iterations: int,
        fit_m: bool = True) -> tuple[list[tuple[float, ...]], float, int]:
    """EM over pattern counts with ``u`` fixed; roles not ``active`` are left out."""
    total = float(sum(c for _, c in items)) or 1.0
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007 — the count is returned
        acc = [[0.0] * len(mi) for mi in m]
        denom = [0.0] * len(m)
        matched = 0.0
        for pat, cnt in items:
            lm, lu = lam, 1.0 - lam
            for i, lv in enumerate(pat):
                if lv >= 0 and active[i]:
                    lm *= m[i][lv]
                    lu *= u[i][lv]
            w = (lm / (lm + lu) if lm + lu > 0 else 0.0) * cnt
            matched += w
            for i, lv in enumerate(pat):
                if lv >= 0 and active[i]:
                    acc[i][lv] += w
                    denom[i] += w
        new_lam = min(max(matched / total, 1e-6), 1 - 1e-6)
        new_m = list(m)
        if fit_m:
            for i in range(len(m)):
                if active[i] and denom[i] > 0:
                    vals = [max(a / denom[i], 1e-6) for a in acc[i]]
                    tot = sum(vals)
                    new_m[i] = tuple(v / tot for v in vals)
        delta = max([abs(new_lam - lam)] + [abs(a - b) for mi, ni in zip(m, new_m, strict=True)
                                            for a, b in zip(mi, ni, strict=True)])
        m, lam = new_m, new_lam
        if delta < 1e-6:
            break
    return m, lam, it


def fit_model(roles: Sequence[str], session_patterns: Mapping[tuple[int, tuple[int, ...]], int],
              sessions: Sequence[Sequence[str] | None],
              patterns: Mapping[tuple[int, ...], int],
              random_levels: Mapping[tuple[int, int], int], n: int, *,
              max_iterations: int = 40, tf: bool = True) -> FSModel:
    """Fit ``m`` by EM the way Splink does, ``u`` from random pairs, then ``λ``.

    ``session_patterns`` counts ``(rule no, pattern)`` over each blocking rule's own pairs;
    ``sessions[k]`` is rule ``k``'s roles (None: the rule is not a training session — rules on
    contact details alone, whose pairs are mostly households and shared devices). In the session
    of rule ``k`` the roles it blocks on are left out (their agreement is forced by the rule)
    and ``m`` of every other role is fitted with ``u`` held at its random-pair value; each
    role's ``m`` is the mean over the sessions that fitted it. ``λ`` (the prior of a candidate
    pair) is then fitted over all candidate pairs' ``patterns`` with ``m`` and ``u`` fixed.
    Deterministic: patterns are visited in sorted order, so Beam and the table path (which
    count the same patterns) fit the same model bit for bit.
    """
    roles = tuple(roles)
    u = u_from_counts(roles, random_levels)
    init = [_initial_m(COMPARISONS[r]) for r in roles]
    fitted: list[list[tuple[float, ...]]] = [[] for _ in roles]
    iterations = 0
    for k, blocked in enumerate(sessions):
        if blocked is None:
            continue
        items = sorted((pat, c) for (kk, pat), c in session_patterns.items() if kk == k)
        if not items:
            continue
        active = [r not in blocked for r in roles]
        m_k, _, it = _em(items, list(init), u, 0.1, active, max_iterations)
        iterations += it
        for i, a in enumerate(active):
            if a:
                fitted[i].append(m_k[i])
    m = []
    for i, fs in enumerate(fitted):
        if not fs:
            m.append(init[i])
            continue
        mean = [sum(f[lv] for f in fs) / len(fs) for lv in range(len(init[i]))]
        tot = sum(mean)
        m.append(tuple(x / tot for x in mean))
    items = sorted(patterns.items())
    _, lam, it = _em(items, m, u, 0.1, [True] * len(roles), max_iterations, fit_m=False)
    return FSModel(roles, tuple(m), u, lam, n, iterations + it, tf)


def training_sessions(rule_roles: Sequence[Sequence[str]]) -> list[Sequence[str] | None]:
    """Which blocking rules train ``m`` (those on a name or birth-date part)."""
    return [list(rr) if IDENTITY_ROLES & set(rr) else None for rr in rule_roles]


def score_pattern(model: FSModel, pattern: Sequence[int],
                  counts: Sequence[int]) -> float:
    """Match weight (bits) of one pattern; ``counts[i]`` is how many records hold the agreed
    value of role ``i`` (used when ``pattern[i] == 0``)."""
    total = model.prior
    for i, lv in enumerate(pattern):
        if lv == 0:
            total += model.exact_weight(i, counts[i])
        elif lv > 0:
            total += model.weights[i][lv]
    return total


def score_pair(a: NormRecord, b: NormRecord, model: FSModel,
               counts_a: Mapping[str, int]) -> tuple[float, bool]:
    """``(match weight, vetoed)`` of two records; ``counts_a`` are record ``a``'s value counts."""
    pat = gamma(a, b, model.roles)
    return (score_pattern(model, pat, [counts_a.get(r, 0) for r in model.roles]),
            vetoed(pat, model.roles))


def count_levels(pats: Iterable[tuple[int, ...]]) -> dict[tuple[int, int], int]:
    """``{(role index, level): pairs}`` over comparison patterns (for ``u``)."""
    out: dict[tuple[int, int], int] = {}
    for pat in pats:
        for i, lv in enumerate(pat):
            if lv >= 0:
                out[(i, lv)] = out.get((i, lv), 0) + 1
    return out
