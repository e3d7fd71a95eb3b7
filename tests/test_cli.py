"""The CLI end to end, in a subprocess like a user's shell: output, --json, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_errors_in_a_real_shell_are_one_line(tmp_path: Path) -> None:
    """The same as a subprocess: nothing but one line on stderr, exit status 2."""
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "headwater", "show", "nope@3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "headwater: error: no dataset named default/nope; `headwater ls` lists the datasets"]


def test_add_versions_show_diff_alias_get_lineage(hw, data_dir: Path, tmp_path: Path) -> None:
    assert "logged default/files@1" in hw("add", str(data_dir), "--name", "files",
                                          "--meta", "owner=ml").stdout
    assert "unchanged" in hw("add", str(data_dir), "--name", "files").stdout
    (data_dir / "a.txt").write_text("new content\n")
    hw("add", str(data_dir), "--name", "files")
    listed = json.loads(hw("ls", "--json").stdout)
    assert [(d["full_name"], d["versions"]) for d in listed] == [("default/files", 2)]
    versions = json.loads(hw("versions", "files", "--json").stdout)
    assert [v["number"] for v in versions] == [1, 2]
    shown = json.loads(hw("show", "files@1", "--json").stdout)
    assert shown["metadata"] == {"owner": "ml"} and len(shown["files"]) == 5
    d = json.loads(hw("diff", "files@1", "files@2", "--json").stdout)
    assert [c["path"] for c in d["files"]["changed"]] == ["a.txt"]
    assert "~ a.txt" in hw("diff", "files@1", "files@2").stdout
    hw("alias", "files@1", "production")
    hw("get", "files@production", str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha\n"
    g = json.loads(hw("lineage", "files@1", "--down", "--json").stdout)
    assert g["root"] == "version:default/files@1"
    runs = json.loads(hw("runs", "--json").stdout)
    assert len(runs) == 3 and all(r["state"] == "COMPLETED" for r in runs)
    assert "all good" in hw("verify").stdout
    assert json.loads(hw("gc", "--json", "--grace", "0").stdout)["deleted"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (("show", "nope"), "no dataset named default/nope"),
    (("show", "x@@1"), "more than one '@'"),
    (("add", "/does/not/exist", "--name", "x"), "does not exist"),
    (("add", ".", "--name", "bad name"), "invalid dataset name"),
    (("lineage", "nope", "--depth", "-1"), "-1"),
])
def test_user_mistakes_are_one_line_exit_2(hw, args: tuple[str, ...], message: str) -> None:
    proc = hw(*args, ok=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_database_is_one_line(hw) -> None:
    proc = hw("--catalog", "postgresql://nobody:secret@127.0.0.1:1/x", "ls", ok=False)
    assert proc.returncode == 2 and "cannot reach the catalog" in proc.stderr
    assert "secret" not in proc.stderr and "Traceback" not in proc.stderr


def test_db_upgrade(hw) -> None:
    assert "schema" in hw("db", "upgrade").stdout
