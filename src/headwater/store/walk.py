"""Listing directories for a snapshot, in manifest order — in this process or in a helper.

A re-log of an unchanged tree is one ``stat`` per file, and on a 2-core machine half of those can
run in a second process: Python threads cannot share the work (each ``stat`` releases and retakes
the GIL, and two threads listing directories measured twice as slow as one). So a snapshot of a
tree the stat cache knows to be large starts this file as a helper process (``python -S -E walk.py
OUT_DIR FOLLOW TREE DIR...``): it lists the second half of the top-level subtrees, writing each
subtree's listings to a file of its own and its index to stdout when done, while the snapshot lists
the others; the snapshot then reads the helper's listings in the same pre-order it would have
produced them. Any helper failure only means the snapshot lists that subtree itself.

This module imports nothing from Headwater (the helper runs without site-packages, so it starts
in ~20 ms) and is the one implementation of directory listing either way.
"""

from __future__ import annotations

import atexit
import marshal
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from stat import S_ISDIR, S_ISREG
from typing import BinaryIO

#: ``(name, size, mtime_ns, inode, ctime_ns)`` of one regular file. The ctime is compared too: a
#: same-size rewrite whose mtime is put back (``os.utime``) still moves it, as git knows.
FileStat = tuple[str, int, int, int, int]
#: A directory's regular files (by name) and the order of its files and subdirectories.
Listing = tuple[list[FileStat], list[int | str]]
#: What is done with symbolic links: ``none`` follows none; ``inside`` (the default) follows
#: links to files that resolve inside the tree being logged; ``all`` follows links to files
#: anywhere. Links to directories are never descended (a link to an ancestor would loop).
FOLLOW_CHOICES = ("none", "inside", "all")
DEFAULT_FOLLOW = "inside"


def list_dir(
    directory: str, *, follow: str = DEFAULT_FOLLOW, root: str | None = None,
    skipped: list[str] | None = None,
) -> Listing:
    """A directory's regular files sorted by name, and the order in which its files and
    subdirectories appear in a sorted walk: run lengths of files (int) between subdirectory
    names (str).

    Sorting by ``name + "/"`` for folders orders entries exactly as the full paths under them
    sort as strings, so a pre-order walk yields paths in manifest order with no global sort,
    and visits directories in ascending order of ``path + "/"`` (the stat cache's key order).
    Symbolic links are followed as ``follow`` says (:data:`FOLLOW_CHOICES`; ``root``, default
    ``directory``, is the tree "inside" refers to); links not followed, links to directories
    and special files (FIFOs, sockets, devices) are left out and, when ``skipped`` is given,
    appended to it as ``"path: reason"`` so the caller can say so. An entry that disappears
    during the walk is skipped.
    """
    if follow not in FOLLOW_CHOICES:
        raise ValueError(f"follow must be one of {', '.join(FOLLOW_CHOICES)}, not {follow!r}")
    inside = ""  # the tree's real path, worked out at the first link (most trees have none)
    files: list[FileStat] = []
    subdirs: list[str] = []
    # listing through a directory descriptor makes each stat one fstatat() of a bare name
    # instead of a lookup of the whole path from the root: 15 % off a re-log's walk
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                        continue
                    link = entry.is_symlink()
                    st = entry.stat()  # follows a symlink, as is_file() would
                except OSError:
                    if skipped is not None and entry.is_symlink():
                        skipped.append(f"{directory}/{entry.name}: broken symbolic link")
                    continue
                why = None
                if not S_ISREG(st.st_mode):
                    why = ("symbolic link to a directory (not descended)" if S_ISDIR(st.st_mode)
                           else "not a regular file (FIFO, socket or device)")
                elif link and follow != "all":
                    target = os.path.realpath(f"{directory}/{entry.name}")
                    inside = inside or os.path.realpath(root or directory) + "/"
                    if follow == "none":
                        why = "symbolic link (not followed: --follow-symlinks none)"
                    elif not target.startswith(inside):
                        why = f"symbolic link to {target}, outside the tree (not followed)"
                if why is None:
                    files.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ino,
                                  st.st_ctime_ns))
                elif skipped is not None:
                    skipped.append(f"{directory}/{entry.name}: {why}")
    finally:
        os.close(fd)
    files.sort()  # by name: names are unique, so the other fields are never compared
    if not subdirs:
        return files, [len(files)] if files else []
    keyed = sorted([(f[0], False) for f in files] + [(d + "/", True) for d in subdirs])
    order: list[int | str] = []
    run = 0
    for key, is_dir in keyed:
        if is_dir:
            if run:
                order.append(run)
                run = 0
            order.append(key[:-1])
        else:
            run += 1
    if run:
        order.append(run)
    return files, order


