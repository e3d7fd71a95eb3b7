"""Launching a Headwater Beam pipeline from an Airflow task, as that task's child run.

Why: a Beam pipeline started by ``BeamRunPythonPipelineOperator`` or a ``BashOperator`` is a
subprocess that knows nothing of the task. By hand it took five OpenLineage macros (parent
namespace, job and run id, root job and run id) plus the Headwater settings. Here one hook does
it, at run time, for either operator::

    from headwater_airflow.beam import headwater_beam_pre_execute

    BeamRunPythonPipelineOperator(task_id="users_beam", py_file=..., runner="FnApiRunner",
                                  pipeline_options={...},
                                  pre_execute=headwater_beam_pre_execute())
    BashOperator(task_id="users_beam_bash",
                 bash_command="python -m headwater_beam.pipeline ... $HEADWATER_BEAM_ARGS",
                 pre_execute=headwater_beam_pre_execute())

What the Beam run gets (:func:`beam_launch`):

* **Parent.** ``--headwater_parent_namespace/_job/_run_id``: the task's OpenLineage run, from
  the openlineage provider's own macros (``lineage_job_namespace``, ``lineage_job_name``,
  ``lineage_run_id``), so the ids are those of Airflow's own events for the task; the root
  (``--headwater_root_*``) is the task's root, the DAG run. The pipeline's catalog run records
  the task as its parent, and the lineage graph links task → pipeline → writes
  (``run_parent`` edges) once the task's run is in the catalog (a Headwater server ingesting
  Airflow's events).
* **Settings.** The catalog, store, namespace and lineage mode the task's Headwater connection
  resolves to (``HeadwaterHook.settings``), as pipeline options, which travel to every worker.
  Values holding a secret (a catalog URL with a password, store options with keys) go into the
  subprocess's environment instead (``HEADWATER_CATALOG_URL``, ``HEADWATER_STORE_OPTIONS``), so
  they are not printed in the command Airflow logs; the launcher bakes them into the settings
  its DoFns carry.
* **Lineage transport.** The task's ``OPENLINEAGE_*`` variables, and when those configure no
  transport, Airflow's ``[openlineage] transport`` as ``OPENLINEAGE__TRANSPORT__*`` variables:
  the Beam subprocess's events go where the task's go.

For ``BashOperator`` (tested under ``airflow dags test``: ``tests/airflow/test_beam_launch.py``)
they go into the command's environment (``env``, with the rest of the task's environment unless
``append_env=False`` was chosen), the options as ``$HEADWATER_BEAM_ARGS`` (one line, no
whitespace inside a value). For ``BeamRunPythonPipelineOperator`` the options are added to
``pipeline_options`` and the environment to the task process's (``BeamHook`` starts the
pipeline with it and has no ``env`` argument; the task process runs this one task instance).
That path is not tested here: with Airflow 3.3.2, apache-airflow-providers-apache-beam 6.3.1
(and 6.1/6.2) cannot construct the operator unless apache-airflow-providers-google is
installed (``BeamDataflowMixin.__init__`` raises ``AirflowOptionalProviderFeatureException``).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url

from headwater import Settings
from headwater.sensitive import has_secret_keys
from headwater_airflow.hooks.headwater import HeadwaterHook

__all__ = ["BeamLaunch", "beam_launch", "headwater_beam_pre_execute"]

ARGS_VARIABLE = "HEADWATER_BEAM_ARGS"


@dataclass(frozen=True)
class BeamLaunch:
    """What a Beam subprocess of an Airflow task needs: pipeline options and environment."""

    #: pipeline options by name, without the leading ``--``
    options: dict[str, str] = field(default_factory=dict)
    #: environment variables for the subprocess (secrets, the lineage transport)
    env: dict[str, str] = field(default_factory=dict)

    def args(self) -> list[str]:
        """The options as ``--name=value`` arguments."""
        return [f"--{k}={v}" for k, v in self.options.items()]

    def shell_args(self) -> str:
        return shlex.join(self.args())


def _macros() -> Any:
    from airflow.providers.openlineage.plugins import macros

    return macros


def _transport_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The task's OpenLineage transport as variables openlineage-python reads."""
    env = {k: v for k, v in environ.items() if k.startswith("OPENLINEAGE")}
    if any(k in env for k in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")) or any(
            k.startswith("OPENLINEAGE__TRANSPORT") for k in env):
        return env
    try:
        from airflow.providers.openlineage.conf import config_path, transport
    except ImportError:  # pragma: no cover - openlineage provider not installed
        return env
    path = config_path()
    if path:
        env["OPENLINEAGE_CONFIG"] = path
        return env
    for key, value in (transport() or {}).items():
        env[f"OPENLINEAGE__TRANSPORT__{str(key).upper()}"] = (
            value if isinstance(value, str) else json.dumps(value))
    return env


