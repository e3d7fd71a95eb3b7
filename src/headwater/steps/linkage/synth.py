"""Noisy person records with split name and date fields, for ID-merge tests and benchmarks.

Why: FEBRL's noise never splits a birth date into parts or writes a name in another script, so
a matcher tuned on it can fail on users' tables. Each person gets 1-4 records; a repeat has,
with the given probabilities, a typo in one name part, a typo in *one* birth-date part (year
digit, month, day, or day/month transposed), its name in Cyrillic or Greek (or the Latin
transliteration of a name first written that way), a dropped e-mail/phone, a placeholder contact
(``noreply@example.com``, ``000-000-0000``) and households: relatives with the same surname,
address and landline but their own first name and birth date. Columns: ``record_id``,
``first_name``, ``middle_name``, ``last_name``, ``birth_year``, ``birth_month``,
``birth_day``, ``email``, ``phone``, ``street``, ``city``, ``person_id`` (truth).

    from headwater.steps.linkage.synth import SYNTH_ROLES, generate_people
    table = generate_people(10_000, seed=1)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["SYNTH_ROLES", "generate_people"]

SYNTH_ROLES: dict[str, str] = {
    "first_name": "given_name",
    "middle_name": "second_given_name",
    "last_name": "surname",
    "birth_year": "birth_year",
    "birth_month": "birth_month",
    "birth_day": "birth_day",
    "email": "email",
    "phone": "phone",
    "street": "address",
    "city": "city",
}
_FIRST = [
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "daniel",
    "nancy",
    "matthew",
    "lisa",
    "anthony",
    "betty",
    "mark",
    "margaret",
    "donald",
    "sandra",
    "steven",
    "ashley",
    "paul",
    "kimberly",
    "andrew",
    "emily",
    "joshua",
    "donna",
    "kenneth",
    "michelle",
    "kevin",
    "carol",
    "brian",
    "amanda",
    "george",
    "melissa",
    "timothy",
    "deborah",
    "ivan",
    "olga",
    "dmitri",
    "elena",
    "sergei",
    "anna",
    "nikolai",
    "tatiana",
    "georgios",
    "maria",
    "nikos",
    "eleni",
    "wei",
    "ling",
    "hiroshi",
    "yuki",
    "ahmed",
    "fatima",
    "carlos",
    "lucia",
]
_LAST = [
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "ivanov",
    "petrov",
    "smirnov",
    "volkov",
    "papadopoulos",
    "nikolaidis",
    "wang",
    "chen",
    "tanaka",
    "kowalski",
    "novak",
    "horvat",
    "okafor",
    "mensah",
]
_CITIES = [
    "springfield",
    "riverside",
    "franklin",
    "greenville",
    "bristol",
    "clinton",
    "fairview",
    "salem",
    "madison",
    "georgetown",
    "arlington",
    "ashland",
    "dover",
    "oxford",
    "jackson",
    "burlington",
    "manchester",
    "milton",
]
_STREETS = [
    "oak",
    "maple",
    "cedar",
    "pine",
    "elm",
    "washington",
    "lake",
    "hill",
    "park",
    "main",
    "church",
    "mill",
]
_CYR = dict(zip("abvgdezijklmnoprstufhc", "абвгдезийклмнопрстуфхц", strict=True))
_GRK = dict(zip("abgdezhiklmnxoprstyfcw", "αβγδεζηικλμνξοπρστυφχω", strict=True))


def _typo(rng: np.random.Generator, s: str) -> str:
    if len(s) < 3:
        return s
    i = int(rng.integers(1, len(s) - 1))
    k = int(rng.integers(0, 3))
    if k == 0:
        return s[:i] + s[i + 1 :]
    if k == 1:
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    return s[:i] + "aeioustrn"[int(rng.integers(0, 9))] + s[i + 1 :]


def _script(s: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in s.lower()).title()


def generate_people(
    n_records: int,
    *,
    seed: int = 0,
    typo: float = 0.35,
    date_slip: float = 0.35,
    script: float = 0.1,
    drop: float = 0.2,
    placeholder: float = 0.05,
    household: float = 0.15,
) -> pa.Table:
    """About ``n_records`` records (every person 1-4 of them) with the truth in ``person_id``."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[object]] = {
        k: []
        for k in (
            "record_id",
            "first_name",
            "middle_name",
            "last_name",
            "birth_year",
            "birth_month",
            "birth_day",
            "email",
            "phone",
            "street",
            "city",
            "person_id",
        )
    }
    pid = 0
    while len(cols["record_id"]) < n_records:
        base_last = _LAST[int(rng.integers(0, len(_LAST)))]
        street = f"{int(rng.integers(1, 999))} {_STREETS[int(rng.integers(0, len(_STREETS)))]} st"
        city = _CITIES[int(rng.integers(0, len(_CITIES)))]
        landline = (
            f"{int(rng.integers(200, 999))}-{int(rng.integers(200, 999))}-"
            f"{int(rng.integers(0, 9999)):04d}"
        )
        members = 1 + (int(rng.integers(1, 4)) if rng.random() < household else 0)
        for _ in range(members):
            first = _FIRST[int(rng.integers(0, len(_FIRST)))]
            middle = _FIRST[int(rng.integers(0, len(_FIRST)))] if rng.random() < 0.3 else ""
            y, m, d = (
                int(rng.integers(1935, 2006)),
                int(rng.integers(1, 13)),
                int(rng.integers(1, 29)),
            )
            email = f"{first}.{base_last}{int(rng.integers(1, 9999))}@mail.test"
            phone = (
                landline
                if members > 1
                else f"{int(rng.integers(200, 999))}-555-{int(rng.integers(0, 9999)):04d}"
            )
            n_rec = int(rng.choice([1, 2, 3, 4], p=[0.45, 0.3, 0.15, 0.1]))
            for k in range(n_rec):
                if len(cols["record_id"]) >= n_records:
                    break
                f, mi, la, yy, mm, dd = first, middle, base_last, y, m, d
                em: str | None = email
                ph: str | None = phone
                if k > 0:
                    if rng.random() < typo:
                        if rng.random() < 0.5:
                            f = _typo(rng, f)
                        else:
                            la = _typo(rng, la)
                    if rng.random() < date_slip:
                        which = int(rng.integers(0, 4))
                        if which == 0:
                            yy = yy + (1 if rng.random() < 0.5 else -1)
                        elif which == 1:
                            mm = int(rng.integers(1, 13))
                        elif which == 2:
                            dd = int(rng.integers(1, 29))
                        elif dd <= 12:
                            mm, dd = dd, mm
                    if rng.random() < drop:
                        em = None
                    if rng.random() < drop:
                        ph = None
                    if rng.random() < 0.3:
                        mi = ""
                if rng.random() < script:
                    tab = _CYR if rng.random() < 0.5 else _GRK
                    f, la = _script(f, tab), _script(la, tab)
                if rng.random() < placeholder:
                    em, ph = "noreply@example.com", "000-000-0000"
                cols["record_id"].append(f"p{len(cols['record_id']):08d}")
                cols["first_name"].append(f.title())
                cols["middle_name"].append(mi.title() or None)
                cols["last_name"].append(la.title())
                cols["birth_year"].append(str(yy))
                cols["birth_month"].append(str(mm))
                cols["birth_day"].append(str(dd))
                cols["email"].append(em)
                cols["phone"].append(ph)
                cols["street"].append(street)
                cols["city"].append(city.title())
                cols["person_id"].append(pid)
            pid += 1
    return pa.table(cols)
