"""The table path of the ID merge, column-wise with numpy, calling the same per-value functions
as Beam's per-record path (normalisers, blocking transforms, :func:`model.compare`, the EM fit,
:func:`model.score_pattern` weights, :func:`clustering.consistent_clusters`).

Why column-wise: a user table has far fewer distinct values than rows (names, cities, dates), so
each normaliser, phonetic code and string comparison runs once per distinct value or value
pair, and blocking, pair de-duplication and scoring are array operations. ``tests/steps/
test_id_merge.py`` checks record-by-record equality with :func:`normalize_record` and Beam's
``IdMerge`` checks it gives the same IDs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jellyfish
import numpy as np
import pandas as pd

from headwater.steps.linkage.blocking import BlockingRule, email_key, sort_key, transform
from headwater.steps.linkage.clustering import UnionFind, consistent_clusters
from headwater.steps.linkage.model import (
    COMPARISONS,
    MISSING,
    SHARED_ROLES,
    FSModel,
    compare,
    count_levels,
    fit_model,
    random_bucket_count,
    swapped,
    training_sessions,
    vetoed,
)
from headwater.steps.linkage.normalize import _DOB_PART, NORMALISERS, NormRecord, split_full_name

__all__ = ["LinkConfig", "Linked", "available_roles", "link_table", "model_roles", "rid_bucket",
           "signature"]


def available_roles(roles: Mapping[str, str]) -> set[str]:
    """Normalised roles a column mapping can fill."""
    out: set[str] = set()
    for role in roles.values():
        if role == "full_name":
            out |= {"given_name", "second_given_name", "surname"}
        elif role in _DOB_PART:
            out.add("dob")
        else:
            out.add(role)
    return out


def model_roles(roles: Mapping[str, str]) -> tuple[str, ...]:
    have = available_roles(roles)
    return tuple(r for r in COMPARISONS if r in have)


def signature(rec: Mapping[str, str]) -> str:
    """Who a record seems to be, to count the different people sharing a contact value."""
    g = rec.get("given_name", "")
    return f"{jellyfish.soundex(g.replace(' ', '')) if g else ''}|{rec.get('dob', '')}"


def rid_bucket(rid: str, buckets: int) -> int:
    """The pseudo-random bucket of a record id (u is measured on pairs within buckets)."""
    return int.from_bytes(hashlib.blake2b(rid.encode(), digest_size=8).digest(), "big") % buckets


@dataclass(frozen=True)
class LinkConfig:
    roles: Mapping[str, str]
    rules: Sequence[BlockingRule]
    threshold: float
    max_block_size: int
    window: int
    random_pairs: int
    placeholder_people: int
    cannot_link_below: float
    consistency: bool
    tf: bool
    max_component: int
    em_iterations: int


@dataclass
class Linked:
    """What the table path computes (record positions index everything)."""

    norm: dict[str, np.ndarray]  # role -> object array of normalised strings ("" = missing)
    pairs: np.ndarray  # (k, 2) candidate pairs
    scores: np.ndarray
    matched: np.ndarray
    clusters: list[list[int]]
    components: list[list[int]]
    model: FSModel
    rule_pairs: list[int]
    placeholders: dict[str, int]
    split_components: int


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (unsorted, None kept as a value) and each row's code."""
    codes, uniq = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(uniq, dtype=object), np.asarray(codes, dtype=np.int64)


def _map(fn: Any, values: np.ndarray) -> np.ndarray:
    if not len(values):
        return np.empty(0, dtype=object)
    uniq, inv = _unique(values)
    out = np.empty(len(uniq), dtype=object)
    out[:] = [fn(v) for v in uniq.tolist()]
    result: np.ndarray = out[inv]
    return result


