"""What the reused-object check (issue 14) costs an unchanged re-log, in-process.

    .venv/bin/python bench/relog_check_cost.py --files 20000 [--workdir DIR] [--repeat 7] [--s3]
        [--lineage on|off]

Generates ``--files`` small files (1-8 KiB, fixed seed) under the work directory, logs them once
into a fresh SQLite catalog and local store, then re-logs them unchanged ``--repeat`` times and
prints the median time of a re-log and of the part spent checking the reused objects
(``snapshot._Build.damaged``: presence, flags, sizes where needed), timed by wrapping it. Run it
with ``PYTHONPATH=<older checkout>/src`` to time code from before that check (then only the
total is printed meaningfully). ``--s3``: the store is a fresh bucket on a local moto server
(``tests/emulators.py``) instead of a local directory. ``--lineage``: on (the default, as users
run it: every log records its OpenLineage events in the catalog's outbox) or off, as in
``bench/snapshot.py``; it overrides ``HEADWATER_LINEAGE``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--s3", action="store_true", help="store on a local moto S3 server")
    ap.add_argument("--lineage", choices=("on", "off"), default="on",
                    help="HEADWATER_LINEAGE for the catalog (default on, the product default)")
    args = ap.parse_args(argv)
    # through the environment, as bench/snapshot.py does: older checkouts read it too
    os.environ["HEADWATER_LINEAGE"] = args.lineage
    print(f"lineage: {args.lineage}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hw-relog-"))
    data = work / "data"
    if not data.exists():
        rng = random.Random(7)
        for i in range(args.files):
            d = data / f"d{i // 1000:03d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:06d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 8192)))
        old = time.time_ns() - 3600 * 10**9  # older than the stat cache's "recent" window
        for p in data.rglob("*.bin"):
            os.utime(p, ns=(old, old))

    from headwater import Catalog
    from headwater.store import snapshot

    spent: list[float] = []
    real = getattr(snapshot._Build, "damaged", None)

    def timed(self: object, key: str) -> set[str]:
        t = time.perf_counter()
        try:
            return real(self, key)  # type: ignore[misc, no-any-return]
        finally:
            spent.append(time.perf_counter() - t)

    if real is not None:  # absent before issue 14: then only the total
        snapshot._Build.damaged = timed
    import contextlib

    stack = contextlib.ExitStack()
    if args.s3:
        import sys

        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.emulators import moto_s3_server, new_s3_bucket

        bucket = new_s3_bucket(stack.enter_context(moto_s3_server()))
        (work / "catalog.db").unlink(missing_ok=True)
        cat = Catalog.open(f"sqlite:///{work}/catalog.db", store_url=bucket.url,
                           store_options=bucket.storage_options)
    else:
        cat = Catalog.open(f"sqlite:///{work}/catalog.db", store_url=str(work / "store"))
    cat.log(data, name="bench")
    cat.log(data, name="bench")  # the stat cache rows now name the committed manifest
    total: list[float] = []
    spent.clear()
    for _ in range(args.repeat):
        t = time.perf_counter()
        assert not cat.log(data, name="bench").created
        total.append(time.perf_counter() - t)
    check = statistics.median(spent) if spent else 0.0
    print(f"{args.files} files, {args.repeat} unchanged re-logs: median "
          f"{statistics.median(total):.3f} s per re-log; reused-object check median "
          f"{check:.3f} s")
    cat.close()
    stack.close()


if __name__ == "__main__":
    main()
