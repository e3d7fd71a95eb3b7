"""What the ``headwater`` command's process does with the objects its imports create: the API
(SQLAlchemy, the catalog's models) is imported with the cyclic collector off and, in the
command's own process, frozen out of it; a program calling the CLI in-process keeps its
collector as it was (issue 18: an unchanged re-log of 100k files)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner


def test_the_command_freezes_what_the_api_import_made(tmp_path: Path) -> None:
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('STATE', gc.get_freeze_count(), gc.isenabled(),"
        " 'sqlalchemy' in sys.modules, file=sys.stderr))\n"
        "sys.argv = ['headwater', 'ls', '--json']\n"
        "from headwater.cli import run\n"
        "run()\n"
    )
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home"), "HEADWATER_LINEAGE": "off"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    state = next(line for line in done.stderr.splitlines() if line.startswith("STATE"))
    _, frozen, enabled, imported = state.split()
    assert imported == "True" and enabled == "True"
    assert int(frozen) > 50_000  # SQLAlchemy's and the models' objects, not only click's


def test_an_in_process_caller_keeps_its_collector(tmp_path: Path) -> None:
    from headwater.cli import main

    before = gc.get_freeze_count()
    result = CliRunner().invoke(
        main, ["--catalog", f"sqlite:///{tmp_path / 'c.db'}", "--store", str(tmp_path / "s"),
               "ls", "--json"])
    assert result.exit_code == 0, result.output
    assert gc.isenabled()
    assert gc.get_freeze_count() == before
