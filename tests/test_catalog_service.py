"""The catalog service (catalog/service.py): one unit of work that creates and resolves versions
for every caller (issue 14, section 9). Runs on SQLite and PostgreSQL (``catalog`` fixture)."""

from pathlib import Path

import pytest

from headwater import Catalog
from headwater.catalog import repo
from headwater.catalog.service import CatalogService, NewVersion
from headwater.errors import InvalidArgument, VersionNotFound
from headwater.refs import DatasetName


def _new(digest: str, **extra: object) -> NewVersion:
    return NewVersion(digest=digest, store_url="s3://bucket/store", kind="raw_data", size=3,
                      file_count=1, **extra)  # type: ignore[arg-type]


def test_create_version_numbers_dedups_labels_and_links_parents(catalog: Catalog) -> None:
    with catalog.unit_of_work() as svc:
        assert isinstance(svc, CatalogService)
        ds = repo.ensure_dataset(svc.session, DatasetName("t", "raw"), type=None,
                                 default_type="raw_data")
        v1, created1 = svc.create_version(ds, _new("a" * 64, label="first"))
        v1_again, created_again = svc.create_version(ds, _new("a" * 64))
        v2, created2 = svc.create_version(ds, _new("b" * 64), parents=["t/raw@1"])
        assert (v1.number, created1) == (1, True)
        assert (v1_again.id, created_again) == (v1.id, False)
        assert (v2.number, created2) == (2, True)
        with pytest.raises(InvalidArgument, match="already on t/raw@1"):
            svc.create_version(ds, _new("c" * 64, label="first"))
    with catalog.unit_of_work() as svc:
        info = svc.version_info(svc.resolve("t/raw@latest"))
        assert (info.ref, info.parents, info.store_url) == ("t/raw@2", ("t/raw@1",),
                                                          "s3://bucket/store")
        assert svc.pin("t/raw@first") == "t/raw@1"
        with pytest.raises(VersionNotFound):
            svc.resolve("t/raw@9")
    handle = catalog.handle(info)
    assert handle.ref == "t/raw@2" and catalog.get("t/raw@first").number == 1


def test_identical_content_with_a_new_label_is_refused(catalog: Catalog) -> None:
    with catalog.unit_of_work() as svc:
        ds = repo.ensure_dataset(svc.session, DatasetName("t", "raw"), type=None,
                                 default_type="raw_data")
        svc.create_version(ds, _new("a" * 64))
    with pytest.raises(InvalidArgument, match="identical to t/raw@1"), \
            catalog.unit_of_work() as svc:
        ds = repo.ensure_dataset(svc.session, DatasetName("t", "raw"), type=None,
                                 default_type="raw_data")
        svc.create_version(ds, _new("a" * 64, label="again"))


def test_a_run_and_the_service_give_the_same_version(catalog: Catalog, tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("x")
    logged = catalog.log(f, name="t/files")
    with catalog.unit_of_work() as svc:
        info = svc.version_info(svc.resolve("t/files"))
    assert info == logged.info()
