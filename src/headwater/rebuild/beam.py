"""Beam entries of a rebuild plan: relaunched through the Beam adapter's
:func:`headwater_beam.rerun.rerun` (it owns the launch record and how to run it again).

The core imports no Beam: the adapter is looked up when a plan has a Beam entry; without it (or
without a launch record) the entry says what is missing instead of launching anything.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.rebuild.plan import PlanEntry

MISSING = "install headwater[beam] to relaunch Beam pipelines (headwater_beam.rerun)"


def _adapter() -> ModuleType | None:
    try:
        return importlib.import_module("headwater_beam.rerun")
    except ImportError:
        return None


def rerun_command(entry: PlanEntry) -> str | None:
    """The shell line relaunching the entry's pipeline with its pins (None: no launch record or
    no Beam adapter)."""
    mod = _adapter()
    if mod is None or not entry.launch:
        return None
    # the command only (no probing of the runner: impact and the server print it too)
    command, cwd, _problems = mod.relaunch_command(entry.launch, entry.pins)
    return str(mod.BeamRelaunch(command=command, cwd=cwd, launched=False).shell)


def rerun(entry: PlanEntry) -> tuple[str | None, str | None]:
    """Relaunch the entry's pipeline and wait: ``(state, command)``; ``state`` is None when it
    could not launch (``command`` then says what to run and why not)."""
    mod = _adapter()
    if mod is None:
        return None, MISSING
    if not entry.launch:
        return None, (f"{entry.label()} recorded no launch: rerun it by hand with "
                      f"--headwater_pins")
    relaunch = mod.rerun(entry.launch, entry.pins, wait=True)
    if not relaunch.launched:
        return None, f"{relaunch.shell}  # not launched: {relaunch.reason}"
    return ("DONE" if relaunch.returncode == 0 else f"exit {relaunch.returncode}"), relaunch.shell
