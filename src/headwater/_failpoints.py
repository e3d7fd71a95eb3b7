"""Crash injection for the atomicity tests: ``HEADWATER_FAILPOINTS=name[,name]``.

At a named point the process exits at once with status 86 (no cleanup, no ``finally``), which is
how a kill -9 between two steps of a commit looks. Read at the moment the point is reached so a
test's subprocess can set it; it is a test hook, not configuration.
"""

from __future__ import annotations

import os
from collections.abc import Callable

EXIT_CODE = 86

#: In-process hooks for interleaving tests: ``HOOKS[name]()`` runs when ``reached(name)`` does
#: (e.g. to hold ``gc`` inside its locked section while a commit tries to record).
HOOKS: dict[str, Callable[[], None]] = {}


def hit(name: str) -> None:
    armed = os.environ.get("HEADWATER_FAILPOINTS")
    if armed and name in armed.split(","):
        os._exit(EXIT_CODE)


def reached(name: str) -> None:
    """A named point: run the test hook set for it, if any, then behave as :func:`hit`."""
    hook = HOOKS.get(name)
    if hook is not None:
        hook()
    hit(name)
