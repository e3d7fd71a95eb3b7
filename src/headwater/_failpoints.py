"""Crash injection for the atomicity tests: ``HEADWATER_FAILPOINTS=name[,name]``.

At a named point the process exits at once with status 86 (no cleanup, no ``finally``), which is
how a kill -9 between two steps of a commit looks. Read at the moment the point is reached so a
test's subprocess can set it; it is a test hook, not configuration.
"""

from __future__ import annotations

import os

EXIT_CODE = 86


def hit(name: str) -> None:
    armed = os.environ.get("HEADWATER_FAILPOINTS")
    if armed and name in armed.split(","):
        os._exit(EXIT_CODE)
