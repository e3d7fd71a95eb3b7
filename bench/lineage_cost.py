"""What lineage costs a `headwater add` (issue 14, section 5): each run is a fresh process, the
configurations are interleaved round by round, and the median wall and CPU (user+sys, from
``os.wait4``) of the unchanged re-logs are printed (the first add of each configuration, which
creates the version, is left out).

    .venv/bin/python bench/lineage_cost.py ROUNDS FILES CONFIG...

CONFIG: ``off`` (HEADWATER_LINEAGE=off), ``on`` (lineage on, the default, no OpenLineage
transport configured), ``dead`` (OPENLINEAGE_URL pointing at an unused 127.0.0.1 port: a backend
that is down, with the HTTP transport's default retries). Each configuration gets its own
HEADWATER_HOME; all log the same generated directory of FILES small files.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    rounds, files, configs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    extra = {
        "off": {"HEADWATER_LINEAGE": "off"},
        "on": {},
        "dead": {"OPENLINEAGE_URL": f"http://127.0.0.1:{dead_port()}"},
    }
    data = Path(tempfile.mkdtemp(prefix="hw-lineage-data-"))
    for i in range(files):
        d = data / f"d{i % 50}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_text(f"row {i}\n" * 10)
    envs: dict[str, tuple[dict[str, str], Path]] = {}
    for c in configs:
        home = Path(tempfile.mkdtemp(prefix=f"hw-lineage-{c}-"))
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "HEADWATER"))
        }
        env["HEADWATER_HOME"] = str(home)
        env.update(extra[c])
        envs[c] = (env, home)

    def once(c: str) -> tuple[float, float]:
        env, home = envs[c]
        t = time.perf_counter()
        p = subprocess.Popen([HEADWATER, "add", str(data), "--name", "small"], env=env, cwd=home,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        assert status == 0, f"{c}: exit status {status}"
        return wall, usage.ru_utime + usage.ru_stime

    for c in configs:
        once(c)  # creates the version
    results: dict[str, list[tuple[float, float]]] = {c: [] for c in configs}
    for _ in range(rounds):
        for c in configs:
            results[c].append(once(c))
    for c in configs:
        wall = [r[0] for r in results[c]]
        cpu = [r[1] for r in results[c]]
        print(f"{c:5s} files={files}: wall median {statistics.median(wall):.3f} s "
              f"(min {min(wall):.3f}, max {max(wall):.3f}); cpu median "
              f"{statistics.median(cpu):.3f} s; n={rounds}")


if __name__ == "__main__":
    main()
