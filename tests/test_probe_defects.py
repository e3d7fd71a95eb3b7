"""Small defects the probes of issue 14 found (section 8), each through the real component:
the ``headwater`` command (click's runner or a subprocess), a real file system, real databases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from headwater import Catalog
from headwater.errors import InvalidReference, UnsafePath
from headwater.refs import DatasetName, VersionRef, check_alias, check_label
from headwater.store.paths import check_relpath


@pytest.fixture
def hw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The CLI in-process (click's runner) with a home of its own; returns (exit, out, err)."""
    from click.testing import CliRunner

    from headwater.cli import main

    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HEADWATER_CATALOG_URL", raising=False)
    monkeypatch.delenv("HEADWATER_STORE_URL", raising=False)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def _one_error_line(code: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("headwater: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- names, aliases, labels, search, drive letters, FIFOs ------------------------------------------
@pytest.mark.parametrize("bad", ["users\n", "ns\n/users"])
def test_names_ending_in_newline_are_refused(bad: str) -> None:
    with pytest.raises(InvalidReference):
        DatasetName.parse(bad, default_namespace="default")


def test_aliases_and_labels_ending_in_newline_are_refused() -> None:
    with pytest.raises(InvalidReference):
        check_alias("production\n")
    with pytest.raises(InvalidReference):
        check_label("1.0\n")


def test_log_refuses_a_name_ending_in_newline(sqlite_catalog: Catalog, data_dir: Path) -> None:
    with pytest.raises(InvalidReference):
        sqlite_catalog.log(data_dir, name="files\n")
    assert sqlite_catalog.datasets() == []


def test_superscript_digit_selector_is_one_line(hw) -> None:
    with pytest.raises(InvalidReference):
        VersionRef.parse("ds@²", default_namespace="default")
    code, _, err = hw("show", "ds@²")
    assert code == 2
    _one_error_line(code, err, "'ds@²'")


def test_search_treats_like_wildcards_literally(hw, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x\n")
    for name in ("a_b", "axb", "c.d"):
        assert hw("add", str(src), "--name", name)[0] == 0
    import json

    def found(term: str) -> list[str]:
        code, out, err = hw("ls", "--search", term, "--json")
        assert code == 0, err
        return [d["name"] for d in json.loads(out)]

    assert found("%") == []  # no name can hold "%"; as a wildcard it matched every dataset
    assert found("_") == ["a_b"]
    assert found("a_") == ["a_b"]
    assert found("x") == ["axb"]


def test_search_is_literal_on_both_backends(catalog: Catalog, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x\n")
    for name in ("a_b", "axb", "a.b"):
        catalog.log(src, name=name)
    assert [d.name for d in catalog.datasets(search="%")] == []
    assert [d.name for d in catalog.datasets(search="a_")] == ["a_b"]
    assert [d.name for d in catalog.datasets(search="\\")] == []
    assert [d.name for d in catalog.datasets(search="a")] == ["a.b", "a_b", "axb"]


def test_drive_relative_name_is_an_ordinary_posix_name(hw, tmp_path: Path) -> None:
    assert check_relpath("C:data.txt") == "C:data.txt"
    for absolute in ("C:/x", "c:/", "C:"):
        with pytest.raises(UnsafePath):
            check_relpath(absolute)
    src = tmp_path / "src"
    src.mkdir()
    (src / "C:data.txt").write_text("drive letter, but relative\n")
    code, _, err = hw("add", str(src), "--name", "drives")
    assert code == 0, err
    dest = tmp_path / "out"
    assert hw("get", "drives@1", str(dest))[0] == 0
    assert (dest / "C:data.txt").read_text() == "drive letter, but relative\n"


def test_add_fifo_says_it_is_not_a_regular_file(hw, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = hw("add", str(fifo), "--name", "pipe")
    line = _one_error_line(code, err, "not a regular file or directory")
    assert "does not exist" not in line


# -- one line instead of a traceback --------------------------------------------------------------
def _without_root_read_override() -> list[str]:
    """A prefix that runs a command without the capabilities that let root read any file."""
    if os.geteuid() != 0:
        return []
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and util-linux setpriv is missing: root reads a chmod-000 "
                    "file; test_os_error_while_writing_is_one_line covers the OSError path")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine\n")
    (src / "secret.txt").write_text("x\n")
    (src / "secret.txt").chmod(0)
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home")}
    proc = subprocess.run([*_without_root_read_override(), sys.executable, "-m", "headwater",
                           "add", str(src), "--name", "secret"], env=env, capture_output=True,
                          text=True, timeout=120)
    _one_error_line(proc.returncode, proc.stderr, "Permission denied", "secret.txt")


def test_os_error_while_writing_is_one_line(hw, tmp_path: Path, data_dir: Path) -> None:
    """An OSError root gets too (the destination's parent is a file): one line, no traceback."""
    assert hw("add", str(data_dir), "--name", "files")[0] == 0
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory\n")
    code, _, err = hw("get", "files@1", str(blocker / "dest"))
    _one_error_line(code, err, str(blocker))


def test_name_of_255_bytes_round_trips(hw, tmp_path: Path) -> None:
    """The longest name a file system allows logs and checks out (the temporary name of the
    checkout used to be longer than 255 bytes)."""
    src = tmp_path / "src"
    src.mkdir()
    name = "n" * 251 + ".txt"
    (src / name).write_text("long name\n")
    (src / ("m" * 255)).write_bytes(os.urandom(5 << 20))  # large: the streamed path
    assert hw("add", str(src), "--name", "long")[0] == 0
    dest = tmp_path / "out"
    code, _, err = hw("get", "long@1", str(dest))
    assert code == 0, err
    assert (dest / name).read_text() == "long name\n"
    assert (dest / ("m" * 255)).read_bytes() == (src / ("m" * 255)).read_bytes()


def test_path_over_path_max_is_one_line(hw, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("x\n")
    too_long = str(src) + "/" + "/".join(["d" * 200] * 25) + "/f.txt"  # > 4096 bytes
    code, _, err = hw("add", too_long, "--name", "toolong")
    _one_error_line(code, err)
    code, _, err = hw("get", "nope@1", too_long)
    _one_error_line(code, err)


# -- a large file that shrinks while it is hashed ----------------------------------------------
_SHRINK = """
import os, sys, threading
from headwater.store.hashing import hash_file
path = sys.argv[1]
threading.Timer(0.3, lambda: os.truncate(path, 1 << 20)).start()
try:
    hash_file(path)
except Exception as exc:
    print(type(exc).__name__, exc, file=sys.stderr)
    sys.exit(3)
print("finished before the truncation", file=sys.stderr)
sys.exit(4)
"""


def test_file_shrinking_while_hashed_is_an_error_not_sigbus(tmp_path: Path) -> None:
    """A sparse 16 GiB file (hashing it takes seconds) truncated 0.3 s into the hash: a memory
    map of it would die of SIGBUS; reads see the end and say so."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(16 << 30)
    proc = subprocess.run([sys.executable, "-c", _SHRINK, str(big)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != -signal.SIGBUS, "killed by SIGBUS"
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert "RunFailed" in proc.stderr and "changed while being read" in proc.stderr


# -- catalog creation: concurrent, and interrupted ---------------------------------------------
_OPEN = """
import os, sys, time
from headwater import Catalog
go = sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.001)
Catalog.open(sys.argv[1], store_url=sys.argv[3]).close()
print("opened")
"""


@pytest.fixture
def fresh_pg_database(pg_base_url: str):
    """A brand-new PostgreSQL database (not a schema: the probe's case), dropped after."""
    import uuid

    import sqlalchemy as sa

    from headwater.catalog.db import normalise_url

    name = f"hw_fresh_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(normalise_url(pg_base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.engine.make_url(normalise_url(pg_base_url))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _open_all_at_once(
    url: str, tmp_path: Path, n: int = 8
) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN, url, str(go), str(tmp_path / "store")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    import time

    time.sleep(1.5)  # every process has imported Headwater and is waiting for the start
    go.write_text("go")
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_eight_processes_create_one_postgres_catalog(fresh_pg_database: str,
                                                     tmp_path: Path) -> None:
    from headwater.catalog.db import HEAD_REVISION, create_catalog_engine, current_revision

    results = _open_all_at_once(fresh_pg_database, tmp_path)
    failures = [next((ln for ln in r.stderr.splitlines() if "Error" in ln), r.stderr[-200:])
                for r in results if r.returncode != 0]
    assert failures == [], failures
    engine = create_catalog_engine(fresh_pg_database)
    assert current_revision(engine) == HEAD_REVISION
    engine.dispose()


def test_eight_processes_create_one_sqlite_catalog(tmp_path: Path) -> None:
    results = _open_all_at_once(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    failures = [next((ln for ln in r.stderr.splitlines() if "Error" in ln), r.stderr[-200:])
                for r in results if r.returncode != 0]
    assert failures == [], failures


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_interrupted_first_migration_is_half_initialised(backend: str, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    from headwater.catalog.db import HEAD_REVISION, create_catalog_engine, current_revision
    from headwater.errors import CatalogSchemaOutdated

    url = (f"sqlite:///{tmp_path / 'catalog.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    env = {**os.environ, "HEADWATER_FAILPOINTS": "migrate.after_0002"}
    proc = subprocess.run([sys.executable, "-c", "import sys; from headwater import Catalog; "
                           "Catalog.open(sys.argv[1], store_url=sys.argv[2])", url,
                           str(tmp_path / "store")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 86, proc.stderr  # the failpoint's kill -9 stand-in
    with pytest.raises(CatalogSchemaOutdated, match="half-initialised") as err:
        Catalog.open(url, store_url=str(tmp_path / "store"))
    assert "older" not in str(err.value) and "headwater db upgrade" in str(err.value)
    # what the message says to do works: the catalog is created again, and usable
    code = subprocess.run([sys.executable, "-m", "headwater", "--catalog", url, "db", "upgrade"],
                          capture_output=True, text=True, timeout=120)
    assert code.returncode == 0, code.stderr
    engine = create_catalog_engine(url)
    assert current_revision(engine) == HEAD_REVISION
    engine.dispose()
    with Catalog.open(url, store_url=str(tmp_path / "store")) as cat:
        src = tmp_path / "f.txt"
        src.write_text("x\n")
        assert cat.log(src, name="after").number == 1


# -- symbolic links and special files: an explicit choice, and a warning -----------------------
@pytest.fixture
def linked_tree(tmp_path: Path) -> Path:
    """A tree with a link inside it, a link out of it, a directory link and a FIFO."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not part of the tree\n")
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta\n")
    (root / "link-in.txt").symlink_to(root / "sub" / "b.txt")
    (root / "link-out.txt").symlink_to(outside / "secret.txt")
    (root / "dirlink").symlink_to(root / "sub")
    os.mkfifo(root / "pipe")
    return root


def _paths(out: str) -> list[str]:
    import json

    return [f["path"] for f in json.loads(out)["files"]]


def test_default_follows_links_inside_and_warns_about_the_rest(hw, linked_tree: Path) -> None:
    code, _, err = hw("add", str(linked_tree), "--name", "linked")
    assert code == 0, err
    code, out, _ = hw("show", "linked@1", "--json")
    assert _paths(out) == ["a.txt", "link-in.txt", "sub/b.txt"]
    warnings = [ln for ln in err.splitlines() if ln.startswith("headwater: warning: ")]
    assert len(warnings) == 1, err
    assert "3 entries" in warnings[0]
    for name in ("link-out.txt", "outside the tree", "dirlink", "pipe", "not a regular file"):
        assert name in warnings[0], warnings[0]


@pytest.mark.parametrize(("policy", "expected"), [
    ("none", ["a.txt", "sub/b.txt"]),
    ("all", ["a.txt", "link-in.txt", "link-out.txt", "sub/b.txt"]),
])
def test_follow_symlinks_choices(hw, linked_tree: Path, policy: str,
                                 expected: list[str]) -> None:
    code, _, err = hw("add", str(linked_tree), "--name", "linked", "--follow-symlinks", policy)
    assert code == 0, err
    assert _paths(hw("show", "linked@1", "--json")[1]) == expected
    assert "pipe" in err and "dirlink" in err


def test_follow_symlinks_through_the_api_and_a_shared_walk(
    sqlite_catalog: Catalog, linked_tree: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The helper process of a large tree's walk applies the same policy and reports the same
    skipped entries as listing in this process."""
    from headwater.store import snapshot as snapshot_mod

    monkeypatch.setattr(snapshot_mod, "HELPER_MIN_DIRS", 0)
    for sub in ("x", "y", "z"):
        (linked_tree / sub).mkdir()
        (linked_tree / sub / "f.txt").write_text(sub)
        (linked_tree / sub / "out.txt").symlink_to(linked_tree.parent / "outside" / "secret.txt")
    with caplog.at_level("WARNING", logger="headwater.store.snapshot"):
        v = sqlite_catalog.log(linked_tree, name="linked")
    assert "secret.txt" not in {e.path.rsplit("/", 1)[-1] for e in v.manifest()}
    assert "out.txt" not in {e.path.rsplit("/", 1)[-1] for e in v.manifest()}
    assert "6 entries" in caplog.text and "z/out.txt" in caplog.text
    v2 = sqlite_catalog.log(linked_tree, name="linked-all", follow_symlinks="all")
    assert {"link-out.txt", "x/out.txt"} <= {e.path for e in v2.manifest()}


# -- a moved HEADWATER_HOME ------------------------------------------------------------------------
def _cli(home: Path, *args: str, extra_env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HEADWATER_CATALOG_URL", "HEADWATER_STORE_URL")}
    env.update({"HEADWATER_HOME": str(home), **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "headwater", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_moved_headwater_home_stays_readable(tmp_path: Path, data_dir: Path) -> None:
    import shutil

    old, new = tmp_path / "old-home", tmp_path / "new-home"
    assert _cli(old, "add", str(data_dir), "--name", "files").returncode == 0
    shutil.move(old, new)
    proc = _cli(new, "get", "files@1", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "sub" / "c.txt").read_text() == "gamma\n"
    assert _cli(new, "verify").returncode == 0
    # gc in the moved home finds the version's objects live and deletes none of them
    gc = _cli(new, "gc", "--grace", "0", "--json")
    assert gc.returncode == 0, gc.stderr
    assert json_loads(gc.stdout)["deleted"] == 0
    assert _cli(new, "get", "files@1", str(tmp_path / "out2")).returncode == 0


def json_loads(text: str) -> dict:
    import json

    return json.loads(text)


def test_moved_outside_store_names_the_fix(tmp_path: Path, data_dir: Path) -> None:
    """A store that is not the catalog's own is recorded by its path: when it moves, reading
    says which command repoints it, and that command works."""
    import shutil

    home = tmp_path / "home"
    old_store, new_store = tmp_path / "stores" / "a", tmp_path / "stores" / "b"
    env = {"HEADWATER_STORE_URL": str(old_store)}
    assert _cli(home, "add", str(data_dir), "--name", "files", extra_env=env).returncode == 0
    shutil.move(old_store, new_store)
    proc = _cli(home, "get", "files@1", str(tmp_path / "out"))
    line = _one_error_line(proc.returncode, proc.stderr, str(old_store), "does not exist")
    assert f"headwater store relocate {old_store} NEW_PATH" in line
    fixed = _cli(home, "store", "relocate", str(old_store), str(new_store))
    assert fixed.returncode == 0, fixed.stderr
    assert "relocated 1 version(s)" in fixed.stdout
    proc = _cli(home, "get", "files@1", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha\n"
    bad = _cli(home, "store", "relocate", str(new_store), str(tmp_path / "nothing"))
    _one_error_line(bad.returncode, bad.stderr, "not a Headwater store")


def test_migration_makes_existing_own_store_rows_relative(tmp_path: Path,
                                                          data_dir: Path) -> None:
    """A catalog written before migration 0007 (absolute own-store paths) is rewritten by it
    and then survives a move too. Only 0007 runs (stamped around it), so later migrations'
    downgrades are not part of this test."""
    import shutil

    import sqlalchemy as sa
    from alembic import command

    from headwater.catalog import db

    old, new = tmp_path / "old-home", tmp_path / "new-home"
    assert _cli(old, "add", str(data_dir), "--name", "files").returncode == 0
    engine = db.create_catalog_engine(f"sqlite:///{old / 'catalog.db'}")
    with engine.begin() as conn:  # the rows as Headwater wrote them before 0007
        conn.execute(sa.text("UPDATE versions SET store_url = :p"), {"p": str(old / "store")})
    cfg = db.alembic_config(engine)
    command.stamp(cfg, "0006")
    command.upgrade(cfg, "0007")
    command.stamp(cfg, "head")
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT store_url FROM versions")).scalar() == "."
    engine.dispose()
    shutil.move(old, new)
    proc = _cli(new, "get", "files@1", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
