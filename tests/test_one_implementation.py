"""One implementation per concept (issue 14, section 9): format detection and object paths.

Each concept has one home; the scans below fail when a second copy is written again.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from headwater import Catalog
from headwater.tables.detect import detect_format, formats_of, one_format, table_files

ROOT = Path(__file__).resolve().parents[1]
CODE = [p for folder in ("src", "providers", "beam_transforms")
        for p in (ROOT / folder).rglob("*.py")]


def _text(path: Path) -> str:
    return " ".join(path.read_text().split())


@dataclass(frozen=True)
class _Entry:
    path: str


def test_table_files_selects_the_one_format_and_skips_markers() -> None:
    entries = [_Entry("_SUCCESS"), _Entry("b/part-1.parquet"), _Entry(".part-1.crc"),
               _Entry("a/part-0.PQ")]
    fmt, files = table_files(entries)
    assert fmt == "parquet"
    assert [e.path for e in files] == ["b/part-1.parquet", "a/part-0.PQ"]
    assert table_files([_Entry("a.csv"), _Entry("b.parquet")]) == (None, [])
    assert table_files([_Entry("a.csv"), _Entry("notes.txt")]) == (None, [])


def test_known_formats_give_the_same_answer_as_the_paths() -> None:
    for paths in (["a.csv", "b.csv"], ["a.csv", "b.txt"], [], ["_x", "y.jsonl"]):
        assert one_format(formats_of(paths)) == detect_format(paths)


def test_format_detection_lives_in_tables_detect_only() -> None:
    # choosing table files = keeping data files whose format is the version's one format
    copy = re.compile(r"is_data_file\([^)]*\) (and|or) (not )?format_of\(")
    offenders = [str(p.relative_to(ROOT)) for p in CODE
                 if p.name != "detect.py" and copy.search(_text(p))]
    assert offenders == [], f"call headwater.tables.detect.table_files instead: {offenders}"
    single = re.compile(r"next\(iter\(formats\)\) if len\(formats\) == 1")
    assert [p for p in CODE if single.search(_text(p))] == []


def test_object_paths_come_from_the_store_layout(tmp_path: Path) -> None:
    from headwater.lineage.naming import manifest_relpath
    from headwater.store.layout import object_url
    from headwater.store.objects import ObjectStore

    digest = "ab" + "c" * 62
    store = ObjectStore(str(tmp_path))
    assert store.object_path(digest) == object_url(str(tmp_path), digest)
    assert store.object_path(digest).endswith("/" + manifest_relpath(digest))
    assert manifest_relpath(digest) == f"objects/ab/{'c' * 62}"


def test_no_second_copy_of_the_object_layout() -> None:
    # an f-string that spells out objects/<prefix>/... is the layout written again
    copy = re.compile(r"objects/\{")
    offenders = [str(p.relative_to(ROOT)) for p in CODE
                 if p.name != "layout.py" and copy.search(p.read_text())]
    assert offenders == [], f"call headwater.store.layout instead: {offenders}"


def test_one_output_spec_carries_every_field_to_the_version(sqlite_catalog: Catalog,
                                                           tmp_path: Path) -> None:
    from headwater import OutputSpec

    (tmp_path / "a.csv").write_text("id,x\n1,2\n")
    parent = sqlite_catalog.log(tmp_path / "a.csv", name="t/parent")
    spec = OutputSpec.of({"name": "t/child", "type": "table", "key": ["id"],
                          "metadata": {"m": 1}, "stats": {"s": 2}, "parents": ["t/parent"],
                          "label": "v1", "description": "why", "properties": {"p": 3}})
    with sqlite_catalog.run("job") as run:
        run.log_spec(tmp_path / "a.csv", spec)
    v = run.outputs[0]
    assert (v.label, v.description, v.properties, v.parents) == ("v1", "why", {"p": 3},
                                                                 (parent.ref,))
    assert v.metadata == {"m": 1, "key": ["id"]} and v.stats["s"] == 2 and v.type == "table"


def test_output_spec_refuses_bad_fields_clearly() -> None:
    from headwater import OutputSpec
    from headwater.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="bogus"):
        OutputSpec.of({"name": "x", "bogus": 1})
    with pytest.raises(InvalidArgument, match="key is a list"):
        OutputSpec("x", key="id")
    assert OutputSpec("x", key=["a"]) == OutputSpec("x", key=("a",))


def test_airflow_output_is_the_core_output_spec() -> None:
    pytest.importorskip("airflow")
    from headwater_airflow.operators.versioned import Output

    from headwater import OutputSpec

    assert Output is OutputSpec
