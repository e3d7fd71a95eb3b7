"""``make demo`` tells the rebuild story end to end, and every command it prints works pasted.

The demo runs each command by handing the printed text to bash, so its success already proves
the mutating ones (``airflow dags test``, ``headwater add``/``retract``); the read-only ones are
pasted again here, in a fresh shell, after the demo ended.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
READ_ONLY = (" ls ", " lineage ", " impact ", " status ", " rebuild ")


def test_demo_story_and_its_printed_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "OPENLINEAGE", "HEADWATER_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "headwater_airflow.demo", "--n-users", "300",
         "--airflow-home", str(tmp_path / "airflow")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    out = proc.stdout
    assert proc.returncode == 0, out[-5000:] + proc.stderr[-5000:]
    commands = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    assert sum("dags test headwater_reference_pipeline" in c for c in commands) == 2
    assert any(" retract reference/sms_spam_corpus@1 " in c for c in commands)
    rebuild_run = next(c for c in commands if "headwater_pins" in c)
    assert "reference/sms_spam_corpus@2" in rebuild_run and "--conf" in rebuild_run
    # the story's outcome
    assert "tasks clear" not in out
    assert "input reference/sms_spam_corpus@1 is retracted" in out  # stale before
    assert "committed reference/spam_model@2" in out and "reused reference/users_raw@1" in out
    assert out.count("nothing to rebuild") == 1  # the second rebuild
    after = out.split("=== 7.")[1].split("=== 8.")[0]
    assert " stale " not in after and " fresh " in after  # status after the rebuild
    # pasted again in a fresh shell from the repository root, each read-only one works
    pasted = [c for c in commands if any(w in c for w in READ_ONLY)]
    assert len(pasted) >= 6
    for command in pasted:
        again = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=300)
        assert again.returncode == 0, (command, again.stdout[-2000:], again.stderr[-2000:])
    final = subprocess.run(["bash", "-c", pasted[-1]], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert "nothing to rebuild" in final.stdout
