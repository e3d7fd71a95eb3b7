"""Normalise a raw record into role-keyed comparison values for entity resolution.

Why: users' tables name their columns differently (``given_name``/``surname`` in FEBRL, one
``name`` column in ours), so the linkage code never sees column names — only roles. Each role
has one normaliser that removes differences that carry no identity (case, accents, punctuation,
phone formatting, date formatting, street-type abbreviations), so the comparators only see
differences that might.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["ROLES", "NormRecord", "normalize_record", "normalize_text"]

#: Roles a column can play. ``full_name`` is split into given name and surname.
ROLES = (
    "given_name", "surname", "full_name", "email", "phone", "address", "street_number",
    "address2", "city", "postcode", "state", "dob", "national_id",
)
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


def normalize_text(value: Any) -> str:
    """NFKD, drop accents and apostrophes, casefold, keep letters/digits/spaces, collapse."""
    if value is None:
        return ""
    s = unicodedata.normalize("NFKD", str(value))
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).casefold()
    s = s.replace("'", "").replace("\u2019", "")  # O'Brien -> obrien, not "o brien"
    return _SPACES.sub(" ", _NON_ALNUM.sub(" ", s)).strip()


def _email(value: Any) -> str:
    s = str(value).strip().lower() if value is not None else ""
    return s if "@" in s else ""


def _phone(value: Any) -> str:
    digits = _DIGITS.sub("", str(value)) if value is not None else ""
    # the last 10 digits are the national number for NANP and close to it elsewhere:
    # "+1 415 ..." and "(415) ..." must compare equal
    return digits[-10:] if len(digits) >= 7 else ""


def _address(value: Any) -> str:
    words = normalize_text(value).split()
    return " ".join(_STREET_TYPES.get(w, w) for w in words)


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


def _alnum(value: Any) -> str:
    return normalize_text(value).replace(" ", "")


_NORMALISERS = {
    "given_name": normalize_text, "surname": normalize_text, "email": _email, "phone": _phone,
    "address": _address, "street_number": _alnum, "address2": normalize_text,
    "city": normalize_text, "postcode": _alnum, "state": _alnum, "dob": _dob,
    "national_id": _alnum,
}


def normalize_record(record: Mapping[str, Any], roles: Mapping[str, str]) -> NormRecord:
    """Map ``{column: value}`` to ``{role: normalised value}``; empty values are left out.

    ``roles`` maps column name → role (see :data:`ROLES`). A ``full_name`` fills ``given_name``
    (first word) and ``surname`` (last word) unless those roles have their own columns.
    """
    out: NormRecord = {}
    for column, role in roles.items():
        value = record.get(column)
        if role == "full_name":
            words = normalize_text(value).split()
            if words:
                out.setdefault("given_name", words[0])
                if len(words) > 1:
                    out.setdefault("surname", words[-1])
            continue
        v = _NORMALISERS[role](value)
        if v:
            out[role] = v
    return out