def beam_launch(context: Mapping[str, Any], *, headwater_conn_id: str = "headwater_default",
                settings: Settings | None = None,
                environ: Mapping[str, str] | None = None) -> BeamLaunch:
    """The options and environment that make a Beam pipeline launched by this task its child
    run, with the task's Headwater settings and lineage transport (see the module docstring).

    ``settings``: use these instead of the connection's.
    """
    ti = context["ti"]
    macros = _macros()
    options: dict[str, str] = {
        "headwater_parent_namespace": str(macros.lineage_job_namespace()),
        "headwater_parent_job": str(macros.lineage_job_name(ti)),
        "headwater_parent_run_id": str(macros.lineage_run_id(ti)),
    }
    root_job, root_run = macros.lineage_root_job_name(ti), macros.lineage_root_run_id(ti)
    if root_job and root_run:
        options["headwater_root_namespace"] = str(macros.lineage_root_job_namespace(ti))
        options["headwater_root_job"] = str(root_job)
        options["headwater_root_run_id"] = str(root_run)
    if settings is None:
        settings = HeadwaterHook(headwater_conn_id).settings()
    env = _transport_env(os.environ if environ is None else environ)
    if make_url(settings.catalog_url).password:  # parsed as the hook builds it
        env["HEADWATER_CATALOG_URL"] = settings.catalog_url
    else:
        options["headwater_catalog_url"] = settings.catalog_url
    options["headwater_store_url"] = settings.store_url
    options["headwater_namespace"] = settings.namespace
    options["headwater_lineage"] = settings.lineage
    if settings.store_options:
        text = json.dumps(dict(settings.store_options), sort_keys=True, separators=(",", ":"))
        if has_secret_keys(settings.store_options):  # the one rule (headwater.sensitive)
            env["HEADWATER_STORE_OPTIONS"] = text
        else:
            options["headwater_store_options"] = text
    return BeamLaunch(options=options, env=env)


def headwater_beam_pre_execute(
    *, headwater_conn_id: str = "headwater_default",
) -> Callable[[Mapping[str, Any]], None]:
    """A ``pre_execute`` hook for ``BeamRunPythonPipelineOperator`` or ``BashOperator`` that
    fills in :func:`beam_launch` when the task runs (see the module docstring).

    Raises (when the task runs):
        TypeError: the operator is neither kind.
    """

    def pre_execute(context: Mapping[str, Any]) -> None:
        task = context["task"]
        launch = beam_launch(context, headwater_conn_id=headwater_conn_id)
        if hasattr(task, "pipeline_options") and hasattr(task, "py_file"):
            options = dict(task.pipeline_options or {})
            options.update(launch.options)
            task.pipeline_options = options
            # BeamHook starts the pipeline with this process's environment (no env argument);
            # this process runs this one task instance
            os.environ.update(launch.env)
        elif hasattr(task, "bash_command"):
            if task.env is None:  # the command ran with the task's environment: keep it
                task.append_env = True
            task.env = {**dict(task.env or {}), **launch.env,
                        ARGS_VARIABLE: launch.shell_args()}
        else:
            raise TypeError(f"headwater_beam_pre_execute works with BeamRunPythonPipelineOperator "
                            f"and BashOperator, not {type(task).__name__}")

    return pre_execute