def normalize_columns(columns: Mapping[str, Sequence[Any]], roles: Mapping[str, str], n: int
                      ) -> dict[str, np.ndarray]:
    """Column-wise :func:`normalize_record`: role -> normalised values (one per row)."""
    out: dict[str, np.ndarray] = {}
    parts: dict[str, np.ndarray] = {}

    def raw(col: str) -> np.ndarray:
        arr = np.empty(n, dtype=object)
        arr[:] = list(columns[col])
        return arr

    def norm(fn: Any, col: str) -> np.ndarray:
        return _map(fn, raw(col))

    for column, role in roles.items():
        if role == "full_name":
            split = _map(lambda v: "\x01".join(split_full_name(v)), raw(column))
            for k, r in enumerate(("given_name", "second_given_name", "surname")):
                vals = np.array([s.split("\x01")[k] for s in split.tolist()], dtype=object)
                cur = out.get(r)
                out[r] = vals if cur is None else np.where(cur == "", vals, cur)
            continue
        vals = norm(NORMALISERS[role], column)
        target = parts if role in _DOB_PART else out
        cur = target.get(role)
        target[role] = vals if cur is None else np.where(vals != "", vals, cur)
    if parts:
        def part(r: str, z: str) -> np.ndarray:
            p = parts.get(r)
            return np.full(n, z, dtype=object) if p is None else np.where(p == "", z, p)
        have = np.zeros(n, dtype=bool)
        for p in parts.values():
            have |= p != ""
        dob = part("birth_year", "0000") + part("birth_month", "00") + part("birth_day", "00")
        dob = np.where(have, dob, "")
        cur = out.get("dob")
        out["dob"] = dob if cur is None else np.where(cur == "", dob, cur)
    return {r: v.astype(object) for r, v in out.items()}


def _window_pairs(order: np.ndarray, group: np.ndarray, span_of_group: np.ndarray,
                  max_span: int) -> np.ndarray:
    """Pairs ``(order[p], order[p + d])`` with both in one group and ``d < span``."""
    if len(order) < 2:
        return np.empty((0, 2), np.int64)
    _, start, size = np.unique(group, return_index=True, return_counts=True)
    gidx = np.repeat(np.arange(len(start)), size)
    pos = np.arange(len(order)) - start[gidx]
    end = size[gidx]
    span = span_of_group[gidx]
    out = []
    for d in range(1, max_span):
        ok = (pos + d < end) & (d < span)
        if not ok.any():
            break
        i = np.nonzero(ok)[0]
        out.append(np.stack([order[i], order[i + d]], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), np.int64)


def _rank(strings: np.ndarray) -> np.ndarray:
    """Each string's rank in sorted order (Python string order, as Beam's ``sorted``)."""
    if not len(strings):
        return np.empty(0, np.int64)
    uniq, inv = _unique(strings)
    order = np.argsort(np.array(uniq.tolist(), dtype=str), kind="stable")
    rank = np.empty(len(uniq), np.int64)
    rank[order] = np.arange(len(uniq))
    result: np.ndarray = rank[inv]
    return result


