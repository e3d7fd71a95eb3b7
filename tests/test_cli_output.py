"""What the CLI prints, through the real command (click's runner): data is never read as rich
markup, typos get a "did you mean", and the human output carries what ``--json`` carries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def _table(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.csv").write_text(text)
    return folder


# -- 1. data is never markup --------------------------------------------------------------------
def test_diff_prints_changed_numbers_and_bracketed_names(hw, tmp_path: Path) -> None:
    """Numeric cells came out as ``[np.float64(1.5), ...]``, which rich took for a tag and
    dropped (``{'x': , 'y': }``); a file named ``[draft]report.csv`` lost its ``[draft]``."""
    a = _table(tmp_path / "a", "n,x,y\n1,1.5,10\n2,2.0,20\n")
    b = _table(tmp_path / "b", "n,x,y\n1,1.25,11\n2,2.0,20\n")
    (b / "[draft]report.csv").write_text("draft\n")
    hw("add", str(a), "--name", "t/nums", "--type", "table", "--key", "n")
    hw("add", str(b), "--name", "t/nums", "--type", "table", "--key", "n")
    text = hw("diff", "t/nums@1", "t/nums@2").stdout
    assert "+ [draft]report.csv" in text
    changed = next(line for line in text.splitlines() if line.strip().startswith("~ n=1"))
    assert "1.5 → 1.25" in changed and "10 → 11" in changed, text


def test_names_and_metadata_with_brackets_survive(hw, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "[draft]report.csv").write_text("x\n")
    hw("add", str(tmp_path / "d"), "--name", "t/r", "--meta", "note=[red]keep[/red]")
    shown = hw("show", "t/r").stdout
    assert "[red]keep[/red]" in shown
    out = tmp_path / "[out]"
    assert f"to {out}" in hw("get", "t/r", str(out)).stdout


def test_progress_description_is_not_markup() -> None:
    """The bar's description names the source path; ``hashing /data/[draft]`` lost ``[draft]``."""
    from rich.text import Text

    from headwater.progress import RichProgress

    bar = RichProgress()
    bar.start("hashing /data/[draft]", 3)
    try:
        shown = bar._bar.tasks[0].description
    finally:
        bar.stop()
    assert Text.from_markup(shown).plain == "hashing /data/[draft]"


# -- 2. did you mean ----------------------------------------------------------------------------
@pytest.fixture
def users(hw, tmp_path: Path):
    """``prod/users_split`` and ``prod/users_clean`` with an alias ``production`` and a label."""
    hw("add", str(_table(tmp_path / "u", "id\n1\n")), "--name", "prod/users_split")
    hw("add", str(_table(tmp_path / "c", "id\n2\n")), "--name", "prod/users_clean")
    hw("alias", "prod/users_split@1", "production")
    return hw


@pytest.mark.parametrize(("ref", "hint"), [
    ("prod/users_splt", "did you mean prod/users_split?"),
    ("prdo/users_split", "no namespace 'prdo' (did you mean prod?)"),
    ("users_split", "did you mean prod/users_split?"),  # right name, default namespace
    ("prod/users_split@prod", "did you mean production?"),  # a prefix of the alias
    ("prod/users_split@prodution", "did you mean production?"),
])
def test_not_found_suggests_close_names(users, ref: str, hint: str) -> None:
    proc = users("show", ref, ok=False)
    assert proc.returncode == 2 and hint in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_no_suggestion_when_nothing_is_close(users) -> None:
    proc = users("versions", "prod/zzz", ok=False)
    assert "did you mean" not in proc.stderr and "no dataset named prod/zzz" in proc.stderr


def test_removing_a_mistyped_alias_suggests_the_alias(users) -> None:
    proc = users("alias", "prod/users_split", "prodution", "--remove", ok=False)
    assert "has no alias 'prodution' (did you mean production?)" in proc.stderr


