"""Invariants that need real processes: concurrent writers and crashes mid-commit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headwater import Catalog
from headwater._failpoints import EXIT_CODE
from headwater.errors import DatasetNotFound
from tests.damage import stored_digests

WRITER = textwrap.dedent("""
    import sys, pathlib
    from headwater import Catalog
    url, store, name, worker, count = sys.argv[1:6]
    cat = Catalog.open(url, store_url=store)
    tmp = pathlib.Path(store).parent / f"w{worker}"
    tmp.mkdir(exist_ok=True)
    for i in range(int(count)):
        f = tmp / "data.txt"
        f.write_text(f"worker {worker} item {i}")
        v = cat.log(f, name=name)
        print(v.number, flush=True)
""")


@pytest.mark.slow
def test_concurrent_writers_get_distinct_gap_free_numbers(catalog_url: str,
                                                          tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    Catalog.open(catalog_url, store_url=store).close()  # migrate once, before the race
    workers, each = 4, 5
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, catalog_url, store, "race", str(w),
                          str(each)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(workers)
    ]
    numbers: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        numbers += [int(line) for line in out.split()]
    assert sorted(numbers) == list(range(1, workers * each + 1))
    cat = Catalog.open(catalog_url, store_url=store)
    assert [v.number for v in cat.versions("race")] == list(range(1, workers * each + 1))


CRASHER = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from headwater import Catalog
    url, store, data = sys.argv[1:4]
    cat = Catalog.open(url, store_url=store)
    cat.log(data, name="victim")
""")


@pytest.mark.parametrize("point", ["stage.after_objects", "stage.before_manifest",
                                   "stage.after_manifest", "commit.before_db_commit"])
def test_crash_anywhere_in_a_commit_leaves_nothing_visible(
        point: str, sqlite_url: str, tmp_path: Path, data_dir: Path) -> None:
    store = str(tmp_path / "store")
    Catalog.open(sqlite_url, store_url=store).close()
    env = {**os.environ, "HEADWATER_FAILPOINTS": point}
    crashed = subprocess.run([sys.executable, "-c", CRASHER, sqlite_url, store, str(data_dir)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    cat = Catalog.open(sqlite_url, store_url=store)
    with pytest.raises(DatasetNotFound):
        cat.get("victim")
    orphans = stored_digests(cat.store)
    if point != "stage.after_objects" or orphans:
        assert orphans  # the crash left objects behind: orphans for gc
    # a rerun succeeds and makes exactly version 1
    rerun = subprocess.run([sys.executable, "-c", CRASHER, sqlite_url, store, str(data_dir)],
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert [v.number for v in cat.versions("victim")] == [1]
    # gc keeps everything the committed version needs and reclaims nothing it uses
    report = cat.gc(grace_seconds=0)
    assert cat.verify("victim").ok
    assert report.live_objects == len(stored_digests(cat.store))


def test_gc_reclaims_orphans_of_a_failed_run(sqlite_catalog: Catalog, data_dir: Path) -> None:
    import pyarrow as pa

    keep = sqlite_catalog.log(data_dir, name="kept")
    with pytest.raises(RuntimeError), sqlite_catalog.run("fails") as run:
        run.log_output(pa.table({"orphan": list(range(100))}), name="orphaned")
        raise RuntimeError("after writing")
    young = sqlite_catalog.gc()  # default grace period protects in-flight runs
    assert young.deleted == [] and young.kept_young >= 2
    report = sqlite_catalog.gc(grace_seconds=0)
    assert len(report.deleted) == 2  # the orphan table's object and its manifest
    assert sqlite_catalog.verify(keep.ref).ok
