"""Reports, labels, descriptions and properties (issue 10), on SQLite/PostgreSQL and local/S3."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater import Catalog
from headwater.errors import InvalidArgument, InvalidReference, VersionNotFound
from headwater.reports import ReportError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'


@pytest.fixture(params=["file", "s3"])
def rcat(request: pytest.FixtureRequest, catalog_url: str, tmp_path: Path) -> Catalog:
    if request.param == "file":
        return Catalog.open(catalog_url, store_url=str(tmp_path / "store"))
    s3 = request.getfixturevalue("s3_store")
    return Catalog.open(catalog_url, store_url=s3.url, store_options=s3.storage_options)


def test_every_kind_round_trips(rcat: Catalog, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = rcat.log(pa.table({"label": ["spam", "ham", "ham"], "score": [0.9, 0.1, 0.2]}),
                 name="msgs")
    digest = v.digest
    rcat.report(v, "rows", "table", pa.table({"k": ["a", "b"], "n": [2, 1]}))
    rcat.report(v, "csv", "table", "k,n\nx,1\ny,2\n")
    rcat.report(v, "balance", "histogram", ["spam", "ham", "ham"], x_title="class")
    rcat.report(v, "scores", "histogram", [0.9, 0.1, 0.2], bins=2, x_title="score")
    rcat.report(v, "precomputed", "histogram", counts={"train": 18, "dev": 6})
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    rcat.report(v, "curve", "figure", fig, caption="a line")
    rcat.report(v, "vega", "figure", {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                                      "mark": "bar", "data": {"values": [{"a": 1}]}})
    rcat.report(v, "svg", "figure", SVG)
    wav = tmp_path / "hello.wav"
    wav.write_bytes(b"RIFF....WAVEfmt ")
    rcat.report(v, "samples", "samples", [
        {"record": {"label": "spam"}, "caption": "a spam row"}, "plain text sample",
        {"path": wav, "caption": "a sound"}, {"data": PNG, "filename": "x.png"}])
    rcat.report(v, "f1", "scalar", 0.91)
    assert rcat.get("msgs").digest == digest  # reports never change the content digest

    by = {r.name: r for r in rcat.reports("msgs")}
    assert set(by) == {"rows", "csv", "balance", "scores", "precomputed", "curve", "vega",
                       "svg", "samples", "f1"}
    assert pq.read_table(io.BytesIO(rcat.report_payload(by["rows"]))).to_pydict() == {
        "k": ["a", "b"], "n": [2, 1]}
    assert by["csv"].body["rows"] == 2
    assert by["balance"].body["labels"] == ["ham", "spam"]
    assert by["balance"].body["counts"] == [2, 1]
    assert sum(by["scores"].body["counts"]) == 3 and len(by["scores"].body["edges"]) == 3
    assert by["precomputed"].body["counts"] == [18.0, 6.0]
    assert rcat.report_payload(by["curve"]).startswith(b"\x89PNG")
    assert by["vega"].body["vega_lite"]["mark"] == "bar"
    assert by["svg"].media_type == "image/svg+xml"
    items = by["samples"].body["items"]
    assert [i["type"] for i in items] == ["record", "text", "audio", "image"]
    assert rcat.report_payload(by["samples"], item=2) == wav.read_bytes()
    assert rcat.report_payload(by["samples"], item=3) == PNG
    assert by["f1"].body["value"] == 0.91


def test_same_name_keeps_both_newest_first_and_scalar_series(catalog: Catalog) -> None:
    for i in range(3):
        v = catalog.log(pa.table({"x": list(range(i + 1))}), name="grow")
        catalog.report(v, "rows", "scalar", v.row_count)
    catalog.report("grow@3", "rows", "scalar", 30)
    assert [r.body["value"] for r in catalog.reports("grow@3", name="rows")] == [30.0, 3.0]
    assert catalog.scalar_series("grow", "rows") == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_reports_logged_in_a_run_follow_the_run(catalog: Catalog) -> None:
    with catalog.run("step") as run:
        run.log_output(pa.table({"x": [1]}), name="good")
        run.report("good", "n", "scalar", 1)
        with pytest.raises(InvalidArgument, match="has not logged default/other"):
            run.report("other", "n", "scalar", 1)
    assert [r.run_id for r in catalog.reports("good")] == [run.id]
    with pytest.raises(RuntimeError), catalog.run("fails") as failing:
        failing.log_output(pa.table({"x": [2]}), name="bad")
        failing.report("bad", "n", "scalar", 2)
        raise RuntimeError("boom")
    with pytest.raises(LookupError):
        catalog.reports("bad")


def test_bad_reports_are_clear_errors_and_change_nothing(catalog: Catalog,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    v = catalog.log(pa.table({"x": [1]}), name="safe")

    class Broken:
        def savefig(self, *a: object, **k: object) -> None:
            raise ValueError("no renderer")

    cases = [
        ("t", "table", object(), "a table must be"),
        ("f", "figure", Broken(), "cannot be rendered"),
        ("g", "figure", b"not an image", "neither PNG nor SVG"),
        ("h", "histogram", None, "give values or counts"),
        ("s", "scalar", float("nan"), "finite"),
        ("k", "pie", 1, "unknown kind"),
    ]
    for name, kind, data, message in cases:
        with pytest.raises(InvalidArgument, match=message) as info:
            catalog.report(v, name, kind, data)
        assert repr(name) in str(info.value)
    monkeypatch.setenv("HEADWATER_REPORT_MAX_BYTES", "100")
    with pytest.raises(ReportError, match=r"report 'big'.*over the 100-byte limit"):
        catalog.report(v, "big", "table", pa.table({"x": list(range(1000))}))
    assert catalog.reports(v) == [] and catalog.get("safe").digest == v.digest


def test_labels(catalog: Catalog) -> None:
    v1 = catalog.log(pa.table({"x": [1]}), name="users", label="1.0-kaggle")
    assert catalog.get("users@1.0-kaggle").number == 1 and v1.label == "1.0-kaggle"
    with pytest.raises(InvalidArgument, match=r"already on default/users@1"):
        catalog.log(pa.table({"x": [2]}), name="users", label="1.0-kaggle")
    assert [v.number for v in catalog.versions("users")] == [1]  # the clash made nothing
    for ambiguous, why in [("2", "version number"), ("deadbeef", "digest prefix"),
                           ("latest", "newest")]:
        with pytest.raises(InvalidReference, match=why):
            catalog.log(pa.table({"x": [3]}), name="users", label=ambiguous)
    catalog.alias("users@1", "production")
    with pytest.raises(InvalidArgument, match="is an alias"):
        catalog.log(pa.table({"x": [4]}), name="users", label="production")
    v2 = catalog.log(pa.table({"x": [5]}), name="users", label="youtube-1.1")
    with pytest.raises(InvalidArgument, match="already a version label"):
        catalog.alias(v2, "youtube-1.1")
    with pytest.raises(InvalidArgument, match="labels are given when a version is created"):
        catalog.log(pa.table({"x": [5]}), name="users", label="other")
    again = catalog.log(pa.table({"x": [5]}), name="users", label="youtube-1.1")
    assert not again.created and again.number == 2  # an idempotent retry is fine
    with pytest.raises(VersionNotFound, match="no alias or label"):
        catalog.get("users@2.0")


def test_description_and_properties_have_history(catalog: Catalog) -> None:
    v = catalog.log(pa.table({"x": [1]}), name="doc", description="# First",
                    properties={"source": "kaggle", "rows": 1})
    assert (v.description, v.properties) == ("# First", {"source": "kaggle", "rows": 1})
    v = catalog.annotate(v, properties={"reviewed": True, "rows": None}, actor="alice")
    assert v.properties == {"source": "kaggle", "reviewed": True} and v.description == "# First"
    v = catalog.annotate(v, description="# Second", properties={"only": 1}, replace=True)
    assert (v.description, v.properties) == ("# Second", {"only": 1})
    history = catalog.annotation_history(v)
    assert [h["description"] for h in history] == ["# First", "# First", "# Second"]
    assert history[1]["actor"] == "alice"
    assert catalog.get("doc").digest == v.digest


def test_gc_keeps_every_report_of_a_live_version(sqlite_catalog: Catalog) -> None:
    v = sqlite_catalog.log(pa.table({"x": [1]}), name="kept")
    sqlite_catalog.report(v, "t", "table", pa.table({"a": [1]}))
    sqlite_catalog.report(v, "s", "samples", [{"data": PNG, "filename": "p.png"}])
    sqlite_catalog.gc(grace_seconds=0)
    for r in sqlite_catalog.reports(v):
        payload = sqlite_catalog.report_payload(r, item=0 if r.kind == "samples" else None)
        assert payload


ADDER = textwrap.dedent("""
    import sys
    from headwater import Catalog
    url, store, who = sys.argv[1:4]
    cat = Catalog.open(url, store_url=store)
    for i in range(10):
        cat.report("shared@1", f"{who}-{i}", "scalar", i)
