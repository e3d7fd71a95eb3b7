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
import pyarrow as pa

from headwater.steps.linkage.blocking import BlockingRule, email_key, sort_key, transform
from headwater.steps.linkage.clustering import consistent_clusters
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
from headwater.steps.linkage.normalize import (
    _DOB_PART,
    NAME_ROLES,
    NORMALISERS,
    NormRecord,
    split_full_name,
)

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


def _distinct(values: Any) -> tuple[list[Any], np.ndarray]:
    """Distinct values of a column (a list, array or Arrow array; None kept as a value) and
    each row's code. Arrow columns are dictionary-encoded without making a Python object per
    row."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        enc = arr.dictionary_encode(null_encoding="encode")
        codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)
        return enc.dictionary.to_pylist(), codes
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    uniq, codes = _unique(arr)
    return uniq.tolist(), codes


def _map(fn: Any, values: Any) -> np.ndarray:
    """``fn`` of every row's value, called once per distinct value (object array)."""
    uniq, codes = _distinct(values)
    out = np.empty(len(uniq), dtype=object)
    out[:] = [fn(v) for v in uniq]
    result: np.ndarray = out[codes]
    return result


def normalize_columns(columns: Mapping[str, Any], roles: Mapping[str, str], n: int
                      ) -> dict[str, np.ndarray]:
    """Column-wise :func:`normalize_record`: role -> normalised values (one per row). A column
    is a sequence or an Arrow array."""
    out: dict[str, np.ndarray] = {}
    parts: dict[str, np.ndarray] = {}
    for column, role in roles.items():
        if role == "full_name":
            uniq, codes = _distinct(columns[column])
            split = [split_full_name(v) for v in uniq]
            for k, r in enumerate(("given_name", "second_given_name", "surname")):
                per = np.empty(len(split), dtype=object)
                per[:] = [x[k] for x in split]
                vals = per[codes]
                cur = out.get(r)
                out[r] = vals if cur is None else np.where(cur == "", vals, cur)
            continue
        vals = _map(NORMALISERS[role], columns[column])
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


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each run of equal values in sorted ``keys``."""
    if not len(keys):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    start = np.concatenate(([0], np.flatnonzero(keys[1:] != keys[:-1]) + 1))
    return start, np.diff(np.append(start, len(keys)))


def _window_pairs(order: np.ndarray, start: np.ndarray, size: np.ndarray,
                  span_of_group: np.ndarray, max_span: int) -> np.ndarray:
    """Pairs ``(order[p], order[p + d])`` with both in one group (group ``i`` is
    ``order[start[i]:start[i] + size[i]]``) and ``d`` below the group's span."""
    if len(order) < 2:
        return np.empty((0, 2), np.int64)
    gidx = np.repeat(np.arange(len(start)), size)
    pos = np.arange(len(order)) - start[gidx]
    end = size[gidx]
    span = span_of_group[gidx]
    out = []
    for d in range(1, max_span):
        ok = (pos + d < end) & (d < span)
        if not ok.any():
            break
        i = np.flatnonzero(ok)
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


