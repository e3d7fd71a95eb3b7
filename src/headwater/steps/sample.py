"""Seeded generator of realistic raw user records, for the demo, the tests and the benchmarks.

Why: the steps need data that looks like what users load — the same person signing up several
times with typos and differently formatted phones/emails/dates, spam accounts whose free text
reads like SMS spam, and rows that are plainly invalid — together with the ground truth to measure
quality against. Ground-truth columns start with ``_`` (``_true_person_id``, ``_is_spam``,
``_invalid_reason``); steps treat them as ordinary pass-through columns and tests read them.

The same ``(n_records, seed, ...)`` always gives the same table, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from headwater.steps.base import StepParams

__all__ = ["SAMPLE_ROLES", "SAMPLE_SCHEMA", "SampleParams", "generate_users"]


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


FIRST = _words(
    "james mary robert patricia john jennifer michael linda david elizabeth william barbara "
    "richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy "
    "matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily "
    "andrew donna joshua michelle kenneth carol kevin amanda brian dorothy george melissa "
    "timothy deborah ronald stephanie edward rebecca jason sharon jeffrey laura ryan cynthia "
    "jacob kathleen gary amy nicholas angela eric shirley jonathan anna stephen brenda larry "
    "pamela justin emma scott nicole brandon helen benjamin samantha samuel katherine gregory "
    "christine alexander debra frank rachel patrick carolyn raymond janet jack catherine "
    "dennis maria jerry heather tyler diane aaron ruth jose julie adam olivia nathan joyce "
    "henry virginia zachary victoria douglas kelly peter lauren kyle christina noah joan "
    "ethan evelyn jeremy judith walter megan christian andrea keith cheryl roger hannah terry "
    "jacqueline austin martha sean gloria gerald teresa carl ann harold sara dylan madison "
    "arthur frances lawrence kathryn jordan janice jesse jean bryan abigail billy alice bruce "
    "judy gabriel sophia joe grace logan denise albert amber willie doris alan marilyn juan "
    "danielle wayne beverly elijah isabella randy theresa roy diana vincent natalie ralph "
    "brittany eugene charlotte russell marie bobby kayla mason alexis philip lori louis zoe "
    "mei haruto aisha omar priya arjun chen wei fatima ahmed sofia mateo lucia diego yuki "
    "kenji ngozi kwame"
)
LAST = _words(
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez "
    "lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson "
    "white harris sanchez clark ramirez lewis robinson walker young allen king wright scott "
    "torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter "
    "roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart "
    "morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed "
    "kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray "
    "mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez "
    "powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales "
    "fisher vasquez simmons romero jordan patterson alexander hamilton graham reynolds "
    "griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina aguilar "
    "stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington "
    "kennedy wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson "
    "porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer "
    "wagner black robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza "
    "daniels ferguson nichols stephens soto weaver ryan gardner payne grant dunn kelley "
    "spencer hawkins arnold pierce vazquez hansen peters santos hart bradley knight elliott "
    "cunningham duncan armstrong hudson carroll lane riley andrews alvarado ray delgado berry "
    "perkins hoffman johnston matthews pena richards okafor nakamura kowalski novak schneider "
    "fischer rossi ferrari dubois moreau yamamoto tanaka wang zhang liu singh kumar sharma "
    "ali hassan ivanova petrov jensen larsen"
)
STREETS = _words(
    "main oak pine maple cedar elm washington lake hill park view sunset river spring church "
    "willow highland mill forest meadow ridge valley north south west east center jackson "
    "lincoln madison franklin jefferson chestnut walnut cherry birch dogwood"
)
STREET_TYPES = (
    ("street", "st"),
    ("avenue", "ave"),
    ("road", "rd"),
    ("drive", "dr"),
    ("lane", "ln"),
    ("court", "ct"),
    ("boulevard", "blvd"),
    ("place", "pl"),
)
CITIES = _words(
    "new york|los angeles|chicago|houston|phoenix|philadelphia|san antonio|san diego|dallas|"
    "austin|jacksonville|fort worth|columbus|charlotte|indianapolis|seattle|denver|boston|"
    "el paso|nashville|detroit|portland|las vegas|memphis|louisville|baltimore|milwaukee|"
    "albuquerque|tucson|fresno|sacramento|kansas city|atlanta|miami|raleigh|omaha|oakland|"
    "minneapolis|tulsa|cleveland|wichita|arlington|new orleans|tampa|honolulu|aurora|anaheim",
    "|",
)
AREA_CODES = _words(
    "212 213 214 215 202 206 303 305 312 313 314 404 412 415 469 503 512 602 614 617 646 702 "
    "713 718 720 773 804 808 818 832 858 901 916 919 949 971 980"
)
DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
    "fastmail.com",
    "example.org",
    "mail.com",
    "aol.com",
)

HAM_OPENERS = (
    "Hi, I'm {first}.",
    "Hello!",
    "Hey there,",
    "Hi all -",
    "Good morning.",
    "{first} here.",
    "Hi,",
    "Hello from {city}!",
    "",
    "Greetings,",
)
HAM_BODIES = (
    "I signed up to keep track of my running workouts and maybe join a club.",
    "Looking forward to sharing recipes with my family on here.",
    "My sister recommended this app for organising our book club meetings.",
    "I'm a nurse working nights, hoping to find a quieter way to plan my week.",
    "Just moved to {city} and want to meet people who like hiking.",
    "I teach maths at a middle school and I'm trying this out for class projects.",
    "Can someone tell me how to change my profile picture? Thanks.",
    "I mostly want to follow the gardening groups, tomatoes are my thing.",
    "Our team is testing this for planning sprints, seems nice so far.",
    "I play guitar in a small band and we need somewhere to share practice notes.",
    "Trying to get back into photography after a long break.",
    "I volunteer at the animal shelter on weekends and help with adoptions.",
    "Is there a way to export my data later? Asking before I commit.",
    "Retired engineer, interested in woodworking and local history.",
    "Student at the community college, studying accounting this year.",
    "I'd like to find other parents to organise carpools for school.",
    "We run a small bakery and want to keep in touch with regulars.",
    "Love cycling, coffee and bad puns. Say hi if you're nearby.",
    "I found the sign-up a bit confusing but got there in the end.",
    "Looking for a chess partner, I'm rated around 1400 online.",
    "Working from home mostly, keen to join the remote workers group.",
    "See you at the meetup on Thursday, I'll bring the slides.",
)
HAM_CLOSERS = ("Thanks!", "Cheers, {first}", "", "Have a good day.", ":)", "Bye for now.", "")
SPAM_TEMPLATES = (
    "WINNER!! As a valued customer you have been selected to receive a £{amt} prize reward! "
    "To claim call 09{d8} now. Claim code KL{d3}. Valid 12 hours only.",
    "URGENT! Your mobile number has won a {amt} cash award. To claim txt CLAIM to {d5} now. "
    "T&Cs apply, 16+ only. Stop? txt STOP",
    "FREE entry into our weekly comp to win an iPhone! Just text WIN to {d5} to receive entry "
    "question. Std txt rate. T&C's apply 18+",
    "Congratulations ur awarded {amt} of CD vouchers or a free holiday! Call 0871{d7} now! "
    "Only 10p per min. Txt STOP to opt out",
    "You have been specially selected for a FREE mobile upgrade! Call free on 0800{d7} "
    "to claim your camera phone today. Offer ends soon.",
    "Your account is due a refund of £{amt}. Reply with your bank details or call 09{d8} "
    "to claim. Customer service announcement.",
    "Hot singles in your area want to chat now! Txt DATE to {d5}. £1.50/msg, 18+ only. "
    "Unsubscribe send STOP.",
    "Get the latest ringtones FREE! Reply TONE to {d5}. Subscription £3/wk, cancel anytime "
    "by texting STOP to {d5}.",
    "PRIVATE! Your {year} account statement shows {d3} unredeemed bonus points. "
    "Call 0870{d7} to claim your prize. Identifier code {d5}. Expires soon",
    "Dear customer, you won a guaranteed £{amt} award or a 2 week holiday! "
    "Call 09{d8} from a landline. Claim code ZX{d3}. Valid 12hrs",
    "Earn £{amt} a week working from home! No experience needed. Text JOB to {d5} now, "
    "limited places. Msg&data rates may apply",
    "Cheap loans approved in minutes, bad credit OK! Call free 0800{d7} or txt LOAN to {d5}.",
)

SAMPLE_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("name", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("address", pa.string()),
        ("city", pa.string()),
        ("dob", pa.string()),
        ("signup_text", pa.string()),
        ("job_seeker", pa.int8()),
        ("_true_person_id", pa.int64()),
        ("_is_spam", pa.bool_()),
        ("_invalid_reason", pa.string()),
    ]
)

#: How the sample's columns map to the id-merge roles.
SAMPLE_ROLES: dict[str, str] = {
    "name": "full_name",
    "email": "email",
    "phone": "phone",
    "address": "address",
    "city": "city",
    "dob": "dob",
}


@dataclass(frozen=True)
class SampleParams(StepParams):
    """Size, seed and the mix of the generated records."""

    STEP = "sample"

    n_records: int = 1000
    seed: int = 0
    duplicate_rate: float = 0.3
    spam_rate: float = 0.05
    invalid_rate: float = 0.03

    def validate(self) -> None:
        if not isinstance(self.n_records, int) or self.n_records < 0:
            raise self.bad("n_records", f"must be an int >= 0, got {self.n_records!r}")
        if not isinstance(self.seed, int):
            raise self.bad("seed", f"must be an int, got {self.seed!r}")
        for name in ("duplicate_rate", "spam_rate", "invalid_rate"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                raise self.bad(name, f"must be a number in [0, 1), got {v!r}")


_DOB_FORMATS = ("%Y-%m-%d", "%Y-%m-%d", "%m/%d/%Y", "%d %b %Y", "%Y%m%d", "%b %d, %Y")
_EPOCH = dt.date(1940, 1, 1).toordinal()
_SPAN = dt.date(2005, 12, 31).toordinal() - _EPOCH


def _typo(rng: np.random.Generator, s: str) -> str:
    if len(s) < 3:
        return s
    i = int(rng.integers(1, len(s) - 1))
    op = int(rng.integers(0, 4))
    if not (s[i].isalpha() and s[i - 1].isalpha()):
        return s  # keep punctuation intact so a typo never makes a valid e-mail invalid
    if op == 0:  # substitution
        return s[:i] + "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(0, 26))] + s[i + 1 :]
    if op == 1:  # deletion
        return s[:i] + s[i + 1 :]
    if op == 2:  # transposition
        return s[: i - 1] + s[i] + s[i - 1] + s[i + 1 :]
    return s[:i] + s[i] + s[i:]  # doubled letter


def _fill(rng: np.random.Generator, template: str, first: str, city: str) -> str:
    return template.format(
        first=first.title(),
        city=city.title(),
        amt=int(rng.choice([100, 250, 500, 900, 1000, 2000])),
        d3=f"{int(rng.integers(0, 1000)):03d}",
        d5=f"{int(rng.integers(10000, 90000))}",
        d7=f"{int(rng.integers(0, 10_000_000)):07d}",
        d8=f"{int(rng.integers(0, 10**8)):08d}",
        year=int(rng.integers(2003, 2024)),
    )


def _phone_variant(rng: np.random.Generator, area: str, exch: str, line: str) -> str:
    k = int(rng.integers(0, 7))
    return (
        f"+1 {area}-{exch}-{line}",
        f"({area}) {exch}-{line}",
        f"{area}.{exch}.{line}",
        f"{area}{exch}{line}",
        f"+1{area}{exch}{line}",
        f"1-{area}-{exch}-{line}",
        f"{area} {exch} {line}",
    )[k]


def generate_users(params: SampleParams | None = None, **kwargs: int | float) -> pa.Table:
    """Generate ``n_records`` raw user records (see :data:`SAMPLE_SCHEMA`).

    ``generate_users(n_records=1000, seed=1)`` is shorthand for passing :class:`SampleParams`.
    """
    p = params if params is not None else SampleParams(**kwargs)  # type: ignore[arg-type]
    rng = np.random.default_rng(p.seed)
    n = p.n_records
    n_people = max(1, round(n * (1.0 - p.duplicate_rate))) if n else 0
    # person of each record: every person once, the rest are repeat sign-ups
    person = np.concatenate([np.arange(n_people), rng.integers(0, max(n_people, 1), n - n_people)])
    person = person[rng.permutation(n)] if n else person
    # canonical attributes per person
    first = rng.integers(0, len(FIRST), n_people)
    last = rng.integers(0, len(LAST), n_people)
    dom = rng.integers(0, len(DOMAINS), n_people)
    style = rng.integers(0, 4, n_people)
    num = rng.integers(1, 1000, n_people)
    area = rng.integers(0, len(AREA_CODES), n_people)
    exch = rng.integers(200, 1000, n_people)
    line = rng.integers(0, 10000, n_people)
    house = rng.integers(1, 9999, n_people)
    street = rng.integers(0, len(STREETS), n_people)
    stype = rng.integers(0, len(STREET_TYPES), n_people)
    city = rng.integers(0, len(CITIES), n_people)
    dob = _EPOCH + rng.integers(0, _SPAN, n_people)
    spam = rng.random(n_people) < p.spam_rate
    seen = np.zeros(n_people, dtype=bool)
    # the label a model downstream predicts (is this person looking for a job?), drawn from a
    # stream of its own so adding it left every other generated value unchanged
    job_seeker = np.random.default_rng([p.seed, 1]).random(n_people) < 0.3

    rows_u = rng.random((n, 12))  # per-record coin flips
    out: dict[str, list[object]] = {f.name: [] for f in SAMPLE_SCHEMA}
    for i in range(n):
        q = int(person[i])
        u = rows_u[i]
        dup = bool(seen[q])
        seen[q] = True
        fn, ln = FIRST[first[q]], LAST[last[q]]
        cty = CITIES[city[q]]
        # a number in every local part: distinct people never share an address
        local = (
            f"{fn}.{ln}{num[q]}",
            f"{fn[0]}{ln}{num[q]}",
            f"{fn}{ln}{num[q]}",
            f"{fn}_{ln}.{num[q]}",
        )[style[q]]
        email: str | None = f"{local}@{DOMAINS[dom[q]]}"
        a, e, ll = AREA_CODES[area[q]], f"{exch[q]:03d}", f"{line[q]:04d}"
        phone: str | None = (
            _phone_variant(rng, a, e, ll) if dup or u[0] < 0.5 else f"({a}) {e}-{ll}"
        )
        st_full, st_abbr = STREET_TYPES[stype[q]]
        address = f"{house[q]} {STREETS[street[q]]} {st_abbr if u[1] < 0.5 else st_full}"
        date = dt.date.fromordinal(int(dob[q]))
        dob_s = date.strftime(_DOB_FORMATS[int(u[2] * len(_DOB_FORMATS))])
        name = f"{fn} {ln}"
        if dup:  # a repeat sign-up: typos and formatting drift
            if u[3] < 0.3:
                name = f"{fn} {_typo(rng, ln)}" if u[4] < 0.5 else f"{_typo(rng, fn)} {ln}"
            if u[5] < 0.15 and email is not None:
                email = None if u[6] < 0.5 else _typo(rng, local) + "@" + DOMAINS[dom[q]]
            if u[7] < 0.1:
                phone = None
            if u[8] < 0.2:
                address = f"{house[q]} {_typo(rng, STREETS[street[q]])} {st_full}"
        # cosmetic variation on every record
        name = name.upper() if 0.2 <= u[9] < 0.3 else name.title()
        if email is not None and u[10] < 0.3:
            email = email.upper() if u[10] < 0.1 else email.capitalize()
        if u[11] < 0.15:
            name = f"  {name} "
        if spam[q]:
            text = _fill(rng, SPAM_TEMPLATES[int(rng.integers(0, len(SPAM_TEMPLATES)))], fn, cty)
        else:
            text = " ".join(
                t
                for t in (
                    _fill(rng, HAM_OPENERS[int(rng.integers(0, len(HAM_OPENERS)))], fn, cty),
                    _fill(rng, HAM_BODIES[int(rng.integers(0, len(HAM_BODIES)))], fn, cty),
                    _fill(rng, HAM_CLOSERS[int(rng.integers(0, len(HAM_CLOSERS)))], fn, cty),
                )
                if t
            )
        invalid: str | None = None
        if rng.random() < p.invalid_rate:
            kind = int(rng.integers(0, 4))
            if kind == 0:
                sep = "@@" if u[0] < 0.5 else " at "
                email, invalid = f"{local}{sep}{DOMAINS[dom[q]]}", "email"
            elif kind == 1:
                phone, invalid = ("12-34", "call me", "555")[int(rng.integers(0, 3))], "phone"
            elif kind == 2:
                dob_s, invalid = f"{date.year}-02-{30 + int(rng.integers(0, 2))}", "dob"
            else:
                name, invalid = "", "name"
        out["record_id"].append(f"r{i:08d}")
        out["name"].append(name)
        out["email"].append(email)
        out["phone"].append(phone)
        out["address"].append(address)
        out["city"].append(cty.title())
        out["dob"].append(dob_s)
        out["signup_text"].append(text)
        out["job_seeker"].append(int(job_seeker[q]))
        out["_true_person_id"].append(q)
        out["_is_spam"].append(bool(spam[q]))
        out["_invalid_reason"].append(invalid)
    return pa.table(out, schema=SAMPLE_SCHEMA)