""")


def test_two_processes_adding_reports_lose_nothing(catalog_url: str, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    cat = Catalog.open(catalog_url, store_url=store)
    cat.log(pa.table({"x": [1]}), name="shared")
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, catalog_url, store, who],
                              env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
             for who in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    names = {r.name for r in cat.reports("shared@1")}
    assert names == {f"{w}-{i}" for w in "ab" for i in range(10)}


def test_cli_reports_and_report(sqlite_url: str, tmp_path: Path) -> None:
    cat = Catalog.open(sqlite_url, store_url=str(tmp_path / "store"))
    v = cat.log(pa.table({"x": [1]}), name="c")
    cat.report(v, "counts", "table", pa.table({"reason": ["invalid_email"], "rows": [3]}))
    cat.report(v, "balance", "histogram", counts={"0": 70, "1": 30}, x_title="label")
    env = {**os.environ, "HEADWATER_CATALOG_URL": sqlite_url,
           "HEADWATER_STORE_URL": str(tmp_path / "store")}

    def hw(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "headwater", *args], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert "counts" in hw("reports", "c") and "balance" in hw("reports", "c")
    assert "invalid_email" in hw("report", "c", "counts")
    assert "█" in hw("report", "c", "balance")
    hw("report", "c", "counts", "--out", str(tmp_path / "c.parquet"))
    assert pq.read_table(tmp_path / "c.parquet").num_rows == 1
