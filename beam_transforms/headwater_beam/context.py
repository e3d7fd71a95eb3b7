"""``HeadwaterPipeline``: a Beam pipeline whose execution is a catalog run.

Why: provenance needs to know that a set of versions came from one execution of one pipeline,
and OpenLineage consumers need that execution hung under the Beam job. Decision (see
``docs/beam.md``): **one catalog run per pipeline, plus one child run per ``WriteVersion``**.

* The pipeline run is opened (``START``) when the pipeline starts — in ``__exit__`` of the
  ``with`` block, after the graph is built, so its inputs are every version the graph reads —
  and closed when it finishes: ``COMPLETE`` if the Beam job ends ``DONE``, ``FAIL`` otherwise
  (or when ``run()``/``wait_until_finish()`` raises). Its OpenLineage parent is the Beam job.
* Each ``WriteVersion`` commits its version in its own finalize step, on a worker, through a
  child run whose parent is the pipeline run (root: the Beam job). That is what lets the
  committed version come out as a PCollection while the pipeline still runs, and it keeps the
  core's rule of one transaction per run commit.

The run id of the pipeline run is fixed when the context is entered, so transforms applied in
the block can name it as their parent before the run exists in the catalog.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from headwater import Catalog, RunContext, Settings, VersionInfo
from headwater.errors import RunFailed
from headwater.run import new_run_id
from headwater_beam.graph import inputs_of, pipeline_job, pipeline_transforms
from headwater_beam.launch import beam_engine, launch_record
from headwater_beam.metrics import query_counters, query_lineage
from headwater_beam.options import (
    HeadwaterOptions,
    beam_job_name,
    beam_parent,
    settings_from_options,
    with_option_pins,
)
from headwater_beam.write import WriteVersion, committed_before

__all__ = ["HeadwaterPipeline", "PipelineReport"]

log = logging.getLogger(__name__)


@dataclass
class PipelineReport:
    """What the pipeline did, read back after it finished."""

    run_id: str
    state: str
    inputs: tuple[str, ...] = ()
    counters: dict[str, int] = field(default_factory=dict)
    lineage: dict[str, list[str]] = field(default_factory=dict)
    #: dataset name → the version each WriteVersion of the pipeline committed
    outputs: dict[str, VersionInfo] = field(default_factory=dict)
    result: Any = None


class HeadwaterPipeline:
    """``with HeadwaterPipeline(options, settings=...) as p: p | ReadVersion(...) | ...``.

    ``settings`` (default: from ``--headwater_*`` options, then ``HEADWATER_*``) are written
    back into the options, so transforms in the block need no ``settings=`` of their own.
    After the block, ``.report`` holds the final state, Headwater counters and Beam's lineage
    (sources and sinks). A failed pipeline raises after its run is recorded as FAILED.

    ``entry_point`` (a module run with ``python -m``, or a script path) and ``argv`` (what it
    was given) are recorded with every run so ``headwater_beam.rerun`` can launch the pipeline
    again (default: this process's ``__main__`` and ``sys.argv[1:]``; see
    :mod:`headwater_beam.launch`). ``--headwater_pins`` and ``HEADWATER_PINS`` pin inputs.
    """

    def __init__(self, options: PipelineOptions | None = None, *,
                 settings: Settings | None = None, job: str | None = None,
                 params: dict[str, Any] | None = None, entry_point: str | None = None,
                 argv: Sequence[str] | None = None) -> None:
        self.options = options if options is not None else PipelineOptions()
        self.settings = settings
        self.job = job
        self.params = dict(params or {})
        self.entry_point = entry_point
        self.argv = list(argv) if argv is not None else None
        self.run_id = new_run_id()
        self.pipeline: beam.Pipeline | None = None
        self.report: PipelineReport | None = None

    def __enter__(self) -> beam.Pipeline:
        hw = self.options.view_as(HeadwaterOptions)
        settings = (with_option_pins(self.settings, self.options) if self.settings is not None
                    else settings_from_options(self.options))
        self.settings = settings
        hw.headwater_catalog_url = settings.catalog_url
        hw.headwater_store_url = settings.store_url
        if settings.store_options:
            hw.headwater_store_options = json.dumps(dict(settings.store_options))
        hw.headwater_namespace = settings.namespace
        hw.headwater_lineage = settings.lineage
        if self.job:
            hw.headwater_job = self.job
        if settings.pins:
            hw.headwater_pins = json.dumps(dict(settings.pins), sort_keys=True)
        hw.headwater_pipeline_run_id = self.run_id
        hw.headwater_launch = json.dumps(launch_record(
            self.options, settings, entry_point=self.entry_point, argv=self.argv))
        beam_parent(self.options)  # fixes the Beam job's run id for every transform
        self.pipeline = beam.Pipeline(options=self.options)
        return self.pipeline

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None or self.pipeline is None:
            return  # building the graph failed: nothing ran, no run to record
        self.report = self.run()

    def _catalog(self) -> Catalog:
        settings = self.settings or settings_from_options(self.options)
        return Catalog.open(settings=settings)

    def run(self) -> PipelineReport:
        """Open the pipeline run, run the pipeline to the end, close the run."""
        if self.pipeline is None:
            raise RunFailed("HeadwaterPipeline.run() needs the pipeline built in its with-block")
        options = self.options
        inputs = inputs_of(pipeline_transforms(self.pipeline))
        with self._catalog() as cat:
            engine = beam_engine(options, cat.settings, job_name=beam_job_name(options))
            run: RunContext = cat.run(
                pipeline_job(options), inputs=inputs, params=self.params, engine=engine,
                parent=beam_parent(options), namespace=cat.settings.namespace,
                job_type="BEAM_PIPELINE", code=None)
            run = dataclasses.replace(run, id=self.run_id)
            run.start()
            try:
                result = self.pipeline.run()
                state = result.wait_until_finish()
            except BaseException as exc:
                run.fail(exc)
                raise
            report = PipelineReport(run_id=self.run_id, state=str(state), inputs=inputs,
                                    counters=query_counters(result),
                                    lineage=query_lineage(result), result=result)
            if state == PipelineState.DONE:
                report.outputs = _outputs(cat, self.pipeline)
                run.commit()
            else:
                error = RunFailed(f"Beam pipeline {engine['job_name']} ended {state}")
                run.fail(error)
                raise error
        log.info("headwater: pipeline run %s %s; lineage %s", self.run_id, state, report.lineage)
        return report


def _outputs(cat: Catalog, pipeline: beam.Pipeline) -> dict[str, VersionInfo]:
    """The versions this pipeline's writes committed (found by their write ids)."""
    out: dict[str, VersionInfo] = {}
    for t in pipeline_transforms(pipeline):
        if isinstance(t, WriteVersion) and t.job and t.write_id:
            version = committed_before(cat, t.job, t.write_id)
            if version is not None:
                out[t.name] = version
    return out
