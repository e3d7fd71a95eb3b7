"""Beam metrics of the Headwater transforms: record counters and Beam's own ``Lineage``.

Why here: every transform counts the same things under the same names (``records_in``,
``records_out``, ``dead_lettered``, ``spam_dropped``…, namespace ``headwater.<transform>``), so
a dashboard or a test reconciles them without knowing the transform. Sources and sinks are
reported to Beam's ``Lineage`` metrics as the store objects a version *is* (its manifest), in
the Dataplex FQN form Beam's own file IOs use, so runners that collect lineage (Dataflow) see
Headwater versions next to every other IO. Reading them back is defensive: ``Lineage.query()``
crashes on PortableRunner results, whose ``attempted`` side is None.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from apache_beam.metrics.metric import Lineage, Metrics, MetricsFilter

from headwater.store.layout import object_url

__all__ = ["NAMESPACE", "counter", "query_counters", "query_lineage", "report_lineage",
           "version_uri"]

log = logging.getLogger(__name__)
NAMESPACE = "headwater"


def counter(transform: str, name: str) -> Any:
    """The counter ``name`` of a Headwater transform (namespace ``headwater.<transform>``)."""
    return Metrics.counter(f"{NAMESPACE}.{transform}", name)


def version_uri(version: Any) -> str:
    """The address of a version: its manifest object in its store (as in OpenLineage events)."""
    return object_url(str(version.store_url), version.digest)


def _fqn_parts(uri: str) -> tuple[str, list[str]]:
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        return "s3", [parsed.netloc, parsed.path.lstrip("/")]
    if parsed.scheme in ("gs", "gcs"):
        return "gcs", [parsed.netloc, parsed.path.lstrip("/")]
    if parsed.scheme in ("", "file"):
        return "filesystem", ["localhost", parsed.path if parsed.scheme else uri]
    return parsed.scheme, [parsed.netloc, parsed.path.lstrip("/")]


def report_lineage(kind: str, uri: str) -> None:
    """Report ``uri`` (a store object: a version's manifest) as a Beam lineage source or sink.

    Lineage is advisory: a failure is logged, never raised.
    """
    try:
        system, segments = _fqn_parts(uri)
        lineage = Lineage.sources() if kind == "source" else Lineage.sinks()
        lineage.add(system, *segments, last_segment_sep="/")
    except Exception as exc:  # lineage must never fail the pipeline
        log.warning("headwater: could not report Beam lineage for %s (%s: %s)",
                    uri, type(exc).__name__, exc)


def _flatten(trie: Any) -> set[str]:
    out: set[str] = set()
    if trie is None:
        return out
    try:
        for fqn in trie.flattened():
            out.add("".join(fqn[:-1]) + ("*" if fqn[-1] else ""))
    except Exception as exc:  # an unexpected result shape: skip it, do not fail the caller
        log.debug("headwater: unreadable lineage metric %r: %s", trie, exc)
    return out


def query_lineage(result: Any) -> dict[str, list[str]]:
    """``{"sources": [...], "sinks": [...]}`` from a pipeline result's ``lineage`` metrics.

    Reads committed and attempted values, skipping whichever a runner leaves None; a runner
    whose results have no metrics gives empty lists.
    """
    found: dict[str, set[str]] = {"sources": set(), "sinks": set()}
    try:
        metrics = result.metrics().query(
            MetricsFilter().with_namespace(Lineage.LINEAGE_NAMESPACE)
        )
    except Exception as exc:  # DaskRunner: NotImplementedError; others may differ
        log.info("headwater: runner reports no metrics (%s); lineage left empty", exc)
        return {"sources": [], "sinks": []}
    for group in metrics.values():
        for res in group:
            name = res.key.metric.name
            key = ("sources" if name == Lineage.SOURCE
                   else "sinks" if name == Lineage.SINK else None)
            if key is None:
                continue
            for side in ("committed", "attempted"):
                try:
                    value = getattr(res, side)
                except Exception:  # some runners raise for the unsupported side
                    value = None
                found[key] |= _flatten(value)
    return {k: sorted(v) for k, v in found.items()}


def query_counters(result: Any, namespace_prefix: str = NAMESPACE) -> dict[str, int]:
    """``{"headwater.clean/records_in": n, …}`` — committed values, else attempted ones."""
    out: dict[str, int] = {}
    try:
        counters = result.metrics().query(MetricsFilter())["counters"]
    except Exception as exc:
        log.info("headwater: runner reports no metrics (%s)", exc)
        return out
    for res in counters:
        ns = res.key.metric.namespace
        if not ns.startswith(namespace_prefix):
            continue
        value = res.committed if res.committed is not None else res.attempted
        key = f"{ns}/{res.key.metric.name}"
        out[key] = out.get(key, 0) + int(value or 0)
    return out
