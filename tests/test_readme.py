"""The README is true: its Python blocks run as written, its commands exist.

The Airflow block runs under ``airflow dags test`` in tests/airflow/test_readme_airflow.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from headwater import Catalog
from tests.readme_blocks import README, blocks

REPO = README.parent


def run_block(code: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(home)
    script = cwd / "block.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"README block failed:\n{code}\n{proc.stderr[-4000:]}"
    return proc


def run_python_api_block(tmp_path: Path) -> Path:
    """Runs the README's Python API block in ``tmp_path``; returns its HEADWATER_HOME."""
    home = tmp_path / "home"
    (code,) = blocks("python")["Python API"]
    run_block(code, tmp_path, home)
    return home


def test_the_python_api_block_runs_as_written(tmp_path: Path) -> None:
    home = run_python_api_block(tmp_path)
    cat = Catalog.open(f"sqlite:///{home / 'catalog.db'}", store_url=str(home / "store"))
    assert cat.get("raw/users@production").number == 1
    assert cat.get("raw/users@latest").number == 2
    assert cat.get("clean/users@latest").to_arrow().num_rows == 2  # the spam row is gone
    assert cat.get("raw/exports@latest").number == 1


def test_the_beam_block_runs_as_written_after_the_python_block(tmp_path: Path) -> None:
    home = run_python_api_block(tmp_path)
    (code,) = blocks("python")["Beam"]
    run_block(code, tmp_path, home)
    cat = Catalog.open(f"sqlite:///{home / 'catalog.db'}", store_url=str(home / "store"))
    rows = cat.get("beam/users@latest").to_arrow().sort_by("record_id")
    # record 3's e-mail ("WIN CASH NOW") is not an address: Clean routes it to the dead letters
    assert rows.column("record_id").to_pylist() == ["1", "2"]


def test_the_quickstart_commands_are_make_targets() -> None:
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    (code,) = blocks()["Quickstart"]
    commands = [line.split("#")[0].split() for line in code.splitlines() if line.strip()]
    assert commands == [["make", "demo"], ["make", "test"]]
    assert {c[1] for c in commands} <= targets
    assert (REPO / ".ci" / "run").read_text().strip().splitlines()[-1].strip() == "make test"


def synopsis_commands() -> list[str]:
    """Every command the README's CLI synopsis names (``a | b`` and ``a|b`` are alternatives)."""
    (code,) = blocks()["CLI"]
    names: list[str] = []
    for line in code.splitlines():
        for chunk in line.split("headwater ")[1:]:
            chunk = chunk.split("(")[0]
            for alt in re.split(r"\s\|\s", chunk):
                first = alt.split()[0] if alt.split() else ""
                names += [n for n in first.split("|") if re.fullmatch(r"[a-z][a-z-]*", n)]
    return list(dict.fromkeys(names))


@pytest.mark.parametrize("command", synopsis_commands())
def test_every_command_in_the_cli_synopsis_exists(hw, command: str) -> None:
    proc = hw(command, "--help", ok=False)
    assert proc.returncode == 0, f"headwater {command} --help: {proc.stderr}"


@pytest.mark.slow
def test_the_provider_install_commands_work_as_written(tmp_path: Path) -> None:
    """The wheel builds under the name the README installs, and the install resolves against
    the constraints (``--dry-run`` in this environment, which already holds every dependency)."""
    (code,) = blocks("sh")["Airflow"]
    pip = [sys.executable, "-m", "pip"]
    for line in code.splitlines():
        args = shlex.split(line, comments=True)
        assert args[0] == "pip", line
        if args[1] == "wheel":
            args = [*args[:-1], "--no-build-isolation", "--quiet", str(REPO)]  # "." = the checkout
            args[args.index("-w") + 1] = str(tmp_path / "dist")
        else:
            spec = args[-1].replace("dist/", f"{tmp_path}/dist/")
            args = [*args[:-1], "--dry-run", "--quiet", "--no-index", spec]
            args[args.index("-c") + 1] = str(REPO / "requirements/constraints.txt")
        proc = subprocess.run([*pip, *args[1:]], capture_output=True, text=True, timeout=600,
                              cwd=tmp_path)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
