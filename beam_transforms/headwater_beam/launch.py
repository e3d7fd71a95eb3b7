"""How a Beam run can be launched again: the one place that builds a run's ``engine`` record.

Why: a rebuild (``headwater rebuild``, :func:`headwater_beam.rerun.rerun`) must start the same
pipeline again, with the same options, on the same runner, with some inputs pinned. So every
catalog run of a Beam pipeline (the pipeline run and each write run) records, in its ``engine``
dict, under ``"launch"``::

    {"python": sys.executable, "module": "headwater_beam.pipeline" | None,
     "script": "/abs/path/pipeline.py" | None, "argv": [...], "cwd": "/launch/dir",
     "runner": "FnApiRunner", "pins": {...}, "redacted": ["--opt", ...]}

``argv`` is what the entry point was given, minus per-run options (the pipeline run id, the
parent and root run, the pins: a relaunch is a new run, not a child of the original's
launcher), minus secrets (an option whose name is a secret's, a URL with a password, store options
with secret keys — the one rule of :mod:`headwater.sensitive`, which the server's redaction
uses too; their names go to ``redacted``), plus
the effective Headwater settings (catalog and store URL, namespace, lineage mode), so a
relaunch from another shell reaches the same catalog.

The entry point is what ``HeadwaterPipeline(entry_point=..., argv=...)`` names; by default the
``__main__`` module (``python -m pkg.mod``) or script (``python path.py``) and ``sys.argv[1:]``.
A process whose ``__main__`` is a tool (pytest, airflow, ipython) records no entry point:
a rerun then says which argument to give.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from headwater import Settings
from headwater.sensitive import has_secret_keys, has_url_password, is_secret_name
from headwater_beam.options import HeadwaterOptions

__all__ = ["PER_RUN_OPTIONS", "SETTINGS_OPTIONS", "beam_engine", "launch_record", "recorded_launch",
           "strip_options"]

#: Options a relaunch must not repeat: it is a new run, with its own ids and pins, and not a
#: child of the run that launched the original (an Airflow task, say).
PER_RUN_OPTIONS = ("--headwater_pipeline_run_id", "--headwater_parent_namespace",
                   "--headwater_parent_job", "--headwater_parent_run_id",
                   "--headwater_root_namespace", "--headwater_root_job", "--headwater_root_run_id",
                   "--headwater_pins", "--headwater_launch")
#: Options rebuilt from the effective settings (so the record names the catalog really used).
SETTINGS_OPTIONS = ("--headwater_catalog_url", "--headwater_store_url",
                    "--headwater_store_options", "--headwater_namespace", "--headwater_lineage")
#: ``__main__`` of these is a tool that called the pipeline, not a pipeline to run again
_TOOLS = {"pytest", "py.test", "airflow", "ipykernel_launcher", "IPython", "ipython",
          "jupyter", "celery", "dask", "coverage", "pdb", "runpy"}


def strip_options(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """``argv`` without the options ``names`` (``--x=v`` and ``--x v`` forms)."""
    out: list[str] = []
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
            if not token.startswith("--"):
                continue
        name = token.split("=", 1)[0]
        if name in names:
            skip_value = "=" not in token
            continue
        out.append(token)
    return out


def _secret_json(value: str) -> bool:
    try:
        loaded = json.loads(value)
    except ValueError:
        return False
    return isinstance(loaded, Mapping) and has_secret_keys(loaded)


def _redact(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` without options that hold secrets, and the names of those dropped."""
    out: list[str] = []
    dropped: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            takes_next = not eq and i + 1 < len(tokens) and not tokens[i + 1].startswith("--")
            if takes_next:
                value = tokens[i + 1]
            if (is_secret_name(name[2:]) or has_url_password(value)
                    or (name == "--headwater_store_options" and _secret_json(value))):
                dropped.append(name)
                i += 2 if takes_next else 1
                continue
        out.append(token)
        i += 1
    return out, dropped