def _block_pairs(role_values: Mapping[str, RoleValues], role_codes: Mapping[str, np.ndarray],
                 rules: Sequence[BlockingRule], n: int, member_rank: np.ndarray,
                 max_block: int, window: int) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Unique candidate pairs ``(a, b)``, ``a < b``, sorted; pairs per rule; and per unique
    pair the bit mask of the rules that yield it.

    A rule's key is an integer code (the parts' transforms run once per distinct value);
    ``member_rank`` orders a block's members as Beam's ``sorted((sort_key, record id))``.
    Pairs are de-duplicated across rules by sorting int64 codes ``(a * n + b) << bits | rule``.
    """
    bits = max(1, (len(rules) - 1).bit_length())
    if len(rules) > 62 or (n * n) << bits >= 1 << 63:
        raise ValueError(f"ID merge table path: {len(rules)} rules over {n} records is beyond "
                         "its pair codes; use Beam's IdMerge")
    parts: dict[tuple[str, int | None, str], np.ndarray] = {}
    packed: list[np.ndarray] = []
    counts: list[int] = []
    for k, rule in enumerate(rules):
        key = np.zeros(n, np.int64)
        ok = np.ones(n, dtype=bool)
        for part in rule.parts:
            if part not in parts:
                fn, num, role = part
                rv = role_values[role]
                if fn == "exact":  # the role's own codes (its values are distinct)
                    pcode = np.where(rv.present, np.arange(len(rv.values)), -1)
                else:
                    vals = [transform(fn, num, v) for v in rv.values]
                    pcode = np.asarray(pd.factorize(np.array(vals, dtype=object))[0], np.int64)
                    pcode[np.array([v == "" for v in vals], dtype=bool)] = -1
                parts[part] = pcode[role_codes[role]]
            pc = parts[part]
            ok &= pc >= 0
            key = np.asarray(pd.factorize(key * (int(pc.max()) + 2) + (pc + 1))[0], np.int64)
        idx = np.flatnonzero(ok)
        if len(idx) < 2:
            counts.append(0)
            continue
        order = idx[np.argsort(key[idx] * n + member_rank[idx])]
        start, size = _runs(key[order])
        span = np.where(rule.sorted_window | (size > max_block), window, size)
        pairs = _window_pairs(order, start, size, span, max(max_block, window))
        counts.append(len(pairs))
        lo, hi = pairs.min(axis=1), pairs.max(axis=1)
        packed.append(((lo * n + hi) << bits) | k)
        del pairs, lo, hi
    if not packed:
        return np.empty((0, 2), np.int64), counts, np.empty(0, np.int64)
    allp = np.concatenate(packed)
    del packed
    allp.sort()
    bit = allp & ((1 << bits) - 1)  # the rule of each code, then its bit
    np.left_shift(1, bit, out=bit)
    allp >>= bits
    start, _ = _runs(allp)
    mask = np.bitwise_or.reduceat(bit, start).astype(np.int64 if bits > 5 else np.int32)
    del bit
    uniq = allp[start]
    del allp, start
    out = np.empty((len(uniq), 2), np.int32 if n < 2**31 else np.int64)
    out[:, 0] = uniq // n
    out[:, 1] = uniq % n
    return out, counts, mask


#: pairs compared per chunk (bounds the temporaries of the array comparisons)
_CHUNK = 1 << 21
#: roles whose levels are exact / within one edit (e-mail: or same local part) / different
ONE_EDIT_ROLES = frozenset({"email", "phone", "national_id", "postcode", "street_number"})
#: roles compared by Jaro-Winkler alone, and the similarity that makes them close
_JW_ROLES = {"address": 0.88, "address2": 0.88, "city": 0.88}
_TABLE_VALUES = 1000  # a role with at most this many distinct values gets a table of levels
_EPS = 1e-9  # margin below a Jaro-Winkler threshold for a bound to decide "different"


class RoleValues:
    """The distinct normalised values of one role, and :func:`compare` of value pairs in bulk.

    Why: at 1M records there are ~20M candidate pairs and most are two strangers. ``levels``
    equals ``[compare(role, values[x], values[y]) for x, y in pairs]`` exactly, but decides with
    array operations every pair whose level is certain from cheap facts — a missing or equal
    value, the lengths, the characters two values share (an upper bound of Jaro-Winkler and of
    "within one edit"), the birth-date parts — and calls :func:`compare` only for the rest, once
    per distinct value pair. Beam's per-record path calls :func:`compare` directly, so both
    paths give the same levels.
    """

    def __init__(self, role: str, values: Sequence[str]) -> None:
        self.role = role
        self.values = list(values)
        nu = len(self.values)
        self.length = np.fromiter((len(v) for v in self.values), np.int64, nu)
        self.present = self.length > 0
        # byte matrices need plain ASCII without NUL (padding) or CR (jellyfish graphemes)
        self.ascii = all(v.isascii() and "\x00" not in v and "\r" not in v for v in self.values)
        self.short = self.ascii and (not nu or int(self.length.max()) < 256)
        self._chars: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._prefix4: np.ndarray | None = None
        self._dob: tuple[np.ndarray, ...] | None = None
        self._key: np.ndarray | None = None
        self._table: np.ndarray | None = None

    @property
    def chars(self) -> np.ndarray:
        """``(values, width)`` uint8 (ASCII) or uint32 code points, zero-padded."""
        if self._chars is None:
            width = max(1, int(self.length.max()) if len(self.length) else 1)
            if self.ascii:
                arr = np.array(self.values, dtype=f"S{width}").view(np.uint8)
            else:
                arr = np.array(self.values, dtype=f"<U{width}").view(np.uint32)
            self._chars = arr.reshape(len(self.values), width)
        return self._chars

    @property
    def hist(self) -> np.ndarray:
        """``(values, words)`` uint64: each value's character counts, one byte per character
        of the role's alphabet, eight to a word (ASCII values shorter than 256 only)."""
        if self._hist is None:
            chars = self.chars
            alphabet = np.flatnonzero(np.bincount(chars.ravel(), minlength=256)[1:]) + 1
            lut = np.zeros(256, np.int64)
            lut[alphabet] = np.arange(len(alphabet))
            words = max(1, -(-len(alphabet) // 8))
            hist = np.zeros((len(self.values), words * 8), np.uint8)
            for w in range(chars.shape[1]):
                rows = np.flatnonzero(chars[:, w])
                hist[rows, lut[chars[rows, w]]] += 1
            self._hist = hist.view(np.uint64)
        return self._hist

    @property
    def prefix4(self) -> np.ndarray:
        """Each value's first four bytes as one little-endian uint32 (zero-padded)."""
        if self._prefix4 is None:
            c = self.chars[:, :4]
            if c.shape[1] < 4:
                c = np.pad(c, ((0, 0), (0, 4 - c.shape[1])))
            self._prefix4 = np.ascontiguousarray(c).view("<u4").reshape(-1)
        return self._prefix4

    def _shared_chars(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """How many characters (with multiplicity) ``values[x]`` and ``values[y]`` share: the
        byte-wise minimum of the two count words, its bytes summed by one multiplication (no
        byte sum can carry: it is at most the shorter length, < 256)."""
        h = self.hist
        hx, hy = h[x], h[y]
        m = np.minimum(hx.view(np.uint8), hy.view(np.uint8)).view(np.uint64)
        m *= np.uint64(0x0101010101010101)
        m >>= np.uint64(56)
        out: np.ndarray = m.sum(axis=1, dtype=np.int64) if m.shape[1] > 1 else m[:, 0].astype(
            np.int64)
        return out

    def _jw_bound(self, x: np.ndarray, y: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """An upper bound of ``jellyfish.jaro_winkler_similarity``: Jaro's matches are at most
        the shared characters (no transpositions), the prefix bonus at most the real common
        prefix (up to 4)."""
        la, lb = self.length[x], self.length[y]
        m = shared.astype(np.float64)
        j = np.where(shared > 0, (m / np.maximum(la, 1) + m / np.maximum(lb, 1) + 1.0) / 3.0, 0.0)
        xor = self.prefix4[x] ^ self.prefix4[y]
        prefix = (((xor & 0xFF) == 0).astype(np.int64) + ((xor & 0xFFFF) == 0)
                  + ((xor & 0xFFFFFF) == 0) + (xor == 0))
        prefix = np.minimum(prefix, np.minimum(la, lb))
        out: np.ndarray = j + 0.1 * prefix * (1.0 - j)
        return out

    def _dob_parts(self) -> tuple[np.ndarray, ...]:
        """Per value: valid (8 digits), year, month, day, sorted year digits, reversed day,
        and the digit matrix."""
        if self._dob is None:
            c = self.chars.astype(np.int64)
            if c.shape[1] < 8:
                c = np.pad(c, ((0, 0), (0, 8 - c.shape[1])))
            d = c[:, :8] - 48
            valid = (self.length == 8) & ((d >= 0) & (d <= 9)).all(axis=1) & self.ascii
            d = np.where(valid[:, None], d, 0)
            year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
            ys = np.sort(d[:, :4], axis=1)
            ysorted = ys[:, 0] * 1000 + ys[:, 1] * 100 + ys[:, 2] * 10 + ys[:, 3]
            self._dob = (valid, year, d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7], ysorted,
                         d[:, 7] * 10 + d[:, 6], d.astype(np.int8))
        return self._dob

    def _dob_levels(self, x: np.ndarray, y: np.ndarray, res: np.ndarray) -> None:
        """:func:`model._compare_dob` in arrays, for pairs of two valid 8-digit dates."""
        valid, year, month, day, ysorted, dayrev, digits = self._dob_parts()
        k = np.flatnonzero((res == -2) & valid[x] & valid[y])
        if not len(k):
            return
        x, y = x[k], y[k]
        ya, yb, ma, mb, da, db = year[x], year[y], month[x], month[y], day[x], day[y]
        yk, mk, dk = (ya != 0) & (yb != 0), (ma != 0) & (mb != 0), (da != 0) & (db != 0)
        wy, wm, wd = yk & (ya != yb), mk & (ma != mb), dk & (da != db)
        wrong = wy.astype(np.int8) + wm + wd
        ydig = (digits[x, :4] != digits[y, :4]).sum(axis=1)
        ddig = (digits[x, 6:8] != digits[y, 6:8]).sum(axis=1)
        slip_year = wy & ((np.abs(ya - yb) == 1) | (ysorted[x] == ysorted[y]) | (ydig == 1))
        slip_day = (ma == mb) & wd & ((ddig == 1) | (dayrev[x] == db))
        lv = np.where(wrong == 1, np.where(slip_year | slip_day, 1, 2), 3)
        swap = (ma == db) & (da == mb) & (ya == yb) & (ma != 0) & (da != 0) & (mb != 0) & (db != 0)
        lv = np.where(swap, 1, lv)
        lv = np.where(wrong == 0, 0, lv)
        res[k] = np.where(yk | mk | dk, lv, MISSING)

    def levels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``compare(role, values[x[i]], values[y[i]])`` for every ``i`` (int8). A role with
        few distinct values (cities, states) and many pairs has every level in a table."""
        nu = len(self.values)
        if self._table is None and nu <= _TABLE_VALUES and len(x) > nu * nu:
            grid = np.arange(nu * nu)
            self._table = self._levels(grid // nu, grid % nu).reshape(nu, nu)
        if self._table is not None:
            out: np.ndarray = self._table[x, y]
            return out
        return self._levels(x, y)

    def _levels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        role = self.role
        res = np.full(len(x), -2, dtype=np.int8)
        res[~(self.present[x] & self.present[y])] = MISSING
        if role == "dob":
            self._dob_levels(x, y, res)
        else:
            res[(res == -2) & (x == y)] = 0
            if role == "state":
                res[res == -2] = 1
            elif role in NAME_ROLES:
                self._name_levels(x, y, res)
            elif role in _JW_ROLES and self.short:
                k = np.flatnonzero(res == -2)
                if len(k):
                    xk, yk = x[k], y[k]
                    bound = self._jw_bound(xk, yk, self._shared_chars(xk, yk))
                    res[k[bound < _JW_ROLES[role] - _EPS]] = 2
            elif role in ONE_EDIT_ROLES:
                self._one_edit_levels(x, y, res)
        rest = np.flatnonzero(res == -2)
        if len(rest):
            nu = len(self.values)
            pair = x[rest].astype(np.int64) * nu + y[rest]
            code, distinct = pd.factorize(pair)
            vals = self.values
            lv = np.array([compare(role, vals[p // nu], vals[p % nu])
                           for p in distinct.tolist()], dtype=np.int8)
            res[rest] = lv[code]
        return res

    def _name_levels(self, x: np.ndarray, y: np.ndarray, res: np.ndarray) -> None:
        k = np.flatnonzero(res == -2)
        if not len(k) or not self.short:
            return
        xk, yk = x[k], y[k]
        la, lb = self.length[xk], self.length[yk]
        initial = (la == 1) | (lb == 1)
        first = self.chars[:, 0]
        res[k[initial]] = np.where(first[xk[initial]] == first[yk[initial]], 2, 3)
        k, xk, yk, la, lb = k[~initial], xk[~initial], yk[~initial], la[~initial], lb[~initial]
        shared = self._shared_chars(xk, yk)
        may_be_one_edit = (np.abs(la - lb) <= 1) & (shared >= np.maximum(la, lb) - 1)
        far = ~may_be_one_edit & (self._jw_bound(xk, yk, shared) < 0.80 - _EPS)
        res[k[far]] = 3

    def _one_edit_levels(self, x: np.ndarray, y: np.ndarray, res: np.ndarray) -> None:
        """Exact / within one edit (e-mail: or the same local part) / different: "different"
        is certain when the lengths are two apart, when equal lengths differ in more than two
        places, or when too few characters are shared for one edit."""
        if self.role == "email":
            if self._key is None:
                self._key = pd.factorize(np.array(
                    [email_key(v) if v else "" for v in self.values], dtype=object))[0]
            res[(res == -2) & (self._key[x] == self._key[y])] = 1
        la, lb = self.length[x], self.length[y]
        dlen = np.abs(la - lb)
        res[(res == -2) & (dlen > 1)] = 2
        k = np.flatnonzero(res == -2)
        if not len(k):
            return
        if self.short:
            far = self._shared_chars(x[k], y[k]) < np.maximum(la[k], lb[k]) - 1
            res[k[far]] = 2
            k = k[~far]
        k = k[dlen[k] == 0]
        if len(k):
            c = self.chars
            res[k[(c[x[k]] != c[y[k]]).sum(axis=1) > 2]] = 2


def _gammas(roles: Sequence[str], a: np.ndarray, b: np.ndarray,
            role_values: Mapping[str, RoleValues], role_codes: Mapping[str, np.ndarray]
            ) -> np.ndarray:
    """(k, len(roles)) int8 levels of pairs ``(a[i], b[i])``: :func:`model.gamma` in bulk,
    swapped given name and surname included, in chunks of :data:`_CHUNK` pairs."""
    out = np.full((len(a), len(roles)), MISSING, dtype=np.int8)
    swap = "given_name" in roles and "surname" in roles
    if swap:
        gi, si = roles.index("given_name"), roles.index("surname")
        gv, sv = role_values["given_name"], role_values["surname"]
        letters: dict[str, int] = {"": 0}
        g1 = np.array([letters.setdefault(v[:1], len(letters)) for v in gv.values], np.int64)
        s1 = np.array([letters.setdefault(v[:1], len(letters)) for v in sv.values], np.int64)
    for lo in range(0, len(a), _CHUNK):
        aa, bb = a[lo:lo + _CHUNK], b[lo:lo + _CHUNK]
        g = out[lo:lo + _CHUNK]
        for j, role in enumerate(roles):
            code = role_codes[role]
            g[:, j] = role_values[role].levels(code[aa], code[bb])
        if not swap:
            continue
        gc, sc = role_codes["given_name"], role_codes["surname"]
        ga, sa, gb, sb = gc[aa], sc[aa], gc[bb], sc[bb]
        maybe = np.flatnonzero((g[:, gi] >= 2) & (g[:, si] >= 2) & (g1[ga] == s1[sb])
                               & (s1[sa] == g1[gb]) & (g1[ga] != 0))
        if not len(maybe):
            continue
        gvals, svals = gv.values, sv.values
        sw = np.array([swapped(int(g[k, gi]), int(g[k, si]), gvals[w], svals[x], gvals[y],
                               svals[z])
                       for k, w, x, y, z in zip(maybe.tolist(), ga[maybe].tolist(),
                                                sa[maybe].tolist(), gb[maybe].tolist(),
                                                sb[maybe].tolist(), strict=True)], dtype=bool)
        g[maybe[sw], gi] = 1
        g[maybe[sw], si] = 1
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


def link_table(columns: Mapping[str, Any], rids: Sequence[str], cfg: LinkConfig,
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
        pair = pd.unique(code.astype(np.int64) * (int(sig_code.max()) + 1) + sig_code)
        people = np.bincount((pair // (int(sig_code.max()) + 1)).astype(np.int64),
                             minlength=len(uniq))
        bad = (people >= cfg.placeholder_people) & (uniq != "")
        if bad.any():
            placeholders[r] = int(bad.sum())
            norm[r] = np.where(bad[code], "", norm[r]).astype(object)
    role_values: dict[str, RoleValues] = {}
    role_codes: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for r in roles:
        uniq, code = _unique(norm[r])
        role_values[r] = RoleValues(r, uniq.tolist())
        role_codes[r] = code
        counts[r] = np.bincount(code, minlength=len(uniq))[code] if n else code
    sk = np.array([sort_key({"surname": s, "given_name": g, "dob": d}) for s, g, d in zip(
        norm.get("surname", empty).tolist(), norm.get("given_name", empty).tolist(),
        norm.get("dob", empty).tolist(), strict=True)], dtype=object)
    member_rank = np.empty(n, np.int64)
    member_rank[np.lexsort((rid_rank, _rank(sk)))] = np.arange(n)
    del sk
    pairs, rule_pairs, rule_mask = _block_pairs(
        role_values, role_codes, cfg.rules, n, member_rank, cfg.max_block_size, cfg.window)
    a, b = pairs[:, 0], pairs[:, 1]
    g = _gammas(roles, a, b, role_values, role_codes)
    # u from pseudo-random pairs (buckets by hash of record id), m and lambda by EM
    nb = random_bucket_count(n, cfg.random_pairs)
    bucket = np.array([rid_bucket(str(x), nb) for x in rid_arr.tolist()], dtype=np.int64)
    border = np.lexsort((rid_rank, bucket))
    bstart, bsize = _runs(bucket[border])
    rpairs = _window_pairs(border, bstart, bsize, bsize, int(bsize.max()) if n else 1)
    rg = _gammas(roles, rpairs[:, 0], rpairs[:, 1], role_values, role_codes)
    rlevels = _level_counts(rg)
    # comparison patterns as small integers: overall counts and counts per blocking rule
    pat_id, pat_codes = pd.factorize(_encode(g))
    pat_id = np.asarray(pat_id, np.int64)
    pats = [_decode(int(c), len(roles)) for c in np.asarray(pat_codes).tolist()]
    patterns = dict(zip(pats, np.bincount(pat_id, minlength=len(pats)).tolist(), strict=True))
    session_patterns: dict[tuple[int, tuple[int, ...]], int] = {}
    for k in range(len(cfg.rules)):
        sel = pat_id[(rule_mask >> k) & 1 == 1]
        for pat, cnt in zip(pats, np.bincount(sel, minlength=len(pats)).tolist(), strict=True):
            if cnt:
                session_patterns[(k, pat)] = cnt
    del pat_id, rule_mask
    model = fit_model(roles, session_patterns, training_sessions([r.roles for r in cfg.rules]),
                      {p: c for p, c in patterns.items() if c}, rlevels, n,
                      max_iterations=cfg.em_iterations, tf=cfg.tf)
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
    components = _components(n, pairs[matched])
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
        tri: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in big:
            cc = np.array(c, dtype=np.int64)
            if len(c) not in tri:
                tri[len(c)] = np.triu_indices(len(c), 1)
            ti, tj = tri[len(c)]
            ia.append(cc[ti])
            ib.append(cc[tj])
        aa, bb = np.concatenate(ia), np.concatenate(ib)
        cg = _gammas(roles, aa, bb, role_values, role_codes)
        cs = _scores(model, cg, aa, tf_w)
        bad = (cs < cfg.cannot_link_below) | _veto(cg, roles)
        cannot: dict[int, list[tuple[str, str]]] = {}
        for x, y in zip(aa[bad].tolist(), bb[bad].tolist(), strict=True):
            cannot.setdefault(root[x], []).append((str(rid_arr[x]), str(rid_arr[y])))
        pos = {str(rid_arr[x]): x for x in root}
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


def _components(n: int, edges: np.ndarray) -> list[list[int]]:
    """Connected components of records ``0..n-1`` joined by ``edges``, as
    :meth:`UnionFind.groups` gives them (each sorted, ordered by smallest member), in arrays:
    roots hook onto the smaller label across each edge, then labels jump to their roots, until
    every edge is inside one label (the label is the component's smallest member)."""
    label = np.arange(n)
    a, b = edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64)
    while len(a):
        la, lb = label[a], label[b]
        if (la == lb).all():
            break
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:
            jumped = label[label]
            if (jumped == label).all():
                break
            label = jumped
    order = np.argsort(label, kind="stable")
    start, size = _runs(label[order])
    flat = order.tolist()
    return [flat[s:s + z] for s, z in zip(start.tolist(), size.tolist(), strict=True)]


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
