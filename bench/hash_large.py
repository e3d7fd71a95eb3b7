"""Large-file hashing: BLAKE3 over a memory map vs over 1-8 MiB ``preadv`` reads (AUTO threads).

``python bench/hash_large.py [SIZE_MIB]`` writes a random file of SIZE_MIB (default 512), reads it
once to warm the page cache, then prints GB/s of each way in three rounds. Headwater reads
(``store/hashing.py``): a memory map dies of SIGBUS when the file shrinks under it.
"""

from __future__ import annotations

import mmap
import os
import sys
import tempfile
import time

import blake3


def main() -> None:
    size = int(sys.argv[1] if len(sys.argv) > 1 else 512) << 20
    with tempfile.NamedTemporaryFile() as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
        f.flush()
        fd = f.fileno()

        def mapped() -> str:
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as m:
                return blake3.blake3(m, max_threads=blake3.blake3.AUTO).hexdigest()

        def reads(chunk: int) -> str:
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            view = memoryview(bytearray(chunk))
            offset = 0
            while offset < size:
                n = os.preadv(fd, [view], offset)
                h.update(view[:n])
                offset += n
            return h.hexdigest()

        ways = {"mmap": mapped, **{f"read{c}M": (lambda c=c: reads(c << 20)) for c in (1, 2, 4, 8)}}
        mapped()
        for round_ in range(3):
            for name, way in ways.items():
                t = time.perf_counter()
                way()
                print(f"round {round_} {name:7s} {size / (time.perf_counter() - t) / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
