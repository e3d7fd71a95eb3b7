"""Launch a recorded Beam pipeline again with some inputs pinned: the Beam half of a rebuild.

Every Beam catalog run records how it was launched (``engine["launch"]``, built in one place:
:mod:`headwater_beam.launch`). :func:`rerun` starts that entry point again — same Python, same
working directory, same arguments and pipeline options, so the same runner (and, for a portable
runner, the same job service and worker pool) — plus ``--headwater_pins``, which every Headwater
read and step of the pipeline honours on every runner (options travel to workers; environment
variables do not). When it cannot launch (no entry point recorded, the module not importable
here, the script gone, the job service or worker pool not reachable, a secret it would need was
not recorded) it launches nothing and returns the exact command for the user to paste, with the
reason. ``headwater rebuild`` calls it for every affected Beam pipeline run.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from headwater import Settings
from headwater.errors import InvalidArgument
from headwater.refs import parse_pins
from headwater_beam.launch import SETTINGS_OPTIONS, strip_options

__all__ = ["BeamRelaunch", "relaunch_command", "rerun"]

_OUTPUT_TAIL = 20_000


@dataclass
class BeamRelaunch:
    """What :func:`rerun` launched (or would launch), and how it ended."""

    #: the full command (``python -m module args…`` or ``python script.py args…``)
    command: list[str]
    #: the working directory it runs in (the recorded one)
    cwd: str
    #: True if a process was started
    launched: bool
    #: its exit status (None: not launched, or launched without waiting and still running)
    returncode: int | None = None
    #: why it was not launched (None when it was, or on a dry run that could have)
    reason: str | None = None
    #: the pins passed with ``--headwater_pins``
    pins: dict[str, str] = field(default_factory=dict)
    #: file holding the process's stdout and stderr
    log_path: str | None = None
    #: the tail of that output, once the process ended
    output: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def shell(self) -> str:
        """The command as one line to paste into a shell."""
        return f"cd {shlex.quote(self.cwd)} && {shlex.join(self.command)}"

    @property
    def ok(self) -> bool:
        return self.launched and self.returncode == 0

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for a process launched with ``wait=False``; its exit status."""
        if self.process is not None and self.returncode is None:
            self.returncode = self.process.wait(timeout)
            self.output = _tail(self.log_path)
        return self.returncode

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "shell": self.shell, "cwd": self.cwd,
                "launched": self.launched, "returncode": self.returncode,
                "reason": self.reason, "pins": self.pins, "log_path": self.log_path}


def _launch_of(engine: Mapping[str, Any]) -> Mapping[str, Any]:
    launch = engine.get("launch") if "launch" in engine else engine
    if not isinstance(launch, Mapping) or "argv" not in launch:
        raise InvalidArgument(
            f"the run's engine record {dict(engine)!r} has no launch record: it was made before "
            "Headwater recorded how to launch Beam pipelines again (or not by Beam); rerun it "
            "by hand with --headwater_pins")
    return launch


def relaunch_command(engine: Mapping[str, Any], pins: Mapping[str, str] | str, *,
                     settings: Settings | None = None) -> tuple[list[str], str, list[str]]:
    """``(command, cwd, problems)`` relaunching the recorded run with ``pins`` added to the pins
    it ran with. ``problems`` say why the command cannot run as is (empty: it can).

    ``settings`` fill recorded Headwater options that were left out as secrets (a catalog URL
    with a password).

    Raises:
        InvalidArgument: no launch record, or malformed pins.
    """
    launch = _launch_of(engine)
    problems: list[str] = []
    namespace = settings.namespace if settings is not None else _argv_value(
        launch["argv"], "--headwater_namespace") or "default"
    merged = {**dict(launch.get("pins") or {}),
              **parse_pins(pins if isinstance(pins, str) else dict(pins),
                           default_namespace=namespace)}
    python = str(launch.get("python") or sys.executable)
    if not os.path.exists(python):
        python = sys.executable
    cwd = str(launch.get("cwd") or os.getcwd())
    if not os.path.isdir(cwd):
        problems.append(f"the recorded working directory {cwd} does not exist here")
        cwd = os.getcwd()
    module, script = launch.get("module"), launch.get("script")
    if module:
        head = [python, "-m", str(module)]
    elif script:
        head = [python, str(script)]
    else:
        head = [python, "-m", "<your_pipeline_module>"]
        problems.append("the run recorded no entry point (it was started from a tool such as "
                        "pytest or airflow): give HeadwaterPipeline(entry_point=..., argv=...)")
    argv = strip_options(list(launch["argv"]), ("--headwater_pins",))
    redacted = list(launch.get("redacted") or ())
    for name in redacted:
        value = _settings_value(settings, name)
        if value is not None:
            argv.append(f"{name}={value}")
        else:
            argv.append(f"{name}=<REDACTED>")
            problems.append(f"{name} held a secret and was not recorded: fill it in"
                            + (" (or pass settings=)" if name in SETTINGS_OPTIONS else ""))
    if merged:
        argv.append("--headwater_pins=" + json.dumps(merged, sort_keys=True))
    return [*head, *argv], cwd, problems