def walk_listings(
    top: str, *, follow: str = DEFAULT_FOLLOW, root: str | None = None
) -> Iterator[tuple[str, Listing, list[str]]]:
    """``(directory, listing, skipped)`` for ``top`` and every directory under it, in
    pre-order (``skipped``: see :func:`list_dir`)."""
    stack = [top]
    while stack:
        path = stack.pop()
        skipped: list[str] = []
        listing = list_dir(path, follow=follow, root=root or top, skipped=skipped)
        yield path, listing, skipped
        stack.extend(f"{path}/{s}" for s in reversed(listing[1]) if isinstance(s, str))


class Helper:
    """A helper process listing the subtrees ``tops`` (raises OSError if it cannot start)."""

    def __init__(
        self, tops: list[str], *, root: str | None = None, tree: str | None = None,
        follow: str = DEFAULT_FOLLOW,
    ) -> None:
        if not sys.executable:
            raise OSError("no Python executable to run the walk helper with")
        self.tops = list(tops)
        self.root = root  # the tree whose top-level subtrees these are (a prefetch's)
        self.follow = follow
        tree = tree or root or os.path.dirname(self.tops[0])  # what "inside" means
        self.started_ns = time.time_ns()
        self._tmp = tempfile.mkdtemp(prefix="hw-walk-")
        self._done: dict[int, bool] = {}
        try:
            self._proc: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, "-S", "-E", "-s", os.path.abspath(__file__), self._tmp,
                 follow, tree, *self.tops],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def open(self, i: int) -> BinaryIO | None:
        """The listings of ``tops[i]`` once the helper has written them all (None: it failed)."""
        while i not in self._done and self._proc is not None and self._proc.stdout is not None:
            line = self._proc.stdout.readline()
            if not line:
                break
            index, _, status = line.strip().partition(" ")
            self._done[int(index)] = status != "failed"
        if not self._done.get(i, False):
            return None
        return open(os.path.join(self._tmp, str(i)), "rb")

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        shutil.rmtree(self._tmp, ignore_errors=True)


_prefetched: Helper | None = None


def prefetch(root: str) -> None:
    """Start listing the directory ``root`` now, for a snapshot of it later in this process.

    The ``headwater`` command calls this for the directory it is asked to log before it imports
    the rest of Headwater (~0.3 s), so the two overlap on two cores.
    """
    global _prefetched
    root = os.path.abspath(root)
    if _prefetched is None and os.path.isdir(root) and (os.cpu_count() or 1) > 1:
        try:
            # one file per top-level subtree, so the snapshot can start on the first ones while
            # the helper is still listing the rest (a flat directory is one subtree: itself)
            subdirs = [s for s in list_dir(root)[1] if isinstance(s, str)]
            tops = [f"{root}/{d}" for d in subdirs] or [root]
            _prefetched = Helper(tops, root=root)
        except OSError:
            _prefetched = None
        else:  # a command that fails before its snapshot leaves no helper or files behind
            atexit.register(_drop_prefetched)


def _drop_prefetched() -> None:
    global _prefetched
    helper, _prefetched = _prefetched, None
    if helper is not None:
        helper.close()


def take_prefetched(root: str, follow: str = DEFAULT_FOLLOW) -> Helper | None:
    """The helper :func:`prefetch` started for ``root``, handed over once (None if none, or if
    it lists with another symlink policy than ``follow``)."""
    global _prefetched
    helper, _prefetched = _prefetched, None
    if helper is not None and (helper.root != root or helper.follow != follow):
        helper.close()
        return None
    return helper


#: Listings per frame of a helper's file: one ``marshal.loads`` each (loading record by record
#: from a file object reads field by field, ten times slower).
FRAME = 256


def read_listings(stream: BinaryIO) -> Iterator[tuple[str, Listing, list[str]]]:
    """The ``(directory, listing, skipped)`` records a helper wrote, in order."""
    while header := stream.read(4):
        size = int.from_bytes(header, "little")
        yield from marshal.loads(stream.read(size))


def _write_frame(out: BinaryIO, frame: list[tuple[str, Listing, list[str]]]) -> None:
    data = marshal.dumps(frame, 2)
    out.write(len(data).to_bytes(4, "little"))
    out.write(data)


def _helper(out_dir: str, follow: str, tree: str, tops: list[str]) -> None:
    for i, top in enumerate(tops):
        try:
            with open(os.path.join(out_dir, str(i)), "wb") as out:
                frame: list[tuple[str, Listing, list[str]]] = []
                for record in walk_listings(top, follow=follow, root=tree):
                    frame.append(record)
                    if len(frame) >= FRAME:
                        _write_frame(out, frame)
                        frame = []
                if frame:
                    _write_frame(out, frame)
        except OSError:
            print(f"{i} failed", flush=True)
            continue
        print(i, flush=True)


if __name__ == "__main__":
    _helper(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
