"""Progress reporting as an object, never a flag: a rich bar on a terminal, nothing otherwise.

A long ``add`` or ``get`` shows what a user needs to decide whether to wait: files done of the
total, bytes done, the rate and the time left (``hashing data/ ━━━╸━━ 3,120/10,000 files ·
412.0 MB · 96.3 MB/s · 0:00:42``). With no terminal on stderr (piped, CI, inside an engine) it
prints nothing at all.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Protocol


class Progress(Protocol):
    def start(self, description: str, total: int | None) -> None: ...
    def advance(self, n: int = 1, nbytes: int = 0) -> None: ...
    def stop(self) -> None: ...


class NullProgress:
    """Does nothing: used when output is piped, in tests and inside engines."""

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1, nbytes: int = 0) -> None:
        pass

    def stop(self) -> None:
        pass


def _columns() -> list[Any]:
    from rich.progress import (
        BarColumn,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    def size(n: float) -> str:
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(n) < 1024 or unit == "TiB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1024
        return f"{n:.1f} TiB"  # pragma: no cover

    class Counts(ProgressColumn):
        """``3,120/10,000 files`` (or ``3,120 files`` while the total is unknown)."""

        def render(self, task: Task) -> Text:
            done = f"{int(task.completed):,}"
            total = f"/{int(task.total):,}" if task.total is not None else ""
            return Text(f"{done}{total} files")

    class Bytes(ProgressColumn):
        """Bytes done and the byte rate, when the work reports bytes."""

        def render(self, task: Task) -> Text:
            done = task.fields.get("bytes", 0)
            if not done:
                return Text("")
            elapsed = task.elapsed or 0.0
            rate = f" · {size(done / elapsed)}/s" if elapsed > 0.5 else ""
            return Text(f"{size(done)}{rate}")

    class Rate(ProgressColumn):
        """Files per second."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} files/s" if speed else "")

    return [TextColumn("{task.description}"), BarColumn(), Counts(), Bytes(), Rate(),
            TimeRemainingColumn(), TimeElapsedColumn()]


class RichProgress:
    """A transient progress bar on stderr (or ``file``): counts, bytes, rates, time left."""

    def __init__(self, file: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import Progress as _Progress

        console = Console(file=file, force_terminal=True) if file is not None else None
        kwargs: dict[str, Any] = {"console": console} if console is not None else {}
        self._bar = _Progress(*_columns(), transient=True, **kwargs)
        self._task: Any = None
        self._bytes = 0

    def start(self, description: str, total: int | None) -> None:
        from rich.markup import escape

        self._bar.start()
        self._bytes = 0
        # the description names a path ("hashing [draft]/"): data, not markup
        self._task = self._bar.add_task(escape(description), total=total, bytes=0)

    def advance(self, n: int = 1, nbytes: int = 0) -> None:
        if self._task is not None:
            self._bytes += nbytes
            self._bar.update(self._task, advance=n, bytes=self._bytes)

    def stop(self) -> None:
        self._bar.stop()
        self._task = None


def for_terminal() -> Progress:
    """A bar when stderr is a terminal, otherwise a do-nothing object."""
    return RichProgress() if sys.stderr.isatty() else NullProgress()