def _default_entry_point() -> tuple[str | None, str | None, list[str]]:
    """(module, script, argv) of this process's ``__main__``; (None, None, argv) for tools."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    argv = list(sys.argv[1:])
    name = getattr(spec, "name", None) if spec is not None else None
    if name:
        module = name.removesuffix(".__main__")
        if module.split(".")[0] in _TOOLS:
            return None, None, argv
        return module, None, argv
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
    stem = os.path.splitext(os.path.basename(path))[0]
    if not path or stem in _TOOLS or not path.endswith(".py"):
        return None, None, argv
    return None, os.path.abspath(path), argv


def launch_record(options: PipelineOptions, settings: Settings, *,
                  entry_point: str | None = None,
                  argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``launch`` part of a Beam run's engine record (see the module docstring).

    ``entry_point``: a module (``pkg.mod``, run with ``python -m``) or a script path (``.py``);
    default: this process's ``__main__``. ``argv``: what the entry point was given (default:
    ``sys.argv[1:]``, or the pipeline's options when there is no entry point).
    """
    module: str | None = None
    script: str | None = None
    if entry_point is None:
        module, script, default_argv = _default_entry_point()
        if argv is None and (module or script):
            argv = default_argv
    elif entry_point.endswith(".py") or os.sep in entry_point:
        script = os.path.abspath(entry_point)
    else:
        module = entry_point
    if argv is None:  # no entry point's argv: at least the options, for the printed command
        argv = _option_flags(options)
    kept = strip_options(list(argv), (*PER_RUN_OPTIONS, *SETTINGS_OPTIONS))
    kept += _settings_flags(settings)
    kept, redacted = _redact(kept)
    std = options.view_as(StandardOptions)
    return {
        "python": sys.executable,
        "module": module,
        "script": script,
        "argv": kept,
        "cwd": os.getcwd(),
        "runner": str(std.runner or "default"),
        "pins": dict(settings.pins),
        "redacted": sorted(set(redacted)),
    }


def _option_flags(options: PipelineOptions) -> list[str]:
    """The pipeline's options as flags (used when there is no entry point's argv to record)."""
    flags: list[str] = []
    for name, value in sorted(options.get_all_options(drop_default=True,
                                                      retain_unknown_options=True).items()):
        if value is None or value is False:
            continue
        if value is True:
            flags.append(f"--{name}")
        elif isinstance(value, list):
            flags += [f"--{name}={v}" for v in value]
        else:
            flags.append(f"--{name}={value}")
    return flags


def _settings_flags(settings: Settings) -> list[str]:
    flags = [f"--headwater_catalog_url={settings.catalog_url}",
             f"--headwater_store_url={settings.store_url}",
             f"--headwater_namespace={settings.namespace}",
             f"--headwater_lineage={settings.lineage}"]
    if settings.store_options:
        flags.append("--headwater_store_options="
                     + json.dumps(dict(settings.store_options), sort_keys=True))
    return flags


def recorded_launch(options: PipelineOptions, settings: Settings) -> dict[str, Any]:
    """The launch record ``HeadwaterPipeline`` put in the options, else one built now."""
    raw = options.view_as(HeadwaterOptions).headwater_launch
    if raw:
        loaded = json.loads(raw)
        if isinstance(loaded, dict):
            return loaded
    return launch_record(options, settings)


def beam_engine(options: PipelineOptions, settings: Settings, *, job_name: str,
                **extra: Any) -> dict[str, Any]:
    """The ``engine`` dict of a Beam catalog run (pipeline run or write run): the one place it
    is built. ``extra``: what only that kind of run adds (the write's transform label)."""
    hw = options.view_as(HeadwaterOptions)
    engine: dict[str, Any] = {
        "name": "beam", "version": beam.__version__,
        "runner": str(options.view_as(StandardOptions).runner or "default"),
        "job_name": job_name,
    }
    if hw.headwater_pipeline_run_id:
        engine["pipeline_run_id"] = hw.headwater_pipeline_run_id
    engine.update(extra)
    engine["launch"] = recorded_launch(options, settings)
    return engine
