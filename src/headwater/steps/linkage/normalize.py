"""Normalise a raw record into role-keyed comparison values for entity resolution.

Why: users' tables name their columns differently (``given_name``/``surname`` in FEBRL, one
``name`` column in ours, birth dates whole or in parts), so the linkage code never sees column
names — only roles. Each role has one normaliser that removes differences that carry no identity
(script, case, accents, punctuation, phone formatting, date formatting, street-type
abbreviations), so the comparators only see differences that might.

Text is transliterated to Latin with ``anyascii`` (``Дмитрий`` → ``dmitriy``, ``Γιώργος`` →
``giorgos``, ``王小明`` → ``wangxiaoming``) for comparison only; the step's output keeps the
original values. Placeholders (``noreply@…``, ``000-000-0000``, ``unknown``, ``n/a``) normalise
to nothing, so they are missing values that weigh nothing; values shared by many different people
are found from the data in :mod:`headwater.steps.linkage.model`.

A birth date is kept as ``YYYYMMDD`` with ``0000``/``00`` for an unknown part, whether it came
whole (role ``dob``) or in parts (``birth_year``, ``birth_month``, ``birth_day``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from anyascii import anyascii

__all__ = ["NAME_ROLES", "ROLES", "NormRecord", "is_placeholder", "normalize_record",
           "normalize_text"]

#: Roles a column can play. ``full_name`` is split into given name(s) and surname; the birth
#: parts are merged into ``dob``.
ROLES = (
    "given_name", "second_given_name", "surname", "second_surname", "full_name", "email", "phone",
    "address", "street_number", "address2", "city", "postcode", "state", "dob", "birth_year",
    "birth_month", "birth_day", "national_id",
)
NAME_ROLES = ("given_name", "second_given_name", "surname", "second_surname")
NormRecord = dict[str, str]

_NON_ALNUM = re.compile(r"[^0-9a-z ]+")
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\D+")
_STREET_TYPES = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "lane": "ln",
    "court": "ct", "boulevard": "blvd", "place": "pl", "crescent": "cres", "circuit": "cct",
    "terrace": "tce", "highway": "hwy", "parade": "pde", "close": "cl", "square": "sq",
}
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%m/%d/%Y", "%d %b %Y", "%b %d, %Y",
                 "%d.%m.%Y", "%d %B %Y", "%B %d, %Y")
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
#: Normalised text values that mean "no value".
PLACEHOLDER_TEXT = frozenset({
    "unknown", "unk", "n a", "na", "none", "null", "nil", "nan", "test", "xxx", "xx", "x",
    "not known", "not available", "anonymous", "no name", "noname", "tbd", "tba", "0",
})
_PLACEHOLDER_LOCALS = frozenset({
    "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply", "none",
    "null", "test", "unknown", "na", "n/a", "nobody", "email", "mail", "noemail", "no-email",
    "example", "user", "info", "admin", "abc", "xxx", "x",
})
_PLACEHOLDER_DOMAINS = frozenset({"example.com", "example.org", "example.net", "test.com",
                                  "email.com", "domain.com", "none.com", "noemail.com"})


def _translit(value: Any) -> str:
    s = str(value)
    return s if s.isascii() else anyascii(s)


def normalize_text(value: Any) -> str:
    """Transliterate to ASCII, drop apostrophes, casefold, keep letters/digits/spaces."""
    if value is None:
        return ""
    s = _translit(value).casefold()
    s = s.replace("'", "").replace("`", "")  # O'Brien -> obrien, not "o brien"
    return _SPACES.sub(" ", _NON_ALNUM.sub(" ", s)).strip()


def _name(value: Any) -> str:
    s = normalize_text(value)
    return "" if s in PLACEHOLDER_TEXT else s


def _email(value: Any) -> str:
    s = _translit(value).strip().lower() if value is not None else ""
    if "@" not in s:
        return ""
    local, _, domain = s.rpartition("@")
    if local in _PLACEHOLDER_LOCALS or domain in _PLACEHOLDER_DOMAINS or not local or not domain:
        return ""
    return s


def _phone(value: Any) -> str:
    digits = _DIGITS.sub("", str(value)) if value is not None else ""
    # the last 10 digits are the national number for NANP and close to it elsewhere:
    # "+1 415 ..." and "(415) ..." must compare equal
    digits = digits[-10:] if len(digits) >= 7 else ""
    if digits and (len(set(digits)) == 1 or digits in "01234567890" or digits in "9876543210"):
        return ""  # 000-000-0000, 1234567890 ...
    return digits


def _address(value: Any) -> str:
    words = normalize_text(value).split()
    s = " ".join(_STREET_TYPES.get(w, w) for w in words)
    return "" if s in PLACEHOLDER_TEXT else s


def _dob(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.strftime("%Y%m%d")
    s = str(value).strip()
    digits = _DIGITS.sub("", s)
    if len(digits) == 8 and digits[:2] in ("19", "20") and (s.isdigit() or s[4:5] in "-/"):
        return digits
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(s, fmt).strftime("%Y%m%d")
        except ValueError:
            continue
    return digits if len(digits) == 8 else ""


def _year(value: Any) -> str:
    d = _DIGITS.sub("", str(value)) if value is not None else ""
    return d if len(d) == 4 and d[:2] in ("18", "19", "20") else ""


def _month(value: Any) -> str:
    if value is None:
        return ""
    s = str(value).strip().lower()
    if s[:3] in _MONTHS:
        return f"{_MONTHS[s[:3]]:02d}"
    d = _DIGITS.sub("", s)
    return f"{int(d):02d}" if d and len(d) <= 2 and 1 <= int(d) <= 12 else ""


def _day(value: Any) -> str:
    d = _DIGITS.sub("", str(value)) if value is not None else ""
    return f"{int(d):02d}" if d and len(d) <= 2 and 1 <= int(d) <= 31 else ""


def _alnum(value: Any) -> str:
    s = normalize_text(value).replace(" ", "")
    return "" if s in PLACEHOLDER_TEXT or (len(set(s)) == 1 and s[:1] in "0x") else s


NORMALISERS = {
    "given_name": _name, "second_given_name": _name, "surname": _name, "second_surname": _name,
    "email": _email, "phone": _phone, "address": _address, "street_number": _alnum,
    "address2": _address, "city": _name, "postcode": _alnum, "state": _alnum, "dob": _dob,
    "birth_year": _year, "birth_month": _month, "birth_day": _day, "national_id": _alnum,
}
_DOB_PART = {"birth_year": (0, 4), "birth_month": (4, 6), "birth_day": (6, 8)}


def is_placeholder(role: str, value: Any) -> bool:
    """True if ``value`` is present but means "no value" for ``role``."""
    return value not in (None, "") and not NORMALISERS.get(role, _name)(value)


def split_full_name(value: Any) -> tuple[str, str, str]:
    """``(given, second given, surname)`` of a whole name (first, middle words, last)."""
    words = _name(value).split()
    if not words:
        return "", "", ""
    if len(words) == 1:
        return words[0], "", ""
    return words[0], " ".join(words[1:-1]), words[-1]


def normalize_record(record: Mapping[str, Any], roles: Mapping[str, str]) -> NormRecord:
    """Map ``{column: value}`` to ``{role: normalised value}``; empty values are left out.

    ``roles`` maps column name → role (see :data:`ROLES`). A ``full_name`` fills ``given_name``
    (first word), ``second_given_name`` (middle words) and ``surname`` (last word) unless those
    roles have their own columns. Birth parts fill ``dob`` part by part.
    """
    out: NormRecord = {}
    parts: dict[str, str] = {}
    for column, role in roles.items():
        value = record.get(column)
        if role == "full_name":
            for r, v in zip(("given_name", "second_given_name", "surname"),
                            split_full_name(value), strict=True):
                if v:
                    out.setdefault(r, v)
            continue
        v = NORMALISERS[role](value)
        if not v:
            continue
        if role in _DOB_PART:
            parts[role] = v
        else:
            out[role] = v
    if parts and "dob" not in out:
        out["dob"] = (parts.get("birth_year", "0000") + parts.get("birth_month", "00")
                      + parts.get("birth_day", "00"))
    return out
