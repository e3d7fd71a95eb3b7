"""Snapshot performance against DVC, measured in one run on one machine (issue 7).

Run (from the repository root; the full run takes about 15 minutes on 2 cores):

    .venv/bin/python bench/snapshot.py                       # 100k small files + 20 x 100 MiB
    .venv/bin/python bench/snapshot.py --files 5000 --big-files 2 --skip-s3   # a quick look

For each data set (generated with a fixed seed under ``--workdir``, default a fresh directory in
/tmp): log it cold; log it again unchanged; change 10 files, add 5, delete 5 and log again; get
the last version into a new folder. DVC (installed by this script into a throwaway virtual
environment, ``bench/.cache/dvc-venv``) does the same on the same files in the same run: ``dvc
add`` cold, unchanged, modified, and ``dvc checkout`` into a second workspace sharing the cache.

Every operation runs in a subprocess of its own (``headwater add``/``get`` as DVC runs ``dvc add``,
or with ``--api`` a small driver calling the Python API) so its wall time, CPU time and peak RSS
are that process's alone (``os.wait4``). The ``--api`` driver also reports the time of the
operation inside the process, without interpreter start and imports. Also measured: plain read
speed (``cat`` of every file to /dev/null, page cache warm) and MD5 throughput on one core over
the large files (what DVC hashes with). Every figure is printed as a ratio against those
baselines. ``--s3`` runs the small-file case again against a
local moto S3 server (``tests/emulators.py``). ``--many-files 1000000`` logs, re-logs and gets a
million 1 KiB files (generated once, kept under ``bench/.cache``) and checks every operation's
peak RSS against 500 MB.

The benchmark never deletes anything until the very end: on ext4 without a journal (this VM) the
inode allocator skips recently deleted inodes, and file creation right after a large ``rm -rf``
can be ten times slower for a few minutes. Leave a few minutes between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DVC_VENV = REPO / "bench" / ".cache" / "dvc-venv"
DVC_SPEC = "dvc"
SEED = 20261123
MiB = 1 << 20

# The headwater driver: one operation per process; prints the in-process time as JSON.
DRIVER = r"""
import json, sys, time
op, args = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
from headwater import Catalog
cat = Catalog.open()
t1 = time.perf_counter()
if op == "log":
    v = cat.log(args[0], name=args[1])
    out = {"created": v.created, "files": v.file_count, "digest": v.digest}
elif op == "get":
    v = cat.get(args[0])
    v.checkout(args[1])
    out = {"files": v.file_count}
else:
    raise SystemExit(f"unknown op {op}")