# -- 3. --catalog in a folder that does not exist -----------------------------------------------
def test_catalog_in_a_missing_folder_is_an_error(hw, tmp_path: Path) -> None:
    """A typo in the folder used to make (folders and) a new empty catalog, and `ls` listed
    nothing, as if the datasets were gone."""
    missing = tmp_path / "no-such-dir" / "sub"
    proc = hw("--catalog", f"sqlite:///{missing / 'catalog.db'}", "ls", ok=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and str(missing) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no-such-dir").exists()


def test_catalog_new_file_in_an_existing_folder_is_created(hw, tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    hw("--catalog", f"sqlite:///{tmp_path / 'here' / 'catalog.db'}", "ls")
    assert (tmp_path / "here" / "catalog.db").exists()


# -- 4. S3/GCS mistakes are one line ------------------------------------------------------------
def _headwater(tmp_path: Path, *args: str, options: dict | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``headwater`` in a fresh process with no AWS credentials anywhere but ``options``."""
    import json
    import os
    import sys

    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "HEADWATER_", "GOOGLE_", "STORAGE_EMULATOR"))}
    base.update(HEADWATER_HOME=str(tmp_path / "home"), AWS_EC2_METADATA_DISABLED="true",
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                AWS_CONFIG_FILE=str(tmp_path / "none"), HOME=str(tmp_path),
                GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false")
    if options is not None:
        base["HEADWATER_STORE_OPTIONS"] = json.dumps(options)
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "headwater", *args], env=base,
                          capture_output=True, text=True, timeout=180)


def _one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_s3_missing_bucket_is_one_line(s3_server, data_dir: Path, tmp_path: Path) -> None:
    from tests.emulators import s3_storage_options

    proc = _headwater(tmp_path, "--store", "s3://no-such-bucket-hw/store", "add", str(data_dir),
                      "--name", "x", options=s3_storage_options(s3_server))
    _one_line(proc, "bucket", "no-such-bucket-hw", "does not exist")


def test_s3_without_credentials_is_one_line(s3_store, data_dir: Path, tmp_path: Path) -> None:
    options = {"client_kwargs": s3_store.storage_options["client_kwargs"]}  # no key/secret
    for args in (("--store", s3_store.url, "add", str(data_dir), "--name", "x"),
                 ("add", f"{s3_store.url}/data", "--name", "y")):
        _one_line(_headwater(tmp_path, *args, options=options), "credentials", "AWS_")


def test_s3_bad_endpoint_is_one_line(s3_store, data_dir: Path, tmp_path: Path) -> None:
    options = {**s3_store.storage_options, "client_kwargs": {"endpoint_url": "http://127.0.0.1:1"},
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    proc = _headwater(tmp_path, "--store", s3_store.url, "add", str(data_dir), "--name", "x",
                      options=options)
    line = _one_line(proc, "cannot reach", "127.0.0.1:1")
    assert "list-type" not in line  # the endpoint, not a request URL


def test_gcs_missing_bucket_and_bad_endpoint_are_one_line(
    gcs_server, data_dir: Path, tmp_path: Path
) -> None:
    from tests.emulators import gcs_storage_options

    add = ("add", str(data_dir), "--name", "x")
    options = gcs_storage_options(gcs_server)
    _one_line(_headwater(tmp_path, "--store", "gs://no-such-bucket-hw/store", *add,
                         options=options), "bucket", "no-such-bucket-hw", "does not exist")
    bad = {**options, "endpoint_url": "http://127.0.0.1:1"}
    _one_line(_headwater(tmp_path, "--store", "gs://no-such-bucket-hw/store", *add,
                         options=bad), "cannot reach", "127.0.0.1:1")


# -- 5. show, versions, add --label/--description, run show -------------------------------------
def test_show_and_versions_print_label_description_properties_inputs(hw, tmp_path: Path) -> None:
    """``show`` printed none of these (only ``--json`` had them); ``versions`` had no label."""
    hw("add", str(_table(tmp_path / "raw", "id\n1\n")), "--name", "t/raw")
    logged = hw("add", str(_table(tmp_path / "c", "id\n2\n")), "--name", "t/clean",
                "--label", "v1.0-kaggle", "--description", "cleaned [draft] users",
                "--parent", "t/raw@1")
    assert "t/clean@1" in logged.stdout
    shown = hw("show", "t/clean@v1.0-kaggle").stdout
    assert "label       v1.0-kaggle" in shown or "v1.0-kaggle" in shown.split("label", 1)[1]
    assert "cleaned [draft] users" in shown
    assert "t/raw@1" in shown.split("inputs", 1)[1]
    table = hw("versions", "t/clean").stdout.splitlines()
    assert "label" in table[0].split() and "v1.0-kaggle" in table[1].split()


def test_show_prints_properties(hw, tmp_path: Path) -> None:
    from headwater.api import Catalog

    hw("add", str(_table(tmp_path / "c", "id\n2\n")), "--name", "t/p")
    with Catalog.open(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}",
                      store_url=str(tmp_path / "home" / "store")) as cat:
        cat.annotate("t/p@1", properties={"owner": "ml-team"})
    assert "owner" in hw("show", "t/p@1").stdout.split("properties", 1)[1]


def test_run_show_by_id_or_prefix(hw, tmp_path: Path) -> None:
    import json

    hw("add", str(_table(tmp_path / "c", "id\n2\n")), "--name", "t/r")
    run_id = json.loads(hw("runs", "--json").stdout)[0]["id"]
    for given in (run_id, run_id[:13]):
        text = hw("run", "show", given).stdout
        assert run_id in text and "COMPLETED" in text and "t/r@1" in text
    assert json.loads(hw("run", "show", run_id[:13], "--json").stdout)["id"] == run_id
    missing = hw("run", "show", "ffffffff", ok=False)
    assert missing.returncode == 2 and "no run" in missing.stderr


# -- 6. diff: suggest a key, page changed rows ---------------------------------------------------
def test_diff_of_tables_without_a_key_suggests_one(hw, tmp_path: Path) -> None:
    hw("add", str(_table(tmp_path / "a", "grp,user_id,v\nx,1,1\nx,2,2\n")), "--name", "t/nk",
       "--type", "table")
    hw("add", str(_table(tmp_path / "b", "grp,user_id,v\nx,1,1\nx,2,3\n")), "--name", "t/nk",
       "--type", "table")
    text = hw("diff", "t/nk@1", "t/nk@2").stdout
    assert "--key user_id" in text, text  # unique in both; grp is not
    keyed = hw("diff", "t/nk@1", "t/nk@2", "--key", "user_id").stdout
    assert "~ user_id=2: v 2 → 3" in keyed


def test_diff_pages_changed_rows_beyond_five(hw, tmp_path: Path) -> None:
    old = "id,v\n" + "".join(f"{i},{i}\n" for i in range(8))
    new = "id,v\n" + "".join(f"{i},{i * 10 + 1}\n" for i in range(8))
    hw("add", str(_table(tmp_path / "a", old)), "--name", "t/pg", "--type", "table", "--key", "id")
    hw("add", str(_table(tmp_path / "b", new)), "--name", "t/pg", "--type", "table", "--key", "id")
    default = hw("diff", "t/pg@1", "t/pg@2").stdout
    assert default.count("  ~ id=") == 5 and "3 more changed row(s)" in default, default
    assert hw("diff", "t/pg@1", "t/pg@2", "--limit", "10").stdout.count("  ~ id=") == 8


def test_diff_with_a_non_unique_key_still_shows_files_and_schema(hw, tmp_path: Path) -> None:
    """The error used to replace the whole diff: nothing but one line."""
    hw("add", str(_table(tmp_path / "a", "g,v\n1,1\n1,2\n")), "--name", "t/dup", "--type", "table")
    hw("add", str(_table(tmp_path / "b", "g,v,w\n1,1,0\n1,3,0\n")), "--name", "t/dup",
       "--type", "table")
    proc = hw("diff", "t/dup@1", "t/dup@2", "--key", "g", ok=False)
    assert proc.returncode == 2 and "key ['g'] is not unique" in proc.stderr
    assert "~ t.csv" in proc.stdout and "columns added: w" in proc.stdout, proc.stdout
