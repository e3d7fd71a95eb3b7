"""``headwater retract|unretract|status`` and the alias flags of ``ls``/``versions``/``show``,
through the real CLI (click's runner) on SQLite."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from headwater.cli import main


def test_retract_status_and_alias_flags(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    base = ["--catalog", db, "--store", str(tmp_path / "store")]
    runner = CliRunner()

    def hw(*args: str, code: int = 0) -> str:
        r = runner.invoke(main, [*base, *args])
        assert r.exit_code == code, r.output
        return r.output

    (tmp_path / "a.txt").write_text("a")
    hw("add", str(tmp_path / "a.txt"), "--name", "corpus")
    hw("alias", "corpus@1", "production")
    assert "RETRACTED" not in hw("ls")
    hw("retract", "corpus@1", "--reason", "mislabelled [spam]", "--actor", "ana")
    assert "already retracted" in hw("retract", "corpus@1", "--reason", "x", code=2)
    assert "production→1 (RETRACTED)" in hw("ls")
    assert "production (RETRACTED)" in hw("versions", "corpus")
    shown = hw("show", "corpus@production")
    assert "RETRACTED by ana" in shown and "mislabelled [spam]" in shown
    (st,) = json.loads(hw("status", "corpus", "--json"))
    assert st == {"ref": "default/corpus@1", "status": "retracted", "aliases": ["production"],
                  "causes": [{"cause": "retracted", "reason": "mislabelled [spam]"}]}
    listed = hw("status")
    assert "default/corpus@1 (production)" in listed and "mislabelled [spam]" in listed
    hw("unretract", "corpus@1", "--reason", "false alarm")
    assert json.loads(hw("status", "default", "--json"))[0]["status"] == "fresh"
    assert "RETRACTED" not in hw("ls")
    assert "nope" in hw("status", "nope", code=2)