t2 = time.perf_counter()
cat.close()
out.update(open_s=t1 - t0, op_s=t2 - t1)
print("HWBENCH " + json.dumps(out))
"""


@dataclass
class Result:
    label: str
    tool: str
    wall: float
    cpu: float
    rss_mb: float
    op: float | None = None
    files: int = 0
    nbytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall if self.wall else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / self.wall if self.wall else 0.0


def run(
    argv: list[str], *, label: str, tool: str, env: dict[str, str] | None = None,
    cwd: Path | None = None, files: int = 0, nbytes: int = 0,
) -> Result:
    """Run ``argv``; its own wall, CPU (user+sys) and peak RSS, from ``os.wait4``.

    Dirty pages are flushed first (not timed), so no operation is throttled by the writeback of
    the one before it (or of the data generation).
    """
    os.sync()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{label} ({tool}) failed: {' '.join(argv)}\n{stdout}\n{stderr}")
    res = Result(label, tool, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                 files=files, nbytes=nbytes)
    for line in stdout.splitlines():
        if line.startswith("HWBENCH "):
            res.extra = json.loads(line[8:])
            res.op = res.extra.get("op_s")
    return res


# ------------------------------------------------------------------------------- data
def generate_small(root: Path, n: int, rng: random.Random) -> int:
    """``n`` files of 1-8 KiB in a tree of 50 x 40 folders."""
    total = 0
    made: set[Path] = set()
    for i in range(n):
        d = root / f"part-{i % 50:02d}" / f"group-{(i // 50) % 40:02d}"
        if d not in made:
            d.mkdir(parents=True, exist_ok=True)
            made.add(d)
        size = rng.randint(1024, 8192)
        (d / f"file-{i:07d}.bin").write_bytes(rng.randbytes(size))
        total += size
    return total


def generate_big(root: Path, n: int, mib: int, rng: random.Random) -> int:
    root.mkdir(parents=True, exist_ok=True)
    block = rng.randbytes(MiB)
    for i in range(n):
        with open(root / f"big-{i:02d}.bin", "wb") as f:
            for j in range(mib):
                # cheap to make, different per MiB and per file: defeats any dedup below 1 MiB
                f.write(j.to_bytes(8, "little") + i.to_bytes(8, "little") + block[16:])
    return n * mib * MiB


def modify(root: Path, rng: random.Random, *, change: int, add: int, delete: int) -> None:
    """Change ``change`` files in place, add ``add``, delete ``delete`` (fixed choices)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    change, delete = min(change, len(files) // 2), min(delete, len(files) // 4)
    picked = rng.sample(files, change + delete)
    for p in picked[:change]:
        size = p.stat().st_size
        if size > 64 * MiB:  # a large file: overwrite one MiB in the middle
            with open(p, "r+b") as f:
                f.seek(size // 2)
                f.write(rng.randbytes(MiB))
        else:
            p.write_bytes(rng.randbytes(size))
    for p in picked[change:]:
        p.unlink()
    like = picked[-1]
    for i in range(add):
        size = rng.choice([p for p in files[:1] + picked[:change] if p.exists()]).stat().st_size
        (like.parent / f"added-{i}.bin").write_bytes(rng.randbytes(size))


def tree_stats(root: Path) -> tuple[int, int]:
    n = total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            n += 1
            total += os.path.getsize(os.path.join(dirpath, name))
    return n, total


# ------------------------------------------------------------------------------- baselines
def read_speed(root: Path, files: int, nbytes: int) -> Result:
    return run(
        ["sh", "-c", f"find '{root}' -type f -print0 | xargs -0 cat > /dev/null"],
        label="read all (cat)", tool="cat", files=files, nbytes=nbytes,
    )


def md5_speed(root: Path) -> float:
    """MB/s of hashlib.md5 over the files under ``root`` on one thread (best of 2)."""
    code = (
        "import hashlib, os, sys, time\n"
        "paths = [os.path.join(d, n) for d, _, ns in os.walk(sys.argv[1]) for n in ns]\n"
        "best = 0.0\n"
        "for _ in range(2):\n"
        "    t = time.perf_counter(); total = 0\n"
        "    for p in paths:\n"
        "        h = hashlib.md5()\n"
        "        with open(p, 'rb') as f:\n"
        "            while b := f.read(1 << 20):\n"
        "                h.update(b); total += len(b)\n"
        "    best = max(best, total / 1e6 / (time.perf_counter() - t))\n"
        "print(best)\n"
    )
    out = subprocess.run([PYTHON, "-c", code, str(root)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip())


def blake3_hash_speed(root: Path) -> float:
    """MB/s of headwater's own file hashing over the files under ``root`` (best of 2)."""
    code = (
        "import os, sys, time\n"
        "from headwater.store.hashing import hash_file\n"
        "paths = [os.path.join(d, n) for d, _, ns in os.walk(sys.argv[1]) for n in ns]\n"
        "best = 0.0\n"
        "for _ in range(2):\n"
        "    t = time.perf_counter(); total = sum(hash_file(p)[1] for p in paths)\n"
        "    best = max(best, total / 1e6 / (time.perf_counter() - t))\n"
        "print(best)\n"
    )
    out = subprocess.run([PYTHON, "-c", code, str(root)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip())


# ------------------------------------------------------------------------------- tools
def dvc_bin() -> Path:
    """DVC in its own throwaway virtual environment (created once, cached under bench/.cache)."""
    exe = DVC_VENV / "bin" / "dvc"
    if not exe.exists():
        print(f"installing {DVC_SPEC} into {DVC_VENV} (one time) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DVC_VENV)], check=True)
        subprocess.run(
            [str(DVC_VENV / "bin" / "python"), "-m", "pip", "install", "-q", DVC_SPEC],
            check=True,
        )
    return exe


def dvc_version(exe: Path) -> str:
    return subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()


class Headwater:
    """Runs each operation as the ``headwater`` command (as DVC runs as ``dvc``), or with
    ``api=True`` through the Python API in a small driver that also reports the time spent
    inside the operation (``op s``) and in imports + ``Catalog.open`` (``start s``)."""

    api = False
    #: ``--lineage``: on (the default, as users run it) or off
    lineage = "on"

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.env = {
            **os.environ,
            "HEADWATER_HOME": str(home),
            "HEADWATER_LINEAGE": self.lineage,
            "PYTHONPATH": str(REPO / "src"),
            **(extra_env or {}),
        }

    def log(self, path: Path, name: str, label: str, files: int, nbytes: int,
            env: dict[str, str] | None = None) -> Result:
        argv = ([PYTHON, "-c", DRIVER, "log", str(path), name] if self.api
                else [PYTHON, "-m", "headwater", "add", str(path), "--name", name])
        return run(argv, label=label, tool="headwater", env={**self.env, **(env or {})},
                   files=files, nbytes=nbytes)

    def get(self, ref: str, dest: Path, label: str, files: int, nbytes: int) -> Result:
        argv = ([PYTHON, "-c", DRIVER, "get", ref, str(dest)] if self.api
                else [PYTHON, "-m", "headwater", "get", ref, str(dest)])
        return run(argv, label=label, tool="headwater", env=self.env, files=files,
                   nbytes=nbytes)


class Dvc:
    def __init__(self, exe: Path, repo: Path) -> None:
        self.exe = str(exe)
        self.repo = repo
        self.env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        subprocess.run([self.exe, "init", "--no-scm", "-q"], cwd=repo, check=True, env=self.env)

    def add(self, data: Path, label: str, files: int, nbytes: int) -> Result:
        return run([self.exe, "add", "-q", str(data.relative_to(self.repo))], label=label,
                   tool="dvc", cwd=self.repo, env=self.env, files=files, nbytes=nbytes)

    def get(self, data: Path, dest_repo: Path, label: str, files: int, nbytes: int) -> Result:
        """``dvc checkout`` into a second workspace that shares the first one's cache."""
        dest_repo.mkdir(parents=True)
        subprocess.run([self.exe, "init", "--no-scm", "-q"], cwd=dest_repo, check=True,
                       env=self.env)
        subprocess.run([self.exe, "cache", "dir", str(self.repo / ".dvc" / "cache")],
                       cwd=dest_repo, check=True, env=self.env)
        rel = data.relative_to(self.repo)
        shutil.copy(self.repo / f"{rel}.dvc", dest_repo / f"{rel}.dvc")
        return run([self.exe, "checkout", "-q"], label=label, tool="dvc", cwd=dest_repo,
                   env=self.env, files=files, nbytes=nbytes)


# ------------------------------------------------------------------------------- one case
def case(
    name: str, data: Path, work: Path, args: argparse.Namespace, rng: random.Random,
    *, store_env: dict[str, str] | None = None, with_dvc: bool = True,
) -> list[Result]:
    files, nbytes = tree_stats(data)
    # files written in the last 2 s are "recent" to the stat cache (hashed, not cached): a log
    # right after generation would leave the newest files uncached, which is not what we measure
    time.sleep(2.5)
    results = [read_speed(data, files, nbytes)]
    hw = Headwater(work / f"hw-home-{name}", store_env)
    dvc = Dvc(dvc_bin(), data.parent) if with_dvc else None

    def both(label: str, f: int, b: int) -> None:
        results.append(hw.log(data, name, label, f, b))
        print(f"  {results[-1].label:<28} headwater {results[-1].wall:7.2f} s", flush=True)
        if dvc is not None:
            results.append(dvc.add(data, label, f, b))
            print(f"  {results[-1].label:<28} dvc       {results[-1].wall:7.2f} s", flush=True)

    both("log cold", files, nbytes)
    both("log unchanged", files, nbytes)
    if "big" in name:
        results.append(hw.log(data, name, "re-hash (no stat cache)", files, nbytes,
                              env={"HEADWATER_STAT_CACHE": "off"}))
    modify(data, rng, change=10, add=5, delete=5)
    files2, nbytes2 = tree_stats(data)
    time.sleep(0.1)
    both("log 10 changed/5 new/5 gone", files2, nbytes2)
    results.append(hw.get(f"{name}@latest", work / f"get-hw-{name}", "get to new folder",
                          files2, nbytes2))
    if dvc is not None:
        results.append(dvc.get(data, work / f"get-dvc-{name}", "get to new folder", files2,
                               nbytes2))
    return results


# ------------------------------------------------------------------------------- report
def report(title: str, results: list[Result], *, md5: float | None = None,
           blake: float | None = None) -> None:
    read = next(r for r in results if r.tool == "cat")
    dvc = {r.label: r for r in results if r.tool == "dvc"}
    print(f"\n== {title}: {read.files} files, {read.nbytes / 1e6:.0f} MB")
    print(f"   plain read (cat): {read.wall:.2f} s = {read.mb_per_s:.0f} MB/s, "
          f"{read.files_per_s:.0f} files/s")
    head = (f"   {'operation':<28} {'tool':<9} {'wall s':>7} {'op s':>6} {'cpu s':>6} "
            f"{'RSS MB':>7} {'files/s':>8} {'MB/s':>7} {'x read':>7} {'DVC/hw':>7} "
            f"{'start s':>7}")
    print("   (op s: the operation inside the process; start s: imports + Catalog.open; x read: "
          "MB/s as a fraction of plain read speed; DVC/hw: DVC's wall time / ours)")
    print(head)
    for r in results:
        if r.tool == "cat":
            continue
        base = dvc.get(r.label)
        vs_dvc = f"{base.wall / r.wall:7.2f}" if base is not None and r.tool != "dvc" else ""
        op = f"{r.op:6.2f}" if r.op is not None else ""
        start = f"{r.extra['open_s']:7.2f}" if "open_s" in r.extra else ""
        print(f"   {r.label:<28} {r.tool:<9} {r.wall:7.2f} {op:>6} {r.cpu:6.2f} "
              f"{r.rss_mb:7.0f} {r.files_per_s:8.0f} {r.mb_per_s:7.0f} "
              f"{r.mb_per_s / read.mb_per_s:7.2f} {vs_dvc:>7} {start:>7}")
    if md5 is not None and blake is not None:
        print(f"   md5, one core: {md5:.0f} MB/s; headwater hash_file: {blake:.0f} MB/s "
              f"= {blake / md5:.2f}x md5")
    if dvc:
        print("   targets:")
        for label, want, what in (  # issue 18's targets (issue 7 asked for 3x cold)
            ("log cold", 5.0, "throughput >= 5x DVC"),
            ("log unchanged", 10.0, "time <= 1/10 of DVC"),
            ("log 10 changed/5 new/5 gone", 10.0, "time <= 1/10 of DVC"),
            ("get to new folder", 5.0, "get >= 5x DVC checkout"),
        ):
            hw = next(r for r in results if r.tool == "headwater" and r.label == label)
            d = dvc[label]
            ratio = d.wall / hw.wall
            ok = "MET" if ratio >= want else "NOT met"
            line = f"     {label:<28} {what:<22} DVC/hw {ratio:5.2f} (wall)"
            if hw.op is not None:
                line += f", {d.wall / hw.op:5.2f} (hw in-process)"
            print(line + f"  -> {ok}")


def compile_sources() -> None:
    """Headwater's bytecode, written once before anything is timed. An installed wheel ships it
    (pip compiles on install) and so does DVC's virtual environment here; an editable install
    run with ``PYTHONDONTWRITEBYTECODE=1`` (this machine sets it) would otherwise compile
    Headwater's source again in every timed command (~0.19 s of a re-log)."""
    import compileall

    compileall.compile_dir(str(REPO / "src"), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000, help="small files (0: skip)")
    ap.add_argument("--big-files", type=int, default=20, help="large files (0: skip)")
    ap.add_argument("--big-mib", type=int, default=100, help="size of each large file")
    ap.add_argument("--skip-dvc", action="store_true")
    ap.add_argument("--s3", dest="s3", action="store_true", default=True,
                    help="also run the small-file case on a local moto S3 server (default)")
    ap.add_argument("--skip-s3", dest="s3", action="store_false")
    ap.add_argument("--s3-files", type=int, default=None, help="small files for the S3 case")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--api", action="store_true",
                    help="run headwater through the Python API instead of its command")
    ap.add_argument("--lineage", choices=("on", "off"), default="on",
                    help="HEADWATER_LINEAGE for every headwater command (default on)")
    ap.add_argument("--many-files", type=int, default=0,
                    help="also run the many-files case: this many files of --many-size bytes, "
                         "generated once and kept under bench/.cache (e.g. 1000000): cold log, "
                         "unchanged re-log, get, each with its peak RSS")
    ap.add_argument("--many-size", type=int, default=1024, help="bytes per file (--many-files)")
    args = ap.parse_args()
    compile_sources()
    Headwater.api = args.api
    Headwater.lineage = args.lineage
    print(f"lineage: {args.lineage}")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, work dir {work}")
    if not args.skip_dvc:
        print(f"baseline: {dvc_version(dvc_bin())} (in {DVC_VENV})")
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    rng = random.Random(SEED)
    try:
        if args.files:
            data = work / "small" / "data"
            t = time.perf_counter()
            generate_small(data, args.files, rng)
            print(f"generated {args.files} small files in {time.perf_counter() - t:.1f} s")
            res = case("small", data, work, args, rng, with_dvc=not args.skip_dvc)
            report(f"{args.files} small files (1-8 KiB)", res)
        if args.big_files:
            data = work / "big" / "data"
            t = time.perf_counter()
            generate_big(data, args.big_files, args.big_mib, rng)
            print(f"generated {args.big_files} x {args.big_mib} MiB in "
                  f"{time.perf_counter() - t:.1f} s")
            md5 = md5_speed(data)
            blake = blake3_hash_speed(data)
            res = case("big", data, work, args, rng, with_dvc=not args.skip_dvc)
            report(f"{args.big_files} large files ({args.big_mib} MiB)", res, md5=md5,
                   blake=blake)
        if args.s3:
            n = args.s3_files if args.s3_files is not None else args.files
            s3_case(work, n, rng)
        if args.many_files:
            many_case(work, args.many_files, args.many_size)
    finally:
        # a --workdir run leaves ~3 GB per 100k-file case: removed too, unless --keep
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nload average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


#: The memory bound of the many-files case (issue 18): peak RSS of every operation.
MANY_RSS_LIMIT_MB = 500


def many_data(n: int, size: int) -> Path:
    """``n`` files of ``size`` random bytes in 100 x 100 folders, generated once (fixed seed)
    under ``bench/.cache/many-N-SIZE/data``; a ``complete`` marker beside it says it is whole.
    Nothing ever modifies it: every run logs it into a fresh store and home."""
    base = REPO / "bench" / ".cache" / f"many-{n}-{size}"
    data = base / "data"
    if (base / "complete").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    rng = random.Random(SEED)
    t = time.perf_counter()
    made: set[str] = set()
    for i in range(n):
        d = f"{data}/part-{i % 100:02d}/group-{(i // 100) % 100:02d}"
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        fd = os.open(f"{d}/file-{i:07d}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, rng.randbytes(size))
        finally:
            os.close(fd)
    os.sync()
    (base / "complete").write_text(f"{n} files of {size} bytes, seed {SEED}\n")
    print(f"generated {n} files of {size} B in {time.perf_counter() - t:.1f} s (kept in {base})",
          flush=True)
    # files written in the last 2 s are "recent" to the stat cache: see case()
    time.sleep(2.5)
    return data


def many_case(work: Path, n: int, size: int) -> None:
    """Cold log, unchanged re-log and get of ``n`` small files into a fresh local store, with
    each operation's peak RSS against :data:`MANY_RSS_LIMIT_MB`."""
    data = many_data(n, size)
    files, nbytes = n, n * size
    results = [read_speed(data, files, nbytes)]
    hw = Headwater(work / "hw-home-many")

    def step(res: Result) -> None:
        results.append(res)
        print(f"  {res.label:<28} headwater {res.wall:7.2f} s, peak RSS {res.rss_mb:.0f} MB",
              flush=True)

    step(hw.log(data, "many", "log cold", files, nbytes))
    step(hw.log(data, "many", "log unchanged", files, nbytes))
    step(hw.get("many@latest", work / "get-many", "get to new folder", files, nbytes))
    report(f"{n} files of {size} B (local store)", results)
    peak = max(r.rss_mb for r in results if r.tool == "headwater")
    ok = "MET" if peak <= MANY_RSS_LIMIT_MB else "NOT met"
    print(f"   peak RSS of every operation <= {MANY_RSS_LIMIT_MB} MB: {peak:.0f} MB -> {ok}")


def s3_case(work: Path, n: int, rng: random.Random) -> None:
    """The small-file case against a moto S3 server, with the read cache and the floor.

    Besides cold / unchanged / modified logs and a cold get: a second get with the read cache
    warm (and the number of HTTP requests moto logged for it), the cost of one request
    (sequential 4 KiB PUTs and GETs), and the *floor* of the pack layout: the same pack and
    index bytes PUT again (2 in flight, as the writer does) for the cold log, the same ranged
    GETs a checkout issues (one per 256 entries, 32 in flight) for the get.
    """
    sys.path.insert(0, str(REPO))
    from tests.emulators import moto_s3_server, new_s3_bucket

    data = work / "s3" / "data"
    generate_small(data, n, rng)
    files, nbytes = tree_stats(data)
    time.sleep(2.5)
    results: list[Result] = []
    with moto_s3_server() as server:
        bucket = new_s3_bucket(server)
        env = {
            "HEADWATER_STORE_URL": bucket.url,
            "HEADWATER_STORE_OPTIONS": json.dumps(bucket.storage_options),
        }
        hw = Headwater(work / "hw-home-s3small", env)

        def requests() -> int:
            text = Path(server.log_path).read_text(errors="replace")
            return sum(1 for line in text.splitlines()
                       if f"/{bucket.bucket}" in line and "HTTP/1.1" in line)

        def step(res: Result) -> Result:
            results.append(res)
            print(f"  {res.label:<28} headwater {res.wall:7.2f} s", flush=True)
            return res

        sent = requests()
        step(hw.log(data, "s3small", "log cold", files, nbytes))
        cold_requests = requests() - sent
        cold_packs = s3_pack_names(bucket)  # the floor is measured at the end (its memory
        # would otherwise count in the peak RSS of every later child: fork keeps the mark)
        step(hw.log(data, "s3small", "log unchanged", files, nbytes))
        modify(data, rng, change=10, add=5, delete=5)
        files2, nbytes2 = tree_stats(data)
        step(hw.log(data, "s3small", "log 10 changed/5 new/5 gone", files2, nbytes2))
        sent = requests()
        step(hw.get("s3small@latest", work / "get-s3-1", "get (cache cold)", files2, nbytes2))
        get_requests = requests() - sent
        sent = requests()
        step(hw.get("s3small@latest", work / "get-s3-2", "get again (cache warm)", files2,
                    nbytes2))
        warm_requests = requests() - sent
        get_floor = s3_get_floor(bucket, files2)
        floor = s3_floor(bucket, files, cold_packs)
    report(f"{n} small files into S3 (moto server, local)", [read_speed(data, files, nbytes),
                                                             *results])
    cold = next(r for r in results if r.label == "log cold")
    get = next(r for r in results if r.label == "get (cache cold)")
    print(f"\n  requests: cold log {cold_requests}, cold get {get_requests}, "
          f"warm get {warm_requests}")
    print(f"  one request (moto, sequential, 4 KiB): PUT {floor['put_ms']:.2f} ms, "
          f"GET {floor['get_ms']:.2f} ms")
    print(f"  log floor: {floor['packs']} packs + indexes ({floor['pack_mb']:.1f} MB) PUT "
          f"again: {floor['log_s']:.2f} s; cold log / floor = {cold.wall / floor['log_s']:.2f}")
    print(f"  get floor: {get_floor['ranges']} ranged GETs: {get_floor['get_s']:.2f} s; "
          f"cold get / floor = {get.wall / get_floor['get_s']:.2f}")
    print(f"  vs the loose layout before (docs/performance.md, 100k files): log 293.1 s -> "
          f"{cold.wall:.2f} s, get 559.6 s -> {get.wall:.2f} s (scale by files if not 100k)")
    scale = n / 100_000
    print("  targets (issue 18):")
    for what, ok in (
        (f"cold log >= 10x faster than 293.1 s: {293.1 * scale / cold.wall:.1f}x",
         293.1 * scale / cold.wall >= 10),
        (f"cold get >= 10x faster than 559.6 s: {559.6 * scale / get.wall:.1f}x",
         559.6 * scale / get.wall >= 10),
        (f"cold log within 2x of its floor: {cold.wall / floor['log_s']:.2f}",
         cold.wall / floor["log_s"] <= 2),
        (f"cold get within 2x of its floor: {get.wall / get_floor['get_s']:.2f}",
         get.wall / get_floor["get_s"] <= 2),
        (f"second get sends no request: {warm_requests}", warm_requests == 0),
    ):
        print(f"     {what:<52} -> {'MET' if ok else 'NOT met'}")


def s3_pack_names(bucket: Any) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True, **bucket.storage_options)
    return [str(p) for p in fs.ls(f"{bucket.path}/packs", detail=False)]


def s3_floor(bucket: Any, files: int, names: list[str]) -> dict[str, float]:
    """Per-request cost, and the time to PUT the cold log's packs and indexes once more."""
    from concurrent.futures import ThreadPoolExecutor

    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True, **bucket.storage_options)
    scratch = f"{bucket.bucket}/floor"
    blob = os.urandom(4096)
    t = time.perf_counter()
    for i in range(100):
        fs.pipe_file(f"{scratch}/small-{i}", blob)
    put_ms = (time.perf_counter() - t) * 10
    t = time.perf_counter()
    for i in range(100):
        fs.cat_file(f"{scratch}/small-{i}")
    get_ms = (time.perf_counter() - t) * 10
    blobs = [fs.cat_file(p) for p in names]
    manifest = os.urandom(files * 130)  # ~130 bytes per manifest line
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda ib: fs.pipe_file(f"{scratch}/pack-{ib[0]}", ib[1]),
                      enumerate(blobs)))
    fs.pipe_file(f"{scratch}/manifest", manifest)
    log_s = time.perf_counter() - t
    return {"put_ms": put_ms, "get_ms": get_ms, "log_s": log_s,
            "packs": sum(1 for p in names if p.endswith(".pack")),
            "pack_mb": sum(len(b) for b in blobs) / 1e6}


def s3_get_floor(bucket: Any, files: int) -> dict[str, float]:
    """The ranged GETs a checkout needs (one per 256 entries, 32 at once) plus the manifest."""
    from concurrent.futures import ThreadPoolExecutor

    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True, **bucket.storage_options)
    packs = [p for p in fs.ls(f"{bucket.path}/packs", detail=True)
             if p["name"].endswith(".pack")]
    total = sum(int(p["size"]) for p in packs)
    ranges = max(1, -(-files // 256))
    step = max(1, total // ranges)
    jobs = []
    for p in packs:
        size = int(p["size"])
        jobs += [(p["name"], off, min(size, off + step)) for off in range(0, size, step)]
    fs.pipe_file(f"{bucket.bucket}/floor/get-manifest", os.urandom(files * 130))
    t = time.perf_counter()
    fs.cat_file(f"{bucket.bucket}/floor/get-manifest")
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda j: fs.cat_file(j[0], start=j[1], end=j[2]), jobs))
    return {"get_s": time.perf_counter() - t, "ranges": len(jobs)}


if __name__ == "__main__":
    main()
