"""Progress reporting as an object, never a flag: a rich bar on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def stop(self) -> None: ...


class NullProgress:
    """Does nothing: used when output is piped, in tests and inside engines."""

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress:
    """A transient progress bar on stderr."""

    def __init__(self) -> None:
        from rich.progress import Progress as _Progress

        self._bar = _Progress(transient=True)
        self._task: object | None = None

    def start(self, description: str, total: int | None) -> None:
        from rich.markup import escape

        self._bar.start()
        # the description names a path ("hashing [draft]/"): data, not markup
        self._task = self._bar.add_task(escape(description), total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._bar.stop()
        self._task = None


def for_terminal() -> Progress:
    """A bar when stderr is a terminal, otherwise a do-nothing object."""
    return RichProgress() if sys.stderr.isatty() else NullProgress()