def _block_pairs(norm: Mapping[str, np.ndarray], rules: Sequence[BlockingRule], n: int,
                 rid_rank: np.ndarray, sk_rank: np.ndarray, max_block: int, window: int,
                 ) -> tuple[np.ndarray, list[int], list[np.ndarray]]:
    """Unique candidate pairs (a < b), pairs per rule, and each rule's pair codes."""
    empty = np.full(n, "", dtype=object)
    codes: list[np.ndarray] = []
    counts: list[int] = []
    for rule in rules:
        key = np.full(n, "", dtype=object)
        ok = np.ones(n, dtype=bool)
        for j, (fn, num, role) in enumerate(rule.parts):
            part = _map(lambda v, fn=fn, num=num: transform(fn, num, v), norm.get(role, empty))
            ok &= part != ""
            key = part if j == 0 else key + "|" + part
        idx = np.nonzero(ok)[0]
        if len(idx) < 2:
            counts.append(0)
            codes.append(np.empty(0, np.int64))
            continue
        kcode = _rank(key[idx])
        order = np.lexsort((rid_rank[idx], sk_rank[idx], kcode))
        grp = kcode[order]
        _, size = np.unique(grp, return_counts=True)
        span = np.where(rule.sorted_window | (size > max_block), window, size)
        pairs = _window_pairs(idx[order], grp, span, max(max_block, window))
        counts.append(len(pairs))
        a, b = pairs.min(axis=1), pairs.max(axis=1)
        codes.append(a.astype(np.int64) * n + b)
    if not codes:
        return np.empty((0, 2), np.int64), counts, codes
    uniq = np.unique(np.concatenate(codes))
    return np.stack([uniq // n, uniq % n], axis=1), counts, codes


#: roles whose levels are exact / within one edit (e-mail: or same local part) / different
ONE_EDIT_ROLES = frozenset({"email", "phone", "national_id", "postcode", "street_number"})


def _one_edit_levels(role: str, values: list[str], lo: np.ndarray, hi: np.ndarray
                     ) -> np.ndarray:
    """:func:`compare` of value pairs ``(values[lo], values[hi])`` for a one-edit role, deciding
    "different" with array operations where it is certain (lengths two apart, or equal lengths
    with more than two differing characters), and calling :func:`compare` for the rest."""
    res = np.full(len(lo), -2, dtype=np.int8)
    present = np.array([bool(v) for v in values], dtype=bool)
    res[~(present[lo] & present[hi])] = MISSING
    vcode = _unique(np.array(values, dtype=object))[1]
    res[(res == -2) & (vcode[lo] == vcode[hi])] = 0
    if role == "email":
        keys = _unique(np.array([email_key(v) if v else "" for v in values], dtype=object))[1]
        res[(res == -2) & (keys[lo] == keys[hi])] = 1
    length = np.array([len(v) for v in values], dtype=np.int64)
    dlen = np.abs(length[lo] - length[hi])
    res[(res == -2) & (dlen > 1)] = 2
    same = np.nonzero((res == -2) & (dlen == 0))[0]
    width = int(length.max()) if len(length) else 0
    if len(same) and width:
        chars = np.array(values, dtype=f"<U{width}").view(np.uint32).reshape(len(values), width)
        for start in range(0, len(same), 200_000):
            idx = same[start:start + 200_000]
            differ = (chars[lo[idx]] != chars[hi[idx]]).sum(axis=1)
            res[idx[differ > 2]] = 2
    rest = np.nonzero(res == -2)[0]
    res[rest] = [compare(role, values[x], values[y])
                 for x, y in zip(lo[rest].tolist(), hi[rest].tolist(), strict=True)]
    return res


def _gammas(norm: Mapping[str, np.ndarray], roles: Sequence[str], a: np.ndarray,
            b: np.ndarray, role_codes: Mapping[str, tuple[np.ndarray, np.ndarray]]
            ) -> np.ndarray:
    """(k, len(roles)) int8 levels, computing :func:`compare` once per distinct value pair."""
    out = np.full((len(a), len(roles)), MISSING, dtype=np.int8)
    for j, role in enumerate(roles):
        uniq, code = role_codes[role]
        ca, cb = code[a], code[b]
        nu = len(uniq)
        cc = np.minimum(ca, cb).astype(np.int64) * nu + np.maximum(ca, cb)
        pu, inv = np.unique(cc, return_inverse=True)
        ul = uniq.tolist()
        if role in ONE_EDIT_ROLES and len(pu):
            lv = _one_edit_levels(role, ul, pu // nu, pu % nu)
        else:
            lv = np.array([compare(role, ul[x // nu], ul[x % nu]) for x in pu.tolist()],
                          dtype=np.int8)
        out[:, j] = lv[inv.reshape(-1)] if len(pu) else MISSING
    if "given_name" in roles and "surname" in roles:
        gi, si = roles.index("given_name"), roles.index("surname")
        g, s = norm["given_name"], norm["surname"]
        g1 = np.array([x[:1] for x in g.tolist()], dtype=object)
        s1 = np.array([x[:1] for x in s.tolist()], dtype=object)
        maybe = np.nonzero((out[:, gi] >= 2) & (out[:, si] >= 2) & (g1[a] == s1[b])
                           & (s1[a] == g1[b]) & (g1[a] != ""))[0]
        sw = np.array([swapped(int(out[k, gi]), int(out[k, si]), ga, sa, gb, sb)
                       for k, ga, sa, gb, sb in zip(
                           maybe.tolist(), g[a[maybe]].tolist(), s[a[maybe]].tolist(),
                           g[b[maybe]].tolist(), s[b[maybe]].tolist(), strict=True)],
                      dtype=bool)
        out[maybe[sw], gi] = 1
        out[maybe[sw], si] = 1
    return out


def _encode(g: np.ndarray) -> np.ndarray:
    code = np.zeros(len(g), dtype=np.int64)
    for j in range(g.shape[1]):
        code = code * 6 + (g[:, j].astype(np.int64) + 1)
    return code


def _decode(code: int, width: int) -> tuple[int, ...]:
    out = []
    for _ in range(width):
        out.append(code % 6 - 1)
        code //= 6
    return tuple(reversed(out))


def _level_counts(g: np.ndarray) -> dict[tuple[int, int], int]:
    """Column-wise :func:`count_levels`: ``{(role index, level): pairs}``."""
    out: dict[tuple[int, int], int] = {}
    for j in range(g.shape[1] if g.ndim == 2 else 0):
        col = g[:, j].astype(np.int64)
        for lv, c in enumerate(np.bincount(col[col >= 0]).tolist()):
            if c:
                out[(j, lv)] = c
    return out


def _pattern_counts(enc: np.ndarray, width: int) -> dict[tuple[int, ...], int]:
    pc, pn = np.unique(enc, return_counts=True)
    return {_decode(int(c), width): int(k) for c, k in zip(pc.tolist(), pn.tolist(), strict=True)}


def _scores(model: FSModel, g: np.ndarray, a: np.ndarray,
            tf_w: Sequence[np.ndarray]) -> np.ndarray:
    total = np.full(len(g), model.prior, dtype=np.float64)
    for j in range(len(model.roles)):
        lvl = g[:, j]
        table = np.array([0.0, *model.weights[j]], dtype=np.float64)  # index level + 1
        w = table[lvl.astype(np.int64) + 1]
        w = np.where(lvl == 0, tf_w[j][a], w)
        total += w
    return total


def link_table(columns: Mapping[str, Sequence[Any]], rids: Sequence[str], cfg: LinkConfig,
               truth: Sequence[Any] | None = None) -> Linked:
    n = len(rids)
    roles = model_roles(cfg.roles)
    norm = normalize_columns(columns, cfg.roles, n)
    empty = np.full(n, "", dtype=object)
    for r in roles:
        norm.setdefault(r, empty.copy())
    rid_arr = np.array(list(rids), dtype=object)
    rid_rank = _rank(rid_arr)
    # values shared by many different people are placeholders: drop them
    sig = np.array([signature({"given_name": g, "dob": d}) for g, d in zip(
        norm.get("given_name", empty).tolist(), norm.get("dob", empty).tolist(), strict=True)],
        dtype=object)
    sig_code = _unique(sig)[1] if n else np.empty(0, np.int64)
    placeholders: dict[str, int] = {}
    for r in SHARED_ROLES:
        if r not in norm or not n:
            continue
        uniq, code = _unique(norm[r])
        pair = np.unique(code.astype(np.int64) * (int(sig_code.max()) + 1) + sig_code)
        people = np.bincount((pair // (int(sig_code.max()) + 1)).astype(np.int64),
                             minlength=len(uniq))
        bad = (people >= cfg.placeholder_people) & (uniq != "")
        if bad.any():
            placeholders[r] = int(bad.sum())
            norm[r] = np.where(bad[code], "", norm[r]).astype(object)
    role_codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    counts: dict[str, np.ndarray] = {}
    for r in roles:
        uniq, code = _unique(norm[r])
        role_codes[r] = (uniq, code)
        counts[r] = np.bincount(code, minlength=len(uniq))[code] if n else code
    sk = np.array([sort_key({"surname": s, "given_name": g, "dob": d}) for s, g, d in zip(
        norm.get("surname", empty).tolist(), norm.get("given_name", empty).tolist(),
        norm.get("dob", empty).tolist(), strict=True)], dtype=object)
    pairs, rule_pairs, rule_codes = _block_pairs(
        norm, cfg.rules, n, rid_rank, _rank(sk) if n else sk, cfg.max_block_size, cfg.window)
    a, b = pairs[:, 0], pairs[:, 1]
    g = _gammas(norm, roles, a, b, role_codes)
    # u from pseudo-random pairs (buckets by hash of record id), m and lambda by EM
    nb = random_bucket_count(n, cfg.random_pairs)
    bucket = np.array([rid_bucket(str(x), nb) for x in rid_arr.tolist()], dtype=np.int64)
    border = np.lexsort((rid_rank, bucket))
    bsize = np.bincount(bucket, minlength=nb)
    bsize = bsize[bsize > 0]
    rpairs = _window_pairs(border, bucket[border], bsize, int(bsize.max()) if n else 1)
    rg = _gammas(norm, roles, rpairs[:, 0], rpairs[:, 1], role_codes)
    rlevels = _level_counts(rg)
    enc = _encode(g)
    patterns = _pattern_counts(enc, len(roles))
    uniq_codes = pairs[:, 0] * n + pairs[:, 1]
    session_patterns: dict[tuple[int, tuple[int, ...]], int] = {}
    for k, rc in enumerate(rule_codes):
        if len(rc):
            for pat, cnt in _pattern_counts(enc[np.searchsorted(uniq_codes, rc)],
                                            len(roles)).items():
                session_patterns[(k, pat)] = cnt
    model = fit_model(roles, session_patterns, training_sessions([r.roles for r in cfg.rules]),
                      patterns, rlevels, n, max_iterations=cfg.em_iterations, tf=cfg.tf)
    tf_w = []
    for j, r in enumerate(roles):  # one exact_weight call per distinct count
        if not n:
            tf_w.append(np.empty(0))
            continue
        distinct, inverse = np.unique(counts[r], return_inverse=True)
        tf_w.append(np.array([model.exact_weight(j, int(x)) for x in distinct.tolist()],
                             dtype=np.float64)[inverse.reshape(-1)])
    scores = _scores(model, g, a, tf_w)
    veto = _veto(g, roles)
    matched = (scores >= cfg.threshold) & ~veto
    # connected components, then the consistency split of each
    uf: UnionFind[int] = UnionFind(range(n))
    for x, y in pairs[matched].tolist():
        uf.union(x, y)
    components = uf.groups()
    clusters: list[list[int]] = []
    split = 0
    big = [c for c in components if len(c) > 2 and cfg.consistency and len(c) <= cfg.max_component]
    edge_of: dict[int, list[tuple[float, str, str]]] = {}
    if big:
        root = {x: i for i, c in enumerate(big) for x in c}
        for (x, y), s in zip(pairs[matched].tolist(), scores[matched].tolist(), strict=True):
            if x in root:
                rx, ry = str(rid_arr[x]), str(rid_arr[y])
                edge_of.setdefault(root[x], []).append((s, min(rx, ry), max(rx, ry)))
        ia, ib = [], []
        for c in big:
            cc = np.array(c, dtype=np.int64)
            ti, tj = np.triu_indices(len(c), 1)
            ia.append(cc[ti])
            ib.append(cc[tj])
        aa, bb = np.concatenate(ia), np.concatenate(ib)
        cg = _gammas(norm, roles, aa, bb, role_codes)
        cs = _scores(model, cg, aa, tf_w)
        bad = (cs < cfg.cannot_link_below) | _veto(cg, roles)
        cannot: dict[int, list[tuple[str, str]]] = {}
        for x, y in zip(aa[bad].tolist(), bb[bad].tolist(), strict=True):
            cannot.setdefault(root[x], []).append((str(rid_arr[x]), str(rid_arr[y])))
        pos = {str(r): i for i, r in enumerate(rid_arr.tolist())}
    bigset = {c[0] for c in big}
    for c in components:
        if c[0] not in bigset:
            clusters.append(c)
    for ci, c in enumerate(big):
        parts = consistent_clusters(sorted(str(rid_arr[x]) for x in c), edge_of.get(ci, []),
                                    cannot.get(ci, []))
        split += len(parts) > 1
        clusters.extend(sorted(pos[r] for r in p) for p in parts)
    clusters.sort(key=lambda c: c[0])
    return Linked(norm, pairs, scores, matched, clusters, components, model, rule_pairs,
                  placeholders, split)


def _veto(g: np.ndarray, roles: Sequence[str]) -> np.ndarray:
    if "given_name" not in roles or "dob" not in roles or not len(g):
        return np.zeros(len(g), dtype=bool)
    gi, di = roles.index("given_name"), roles.index("dob")
    out = (g[:, gi] == COMPARISONS["given_name"] - 1) & (g[:, di] == 3)
    if "national_id" in roles:
        ni = roles.index("national_id")
        out &= (g[:, ni] != 0) & (g[:, ni] != 1)
    result: np.ndarray = out
    return result


_ = (vetoed, count_levels, NormRecord)  # the per-record twins Beam uses live in model.py