def _settings_value(settings: Settings | None, name: str) -> str | None:
    if settings is None:
        return None
    values = {"--headwater_catalog_url": settings.catalog_url,
              "--headwater_store_url": settings.store_url,
              "--headwater_namespace": settings.namespace,
              "--headwater_lineage": settings.lineage,
              "--headwater_store_options": json.dumps(dict(settings.store_options),
                                                      sort_keys=True)}
    return values.get(name)


def _argv_value(argv: Sequence[str], name: str) -> str | None:
    """The last value of ``--name`` in ``argv`` (``--name=v`` or ``--name v``)."""
    found = None
    for i, token in enumerate(argv):
        if token == name and i + 1 < len(argv):
            found = argv[i + 1]
        elif token.startswith(name + "="):
            found = token.split("=", 1)[1]
    return found


def _reachable(endpoint: str) -> bool:
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=3):
            return True
    except (OSError, ValueError):
        return False


def _launch_problems(command: list[str], cwd: str) -> list[str]:
    """Why ``command`` cannot run here: entry point not importable, runner unreachable."""
    problems: list[str] = []
    python = command[0]
    if command[1] == "-m" and not command[2].startswith("<"):
        probe = subprocess.run(
            [python, "-c", "import importlib.util, sys; "
                           "sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)",
             command[2]], cwd=cwd, capture_output=True, text=True, timeout=120)
        if probe.returncode != 0:
            problems.append(f"module {command[2]} is not importable by {python} in {cwd}")
    elif command[1] != "-m" and not os.path.isfile(command[1]):
        problems.append(f"the recorded script {command[1]} does not exist here")
    argv = command[2:]
    endpoint = _argv_value(argv, "--job_endpoint")
    if endpoint and endpoint not in {"embed", "docker"} and not _reachable(endpoint):
        problems.append(f"the job service at {endpoint} (--job_endpoint) is not reachable")
    env_type = (_argv_value(argv, "--environment_type") or "").upper()
    env_config = _argv_value(argv, "--environment_config")
    if env_type == "EXTERNAL" and env_config and not _reachable(env_config):
        problems.append(f"the worker pool at {env_config} (--environment_config) is not "
                        "reachable")
    return problems


def _tail(path: str | None) -> str | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - _OUTPUT_TAIL))
        return f.read().decode("utf-8", "replace")


def rerun(engine: Mapping[str, Any], pins: Mapping[str, str] | str, *, wait: bool = True,
          dry_run: bool = False, settings: Settings | None = None,
          env: Mapping[str, str] | None = None, timeout: float | None = None) -> BeamRelaunch:
    """Relaunch the Beam pipeline a run recorded (its ``engine`` dict, or ``engine["launch"]``)
    with ``pins`` (``{"ns/name": "ns/name@N"}``) on the runner it used.

    ``wait``: block until it ends (``.returncode``); else return at once (``.wait()`` later).
    ``dry_run``: launch nothing; ``.reason`` is None if it could launch. When it cannot launch,
    nothing is started and ``.command``/``.shell`` is what the user can paste once the reason is
    fixed. ``env``: variables added to this process's environment for the child
    (``HEADWATER_PINS`` is not passed on: the pins go as an option). ``settings``: see
    :func:`relaunch_command`.

    Raises:
        InvalidArgument: no launch record, or malformed pins.
        subprocess.TimeoutExpired: ``wait`` and the pipeline outlived ``timeout`` (it is killed).
    """
    command, cwd, problems = relaunch_command(engine, pins, settings=settings)
    if not problems:
        problems = _launch_problems(command, cwd)
    pins_used = json.loads(_argv_value(command, "--headwater_pins") or "{}")
    result = BeamRelaunch(command=command, cwd=cwd, launched=False, pins=pins_used,
                          reason="; ".join(problems) or None)
    if problems or dry_run:
        return result
    child_env = {k: v for k, v in os.environ.items() if k != "HEADWATER_PINS"}
    child_env.update(env or {})
    fd, log_path = tempfile.mkstemp(prefix="headwater-beam-rerun-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=child_env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    result.launched, result.process, result.log_path = True, proc, log_path
    if wait:
        try:
            result.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return result
