"""OperatorLineage for Airflow's openlineage provider, built from what the core returns.

START carries the inputs resolved to exact versions; COMPLETE adds the committed outputs and
Headwater's provenance run facet (cache key, code fingerprint, parameters, digests); FAIL carries
the inputs. Datasets and facets come from :mod:`headwater.lineage.facets`, the same builders the
core's own emitter uses, so both paths describe a version identically.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.catalog.models import utcnow as utcnow_for_lineage
from headwater.lineage.base import RunEvent
from headwater.lineage.facets import input_dataset, output_dataset, provenance_facet
from headwater.lineage.provenance import FACET_KEY

if TYPE_CHECKING:
    from headwater_airflow.operators.versioned import VersionedStepOperator


def operator_lineage(op: VersionedStepOperator, *, state: str) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = list(op._run_inputs)
    if not inputs and state == "START":
        try:
            catalog = op._catalog()
            inputs = [catalog.get(ref) for ref in op._input_refs().values()]
        except Exception as exc:  # lineage must never fail the task
            op.log.warning("headwater: could not resolve inputs for lineage: %s", exc)
            inputs = []
    outputs = list(op._run_outputs) if state == "COMPLETE" else []
    run_facets: dict[str, Any] = {}
    if state == "COMPLETE" and op._run_id is not None:
        event = RunEvent(
            run_id=op._run_id, job_namespace=op.namespace or "default",
            job_name=op.job_name or op.task_id, state=state, event_time=utcnow_for_lineage(),
            params=dict(op.step_params), code_fingerprint=op.code_fingerprint(),
            cache_key=op._cache_key,
            inputs=tuple(v.info() for v in inputs), outputs=tuple(v.info() for v in outputs),
        )
        run_facets[FACET_KEY] = provenance_facet(event)
    return OperatorLineage(
        inputs=[input_dataset(v.info()) for v in inputs],
        outputs=[output_dataset(v.info()) for v in outputs],
        run_facets=run_facets,
    )
