"""What a write's catalog run must know, found by walking the pipeline graph upstream.

Why a graph walk: a version's provenance is the versions and steps it came from. Rather than ask
users to repeat them, every Headwater transform exposes what it contributes —
``headwater_inputs`` (exact refs it read: ``ReadVersion``, a model for ``Despam``),
``headwater_params`` and ``headwater_code`` (a step's parameters and code fingerprint) — and
``WriteVersion.expand`` collects those of every transform upstream of its input, in the
launcher, before anything runs. ``HeadwaterPipeline`` collects the inputs of the whole graph the
same way for the pipeline's own run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from headwater import Settings
from headwater_beam.launch import beam_engine
from headwater_beam.options import (
    HeadwaterOptions,
    beam_job_name,
    beam_parent,
    settings_from_options,
)

__all__ = ["WriteContext", "child_run_parent", "pipeline_job", "pipeline_transforms",
           "upstream_transforms", "write_context"]


def upstream_transforms(pcoll: beam.PCollection) -> list[beam.PTransform]:
    """Every transform (leaf or composite) whose output flows into ``pcoll``, nearest first."""
    found: list[beam.PTransform] = []
    seen_applied: set[int] = set()
    seen_values: set[int] = set()
    stack: list[Any] = [pcoll]
    while stack:
        value = stack.pop()
        if id(value) in seen_values:
            continue
        seen_values.add(id(value))
        applied = getattr(value, "producer", None)
        while applied is not None and id(applied) not in seen_applied:
            seen_applied.add(id(applied))
            if applied.transform is not None:
                found.append(applied.transform)
            stack.extend(applied.inputs)
            stack.extend(si.pvalue for si in getattr(applied, "side_inputs", ()))
            applied = applied.parent
    return found


def pipeline_transforms(pipeline: beam.Pipeline) -> list[beam.PTransform]:
    """Every transform applied in ``pipeline``."""
    out: list[beam.PTransform] = []

    class _Visitor(beam.pipeline.PipelineVisitor):  # type: ignore[misc]
        def enter_composite_transform(self, node: Any) -> None:
            if node.transform is not None:
                out.append(node.transform)

        def visit_transform(self, node: Any) -> None:
            if node.transform is not None:
                out.append(node.transform)

    pipeline.visit(_Visitor())
    return out


def inputs_of(transforms: list[beam.PTransform]) -> tuple[str, ...]:
    refs: dict[str, None] = {}
    for t in transforms:
        for ref in getattr(t, "headwater_inputs", ()):
            refs[ref] = None
    return tuple(sorted(refs))


def pipeline_job(options: Any) -> str:
    """Job name of the pipeline's catalog run: ``--headwater_job``, else the Beam job name."""
    return options.view_as(HeadwaterOptions).headwater_job or beam_job_name(options)


def child_run_parent(options: Any, settings: Settings) -> dict[str, Any]:
    """The OpenLineage parent of a catalog run made inside the pipeline (a write, the model
    training of the reference pipeline): the pipeline's run, rooted at the Beam job's root (or
    the Beam job); without ``HeadwaterPipeline``, the Beam job itself."""
    hw = options.view_as(HeadwaterOptions)
    beam_job = beam_parent(options)
    if not hw.headwater_pipeline_run_id:
        return beam_job
    root = beam_job.get("root") or {k: beam_job[k] for k in ("namespace", "job", "run_id")}
    return {"namespace": settings.namespace, "job": pipeline_job(options),
            "run_id": hw.headwater_pipeline_run_id, "root": root}


@dataclass(frozen=True)
class WriteContext:
    """Everything the finalize step of one ``WriteVersion`` passes to ``catalog.run``."""

    settings: Settings
    job: str
    namespace: str
    write_id: str
    inputs: tuple[str, ...]
    params: dict[str, Any]
    code: str | None
    engine: dict[str, Any]
    parent: dict[str, Any] | None


def _current_label(pipeline: beam.Pipeline, fallback: str) -> str:
    try:
        return str(pipeline._current_transform().full_label) or fallback
    except Exception:  # private API: degrade to the transform's own label
        return fallback


def write_context(pcoll: beam.PCollection, transform: beam.PTransform, *, dataset: str,
                  settings: Settings | None = None) -> WriteContext:
    """Build the catalog-run description of a write applied to ``pcoll`` (launcher side)."""
    options = pcoll.pipeline.options
    settings = settings or settings_from_options(options)
    hw = options.view_as(HeadwaterOptions)
    beam_job = beam_parent(options)
    job = pipeline_job(options)
    upstream = upstream_transforms(pcoll)
    steps: dict[str, Any] = {}
    codes: list[str] = []
    for t in upstream:
        params = getattr(t, "headwater_params", None)
        if params is not None:
            steps[t.label] = params
        code = getattr(t, "headwater_code", None)
        if code:
            codes.append(f"{t.label}={code}")
    code_fp = None
    if codes:
        h = hashlib.blake2b(digest_size=20)
        for c in sorted(codes):
            h.update(c.encode() + b"\0")
        code_fp = "blake2b:" + h.hexdigest()
    label = _current_label(pcoll.pipeline, transform.label)
    run_scope = hw.headwater_pipeline_run_id or beam_job["run_id"]
    parent = child_run_parent(options, settings)
    short = dataset.rsplit("/", 1)[-1]
    return WriteContext(
        settings=settings,
        job=f"{job}.write.{short}",
        namespace=settings.namespace,
        write_id=f"{run_scope}/{label}",
        inputs=inputs_of(upstream),
        params={"write_id": f"{run_scope}/{label}", "dataset": dataset, "steps": steps},
        code=code_fp,
        engine=beam_engine(options, settings, job_name=beam_job_name(options), transform=label),
        parent=parent,
    )
