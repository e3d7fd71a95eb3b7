"""One canonical-JSON function (issue 14, section 9): the bytes that are hashed or compared."""

import datetime as dt
import re
from pathlib import Path

import pytest

from headwater.canonical import canonical_bytes, canonical_json
from headwater.fingerprint import cache_key
from headwater.steps.split import SplitParams, _key
from headwater.store.hashing import hash_bytes

ROOT = Path(__file__).resolve().parents[1]
# A compact, key-sorted json.dumps is canonical JSON written again by hand.
_COPY = re.compile(r"json\.dumps\([^)]*sort_keys=True[^)]*separators=\(\",\", \":\"\)"
                   r"|json\.dumps\([^)]*separators=\(\",\", \":\"\)[^)]*sort_keys=True")


def test_canonical_json_is_sorted_compact_and_stringifies() -> None:
    value = {"b": [1, 2], "a": {"z": None, "y": "é"}, "d": dt.date(2024, 1, 2)}
    assert canonical_json(value) == '{"a":{"y":"\\u00e9","z":null},"b":[1,2],"d":"2024-01-02"}'
    assert canonical_json(value, ensure_ascii=False) == (
        '{"a":{"y":"é","z":null},"b":[1,2],"d":"2024-01-02"}')
    assert canonical_bytes({"é": 1}, ensure_ascii=False) == '{"é":1}'.encode()


def test_strict_mode_refuses_values_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        canonical_json({"d": dt.date(2024, 1, 2)}, stringify=False)


def test_cache_key_digest_is_unchanged() -> None:
    key = cache_key(job="j", code_fingerprint="c", params={"p": 1, "q": [dt.date(2024, 1, 2)]},
                    inputs=[("in", "ab" * 32)])
    assert key == cache_key(job="j", code_fingerprint="c",
                            params={"q": ["2024-01-02"], "p": 1}, inputs=[("in", "ab" * 32)])
    # The exact bytes the pre-refactor copy hashed: existing cached runs must still be found.
    before = ('{"code":"c","inputs":[["in","' + "ab" * 32 + '"]],"job":"j",'
              '"params":{"p":1,"q":["2024-01-02"]}}')
    assert key == hash_bytes(before.encode())


def test_split_key_of_a_record_is_canonical_json() -> None:
    record = {"text": "ü", "n": 1}
    assert _key(record, SplitParams(key_column=None).key_column) == canonical_json(record)


def test_no_hand_written_canonical_json_outside_canonical_module() -> None:
    offenders = []
    for folder in ("src", "providers", "beam_transforms"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "canonical.py":
                continue
            text = " ".join(path.read_text().split())
            if _COPY.search(text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"call headwater.canonical.canonical_json instead: {offenders}"
