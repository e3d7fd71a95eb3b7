"""The progress bar of a long add/get: counts, bytes, rate and time left; silent when piped."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from headwater.progress import NullProgress, RichProgress, for_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def test_the_bar_shows_counts_bytes_rates_and_time_left() -> None:
    out = io.StringIO()
    bar = RichProgress(file=out)
    bar.start("hashing [draft]/", 10)
    for _ in range(3):
        time.sleep(0.25)
        bar.advance(1, nbytes=5 * 1024 * 1024)
    bar._bar.refresh()
    text = " ".join(ANSI.sub("", out.getvalue()).split())
    bar.stop()
    assert "hashing [draft]/" in text  # a path is data, not rich markup
    assert "3/10 files" in text
    assert "15.0 MiB" in text and "MiB/s" in text and "files/s" in text
    assert re.search(r"\d:\d\d:\d\d", text)  # time left / elapsed


def test_an_unknown_total_still_counts() -> None:
    out = io.StringIO()
    bar = RichProgress(file=out)
    bar.start("hashing data/", None)
    bar.advance(1234)
    bar._bar.refresh()
    text = " ".join(ANSI.sub("", out.getvalue()).split())
    bar.stop()
    assert "1,234 files" in text


def test_piped_output_gets_no_bar(tmp_path: Path) -> None:
    assert isinstance(for_terminal(), NullProgress)  # pytest captures stderr: not a terminal
    data = tmp_path / "data"
    data.mkdir()
    for i in range(50):
        (data / f"f{i}.txt").write_text(str(i))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(tmp_path / "home")
    proc = subprocess.run([sys.executable, "-m", "headwater", "add", str(data), "--name", "d"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "━" not in proc.stdout
