"""The ``headwater`` command's entry point.

``headwater add DIR`` spends ~0.3 s importing SQLAlchemy before it can look at ``DIR``. On a
machine with a second core that time is not wasted: before importing anything heavy, this
module starts the helper process of :mod:`headwater.store.walk` listing ``DIR`` (one ``stat``
per file, the floor of re-logging a big unchanged tree), and the snapshot then reads its
listings instead of making them. A guess that is wrong (an option this parser does not know, a
source that is not a local directory) costs one short-lived process and changes nothing else.
"""

from __future__ import annotations

import os
import sys

#: ``headwater`` options that take a value, before the command and after ``add``.
_GLOBAL_VALUED = {"--catalog", "--store"}
_ADD_VALUED = {"--name", "--type", "--meta", "--key", "--parent", "--follow-symlinks", "--label",
               "--description"}


def local_source_of_add(argv: list[str]) -> str | None:
    """The local directory ``argv`` asks ``headwater add`` to copy, if it is one."""
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_VALUED:
            next(args, None)
        elif arg.startswith("-"):
            continue
        elif arg != "add":
            return None
        else:
            break
    else:
        return None
    source = None
    for arg in args:
        if arg == "--reference":
            return None  # tracked in place: nothing is listed for a copy
        if arg in _ADD_VALUED:
            next(args, None)
        elif not arg.startswith("-") and source is None:
            source = arg
    if source is None or ("://" in source and not source.startswith("file://")):
        return None
    path = os.path.expanduser(source.removeprefix("file://"))
    return path if os.path.isdir(path) else None


def main() -> None:
    source = local_source_of_add(sys.argv[1:])
    if source is not None:
        from headwater.store import walk  # standard library only: ~10 ms

        walk.prefetch(source)
    from headwater.cli import run

    run()
