"""Hash throughput on this machine: the measurement behind docs/adr/0002-hash.md.

Run: .venv/bin/python bench/hashes.py [--mib 256]
Prints MB/s for each candidate on one thread, plus BLAKE3 with its own threads, and every figure
as a ratio to MD5 measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable

import blake3
import xxhash


def bench(name: str, fn: Callable[[bytes], object], data: bytes, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - t0)
    return len(data) / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    data = os.urandom(args.mib << 20)
    results = {
        "md5": bench("md5", lambda d: hashlib.md5(d).digest(), data),
        "sha256": bench("sha256", lambda d: hashlib.sha256(d).digest(), data),
        "blake3 (1 thread)": bench("blake3", lambda d: blake3.blake3(d).digest(), data),
        "blake3 (auto threads)": bench(
            "blake3-mt", lambda d: blake3.blake3(d, max_threads=blake3.blake3.AUTO).digest(),
            data),
        "xxh3_128": bench("xxh3", lambda d: xxhash.xxh3_128(d).digest(), data),
    }
    base = results["md5"]
    print(f"{args.mib} MiB of random bytes, best of 3, {os.cpu_count()} CPUs")
    for name, mbps in results.items():
        print(f"  {name:24s} {mbps:8.0f} MB/s   {mbps / base:5.2f}x md5")


if __name__ == "__main__":
    main()
