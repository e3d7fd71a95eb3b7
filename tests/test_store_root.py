"""A plain local store path is resolved without fsspec (its import is ~45 ms of every
``headwater add``), to the very root fsspec's local filesystem gives it; the filesystem object
is opened on first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.store import backends
from headwater.store.objects import ObjectStore


@pytest.mark.parametrize("form", ["abs", "abs/", "rel", "./rel", ".", "~", "~/sub/"])
def test_a_plain_path_gets_the_root_fsspec_gives_it(
        form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    url = {"abs": str(tmp_path / "s"), "abs/": f"{tmp_path / 's'}/", "rel": "s",
           "./rel": "./s", ".": ".", "~": "~", "~/sub/": "~/sub/"}[form]
    store = ObjectStore(url)
    assert store._fs is None and store.local
    _fs, root = backends.open_filesystem(url.rstrip("/"), {})
    assert store.root == root
    assert backends.is_local(store.fs)  # opened on first use


def test_urls_and_options_still_go_through_fsspec(tmp_path: Path) -> None:
    assert ObjectStore(f"file://{tmp_path}/s")._fs is not None
    assert ObjectStore(str(tmp_path / "s"), options={"auto_mkdir": True})._fs is not None
    assert ObjectStore(f"file://{tmp_path}/s").root == ObjectStore(str(tmp_path / "s")).root
