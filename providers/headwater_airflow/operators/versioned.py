"""VersionedStepOperator: any Python callable as a versioned, provenance-recording step.

``execute`` is short on purpose: it turns the task context into a run description and hands off
to ``Catalog.run`` — inputs are pinned to exact versions, outputs committed as new versions (or
deduplicated), the run recorded with Airflow's ids, lineage emitted once. What it returns goes to
XCom: one ``{"name", "ref", "number", "digest", "created", "reused"}`` per output.
"""

from __future__ import annotations

import inspect
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from headwater import Catalog, OutputSpec, RunContext, Version
from headwater.errors import InvalidArgument
from headwater.lineage import NullLineage
from headwater.refs import parse_pins
from headwater.settings import Settings
from headwater_airflow.assets import dataset_asset
from headwater_airflow.context import (
    airflow_openlineage_active,
    attempt_ids,
    engine_ids,
    nominal_time_of,
    parent_run,
    pins_of,
)
from headwater_airflow.hooks.headwater import HeadwaterHook
from headwater_airflow.version_compat import BaseOperator, Context

INPUT_MODES = ("arrow", "path", "version")


#: A dataset a step writes: the core's one output-spec type (name, type, key, metadata, ...).
Output: TypeAlias = OutputSpec


def _kwarg_name(ref: str) -> str:
    base = ref.split("@", 1)[0].rsplit("/", 1)[-1]
    name = re.sub(r"\W", "_", base)
    return name if name.isidentifier() else f"input_{name}"


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class VersionedStepOperator(BaseOperator):
    """Run ``python_callable`` as a Headwater step.

    :param python_callable: called with the resolved inputs as keyword arguments (named by the
        keys of ``inputs`` if a dict, else by dataset name), the ``step_params``, and ``run`` (the
        open :class:`headwater.RunContext`) if it accepts one. It returns the data of its single
        output, or a dict ``{output name: data}``; data is a path, URI, Arrow table or DataFrame.
        It may instead log outputs itself through ``run.log_output``.
    :param inputs: references, templated (``"users_raw@{{ params.raw_alias }}"``).
    :param outputs: dataset names, dicts or :class:`Output` specs.
    :param state_inputs: ``{kwarg: ref}`` read as the step's own state (e.g. the previous ID
        mapping): passed as ``None`` when absent, recorded in lineage, not in the cache key.
    :param step_params: parameters recorded on the run and part of its cache key (templated).
    :param input_mode: ``arrow`` (tables as ``pyarrow.Table``, other versions as local paths),
        ``path`` (a local checkout directory) or ``version`` (the :class:`headwater.Version`).
    :param force: recompute even when a committed run with the same cache key exists.
    :param allow_retracted: read retracted inputs anyway (otherwise the task fails with
        ``RetractedInput``); recorded in lineage with the ``headwater_retraction`` facet.
    :param job_name: the Headwater job; default ``{dag_id}.{task_id}``.
    :param code_version: extra string folded into the code fingerprint (e.g. a git SHA).
    """

    template_fields: Sequence[str] = ("inputs", "state_inputs", "step_params", "job_name",
                                      "namespace")
    template_fields_renderers = {"inputs": "json", "step_params": "json"}
    ui_color = "#cfe8ff"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        inputs: Sequence[str] | Mapping[str, str] = (),
        outputs: Sequence[str | Mapping[str, Any] | Output] = (),
        state_inputs: Mapping[str, str] | None = None,
        step_params: Mapping[str, Any] | None = None,
        input_mode: str = "arrow",
        force: bool = False,
        allow_retracted: bool = False,
        job_name: str | None = None,
        namespace: str | None = None,
        code_version: str | None = None,
        headwater_conn_id: str = HeadwaterHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        if not callable(python_callable):
            raise InvalidArgument(f"python_callable must be callable, not {python_callable!r}")
        if input_mode not in INPUT_MODES:
            raise InvalidArgument(f"input_mode must be one of {INPUT_MODES}, not {input_mode!r}")
        self.output_specs = [Output.of(o) for o in outputs]
        outlets = list(kwargs.pop("outlets", None) or [])
        outlets += [dataset_asset(o.name, default_namespace=namespace or "default")
                    for o in self.output_specs]
        super().__init__(outlets=outlets, **kwargs)
        self.python_callable = python_callable
        self.inputs = dict(inputs) if isinstance(inputs, Mapping) else list(inputs)
        self.state_inputs = dict(state_inputs or {})
        self.step_params = dict(step_params or {})
        self.input_mode = input_mode
        self.force = force
        #: read retracted inputs anyway (per task; docs/retract-status.md); refused otherwise
        self.allow_retracted = allow_retracted
        self.job_name = job_name
        self.namespace = namespace
        self.code_version = code_version
        self.headwater_conn_id = headwater_conn_id
        self._run_inputs: list[Version] = []
        self._run_outputs: list[Version] = []
        self._run_id: str | None = None
        self._cache_key: str | None = None
        #: the connection's settings, resolved before the openlineage listener forks
        self._settings: Settings | None = None

    # -- helpers --------------------------------------------------------------------------------
    def _input_refs(self) -> dict[str, str]:
        if isinstance(self.inputs, dict):
            return {str(k): str(v) for k, v in self.inputs.items()}
        return {_kwarg_name(ref): str(ref) for ref in self.inputs}

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render the templated fields, then resolve the Headwater connection once, here.

        The task runner renders templates in the task's own process before it calls the
        ``on_task_instance_running`` listeners; Airflow's openlineage listener runs
        ``get_openlineage_facets_on_start`` in a forked child where ``get_connection()`` waits
        on the supervisor channel until the provider's timeout (~10 s) and the START event is
        lost. Resolving the settings before the fork lets the START hook open the catalog
        without asking Airflow for the connection."""
        super().render_template_fields(context, jinja_env)
        if self._settings is None:
            try:
                self._settings = HeadwaterHook(self.headwater_conn_id).settings()
            except Exception as exc:  # execute() resolves again and reports the real error
                self.log.debug("headwater: connection not resolved before execute: %s", exc)

    def _catalog(self) -> Catalog:
        settings = self._settings
        if settings is None:
            settings = self._settings = HeadwaterHook(self.headwater_conn_id).settings()
        if airflow_openlineage_active():
            # Airflow's openlineage provider emits this task's events (with our facets, from
            # get_openlineage_facets_on_*); a second event from Headwater would duplicate it.
            return Catalog.open(settings=settings, lineage=NullLineage())
        return Catalog.open(settings=settings)

    def _pins(self, catalog: Catalog, context: Context) -> dict[str, str]:
        """``HEADWATER_PINS`` overlaid with the DAG run's ``conf["headwater_pins"]`` (how
        ``headwater rebuild`` substitutes a version; docs/rebuild.md)."""
        ns = self.namespace or catalog.settings.namespace
        return {**parse_pins(dict(catalog.settings.pins), default_namespace=ns),
                **parse_pins(pins_of(context), default_namespace=ns)}

    def code_fingerprint(self) -> str:
        from headwater.fingerprint import fingerprint_code

        base = fingerprint_code(self.python_callable) or ""
        return f"{base}:{self.code_version}" if self.code_version else base

    def _materialise(self, version: Version, workdir: Path) -> Any:
        if self.input_mode == "version":
            return version
        if self.input_mode == "arrow" and version.kind == "table":
            return version.to_arrow()
        return version.checkout(workdir / f"{version.dataset}-{version.number}")

    def _log_returned(self, run: RunContext, result: Any) -> None:
        if result is None:
            return
        specs = {o.name: o for o in self.output_specs}
        if isinstance(result, Mapping) and set(result) <= set(specs) and result:
            items = list(result.items())
        elif len(self.output_specs) == 1:
            items = [(self.output_specs[0].name, result)]
        else:
            raise InvalidArgument(
                f"task {self.task_id} declares outputs {sorted(specs)}; return a dict keyed by "
                "those names (or log them with run.log_output)"
            )
        for name, data in items:
            spec = specs[name]
            run.log_spec(data, spec)

    # -- execute --------------------------------------------------------------------------------
    def execute(self, context: Context) -> list[dict[str, Any]]:
        catalog = self._catalog()
        refs = self._input_refs()
        ti = context["ti"]
        job = self.job_name or f"{ti.dag_id}.{ti.task_id}"
        run = catalog.run(
            job, inputs=list(refs.values()), params=self.step_params,
            state_inputs=list(self.state_inputs.values()),
            code=self.code_fingerprint(), engine=engine_ids(context),
            parent=parent_run(context), nominal_time=nominal_time_of(context),
            namespace=self.namespace, job_type="AIRFLOW_TASK", attempt=attempt_ids(context),
            allow_retracted=self.allow_retracted, pins=self._pins(catalog, context),
        )
        reused = False
        with run:
            self._run_id = run.id
            self._cache_key = run.cache_key
            self._run_inputs = list(run.inputs)
            for v in run.inputs:
                self.log.info("input %s (digest %s)", v.ref, v.short_digest)
            previous = None if self.force else run.previous()
            if previous is not None and len(previous.outputs) == len(self.output_specs):
                run.reuse(previous)
                reused = True
                self.log.info("unchanged since run %s (same code, parameters and input "
                              "versions): reusing %s", previous.id, ", ".join(previous.outputs))
            else:
                with tempfile.TemporaryDirectory(prefix="headwater-inputs-") as tmp:
                    kwargs = {name: self._materialise(v, Path(tmp))
                              for name, v in zip(refs, run.inputs, strict=True)}
                    by_name = {v.name: v for v in run.state_inputs}
                    for kwarg, ref in self.state_inputs.items():
                        version = by_name.get(str(catalog.parse_ref(ref).dataset))
                        kwargs[kwarg] = (self._materialise(version, Path(tmp))
                                         if version is not None else None)
                    kwargs.update(self.step_params)
                    if _accepts(self.python_callable, "run"):
                        kwargs["run"] = run
                    self._log_returned(run, self.python_callable(**kwargs))
        self._run_outputs = list(run.outputs)
        return self._publish(context, run.outputs, reused=reused)

    def _publish(self, context: Context, outputs: Sequence[Version], *, reused: bool
                 ) -> list[dict[str, Any]]:
        out = []
        events = context.get("outlet_events")
        for v in outputs:
            record: dict[str, Any] = {
                "name": v.name, "ref": v.ref, "number": v.number, "digest": v.digest,
                "created": v.created, "reused": reused, "run_id": v.run_id,
                "rows": v.row_count}
            out.append(record)
            self.log.info("%s %s (digest %s)", "reused" if reused else
                          ("committed" if v.created else "unchanged"), v.ref, v.short_digest)
            if events is not None:
                events[dataset_asset(v.name)].extra = {
                    "headwater": {k: record[k] for k in ("ref", "number", "digest", "run_id")}}
        return out

    # -- OpenLineage (used by apache-airflow-providers-openlineage) -----------------------------
    def get_openlineage_facets_on_start(self) -> Any:
        from headwater_airflow.openlineage import operator_lineage

        return operator_lineage(self, state="START")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from headwater_airflow.openlineage import operator_lineage

        return operator_lineage(self, state="COMPLETE")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from headwater_airflow.openlineage import operator_lineage

        return operator_lineage(self, state="FAIL")
