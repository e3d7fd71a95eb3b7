"""gc never destroys what an open run uses (issue 14, section 2; ADR 0001, "gc and open runs").

The scenario: a step stages its outputs and fails; much later (past the grace period) a retry
logs the same data, which deduplicates against the leftover objects without touching them; a
``gc`` with no grace runs while the retry's ``with cat.run()`` block is still open and deletes
those objects, manifest included. The commit must notice and write them again from the source
(or fail, recording nothing), never record a version whose objects are gone.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater import Catalog, _failpoints
from headwater.errors import DatasetNotFound, RunFailed

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def _make_source(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(12):
        (root / f"part-{i:02d}.txt").write_text(f"row {i}\n" * (i + 1))
    return root


def _failed_step(cat: Catalog, src: Path) -> None:
    """A step that stages its output, then fails: its objects stay behind, unreferenced."""
    with pytest.raises(RuntimeError, match="step failed"), cat.run("step") as run:
        run.log_output(src, name="out")
        raise RuntimeError("step failed after staging")


def _assert_intact(cat: Catalog, ref: str, src: Path, tmp: Path) -> None:
    report = cat.verify(ref)
    assert report.ok, [p.problem for p in report.problems]
    dest = tmp / "checkout"
    cat.checkout(cat.get(ref), dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in src.iterdir())
    for p in src.iterdir():
        assert (dest / p.name).read_bytes() == p.read_bytes()


def _gc_inside_open_block(cat: Catalog, src: Path) -> None:
    _failed_step(cat, src)
    with cat.run("step") as run:
        run.log_output(src, name="out")  # deduplicates against the leftovers
        report = cat.gc(grace_seconds=0)
        # the race did happen: gc took the leftovers the open block relies on
        assert len(report.deleted) >= 13  # 12 files + the manifest


def test_gc_racing_an_open_block_local(catalog: Catalog, tmp_path: Path) -> None:
    src = _make_source(tmp_path / "src")
    _gc_inside_open_block(catalog, src)
    _assert_intact(catalog, "out@1", src, tmp_path)


@pytest.fixture
def s3_catalog(s3_store, tmp_path: Path) -> Iterator[Catalog]:  # type: ignore[no-untyped-def]
    cat = Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}", store_url=s3_store.url,
                       store_options=s3_store.storage_options)
    yield cat
    cat.close()


def test_gc_racing_an_open_block_s3(s3_catalog: Catalog, tmp_path: Path) -> None:
    src = _make_source(tmp_path / "src")
    _gc_inside_open_block(s3_catalog, src)
    _assert_intact(s3_catalog, "out@1", src, tmp_path)


def test_gc_racing_an_open_block_source_gone(catalog: Catalog, tmp_path: Path) -> None:
    """Nothing to write the objects from: the commit fails clearly and records nothing."""
    src = _make_source(tmp_path / "src")
    _failed_step(catalog, src)
    with pytest.raises(RunFailed, match="deleted by `headwater gc` while the run was open"), \
            catalog.run("step") as run:
        run.log_output(src, name="out")
        catalog.gc(grace_seconds=0)
        shutil.rmtree(src)
    with pytest.raises(DatasetNotFound):
        catalog.versions("out")
    assert [r.state for r in catalog.runs()] == ["FAILED", "FAILED"]


def test_commit_waits_for_a_gc_batch_in_progress(catalog: Catalog, tmp_path: Path) -> None:
    """A commit that arrives while gc holds its lock waits, then sees the new epoch: the order
    is forced with a hook inside gc's locked section, not with sleeps that hope."""
    src = _make_source(tmp_path / "src")
    _failed_step(catalog, src)
    locked, order = threading.Event(), []
    release = threading.Event()

    def hold() -> None:
        locked.set()
        release.wait(10)  # the commit below gets 1 s to (wrongly) get past the lock
        order.append("gc deleted")

    errors: list[BaseException] = []

    def run_gc() -> None:
        try:
            catalog.gc(grace_seconds=0)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    run = catalog.run("step")
    run.start()
    run.log_output(src, name="out")
    _failpoints.HOOKS["gc.locked"] = hold
    try:
        gc_thread = threading.Thread(target=run_gc)
        gc_thread.start()
        assert locked.wait(30)

        def commit() -> None:
            try:
                run.commit()
                order.append("committed")
            except BaseException as exc:
                errors.append(exc)

        committer = threading.Thread(target=commit)
        committer.start()
        committer.join(1.0)
        release.set()
        committer.join(60)
        gc_thread.join(60)
    finally:
        _failpoints.HOOKS.pop("gc.locked", None)
        release.set()
    assert errors == []
    # the first locked section (loose objects) before the commit; a packing store takes the
    # lock again for each dead pack, before or after the commit
    assert order[0] == "gc deleted" and "committed" in order
    _assert_intact(catalog, "out@1", src, tmp_path)


def test_gc_racing_an_open_block_in_memory_table(catalog: Catalog) -> None:
    """An Arrow table logged from memory is written again from the same table object."""
    import pyarrow as pa

    table = pa.table({"id": list(range(100)), "label": ["spam", "ham"] * 50})
    with pytest.raises(RuntimeError, match="step failed"), catalog.run("step") as run:
        run.log_output(table, name="tbl")
        raise RuntimeError("step failed after staging")
    with catalog.run("step") as run:
        run.log_output(table, name="tbl")
        assert len(catalog.gc(grace_seconds=0).deleted) >= 2  # the parquet file + manifest
    assert catalog.verify("tbl@1").ok
    assert catalog.read_table(catalog.get("tbl@1")).sort_by("id").equals(table)
