"""Profile an unchanged re-log into a moto S3 store, in-process (issue 18).

    AWS_EC2_METADATA_DISABLED=true .venv/bin/python bench/s3_relog_profile.py --files 100000

Generates ``--files`` small files (1-8 KiB, 2,000 folders) under ``--workdir``, logs them cold
into a fresh bucket on a moto server of its own, then logs them again under ``cProfile`` and
prints the re-log's time, the requests moto logged for it, and the top of the profile.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    sys.path.insert(0, str(REPO))
    from tests.emulators import moto_s3_server, new_s3_bucket

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hw-relog-"))
    root = work / "data"
    if not root.exists():
        rng = random.Random(1)
        for i in range(args.files):
            d = root / f"p{i % 2000}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}").write_bytes(rng.randbytes(rng.randint(1024, 8192)))
        time.sleep(2.5)  # older than the stat cache's "recent" window
    from headwater import Catalog

    with moto_s3_server() as server:
        bucket = new_s3_bucket(server)
        os.environ["HEADWATER_HOME"] = str(work / f"home-{bucket.bucket}")

        def requests() -> int:
            text = Path(server.log_path).read_text(errors="replace")
            return sum(1 for line in text.splitlines() if bucket.bucket in line)

        cat = Catalog.open(store_url=bucket.url, store_options=bucket.storage_options)
        t = time.perf_counter()
        cat.log(str(root), name="x")
        print(f"cold log: {time.perf_counter() - t:.2f} s")
        cat.close()
        before = requests()
        cat = Catalog.open(store_url=bucket.url, store_options=bucket.storage_options)
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        v = cat.log(str(root), name="x")
        prof.disable()
        print(f"unchanged re-log: {time.perf_counter() - t:.2f} s, created={v.created}, "
              f"requests={requests() - before}")
        cat.close()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(20)


if __name__ == "__main__":
    main()
