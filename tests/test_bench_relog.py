"""``bench/relog_check_cost.py`` measures what users run: lineage on by default (the product
default, as ``bench/snapshot.py``), off only when asked with ``--lineage off``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from headwater import Catalog
from headwater.lineage.emitter import outbox_status

ROOT = Path(__file__).resolve().parents[1]


def _run_bench(workdir: Path, *extra: str) -> tuple[str, int]:
    """Run the bench on a few files; its output and the events its catalog recorded."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HEADWATER_", "OPENLINEAGE"))}  # defaults; no transport
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "relog_check_cost.py"), "--files", "30",
         "--repeat", "1", "--workdir", str(workdir), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    with Catalog.open(f"sqlite:///{workdir}/catalog.db",
                      store_url=str(workdir / "store")) as cat:
        status = outbox_status(cat.engine)
    return out.stdout, sum(status[state] for state in ("pending", "failed", "delivered"))


@pytest.mark.parametrize(("extra", "lineage"), [((), "on"), (("--lineage", "off"), "off")])
def test_relog_bench_runs_lineage_on_by_default(extra: tuple[str, ...], lineage: str,
                                                tmp_path: Path) -> None:
    stdout, events = _run_bench(tmp_path, *extra)
    assert f"lineage: {lineage}" in stdout
    assert "1 unchanged re-logs" in stdout
    assert (events > 0) is (lineage == "on")
