"""Headwater's Beam pipeline options, and the one place they turn into core ``Settings``.

Why options at all: on Dataflow, Flink or Spark the launcher is not where the work runs, so the
catalog URL, the store URL and the lineage parent must travel with the pipeline. They are read
in the launcher, in each transform's ``expand``, and baked into the (picklable, frozen)
:class:`headwater.Settings` that DoFns carry to workers; workers never read options themselves.
A transform given ``settings=`` explicitly ignores these options.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from headwater import Settings
from headwater.errors import InvalidArgument
from headwater.refs import apply_pins, parse_pins

__all__ = ["HeadwaterOptions", "beam_job_name", "beam_parent", "pinned_ref",
           "settings_from_options", "with_option_pins"]


class HeadwaterOptions(PipelineOptions):
    """``--headwater_catalog_url``, ``--headwater_store_url`` … (each falls back to the
    ``HEADWATER_*`` environment and then ``~/.headwater``, as everywhere in Headwater)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--headwater_catalog_url", default=None,
                            help="catalog database URL (sqlite:///… or postgresql://…)")
        parser.add_argument("--headwater_store_url", default=None,
                            help="object store URL (a path, s3://bucket/prefix, gs://…)")
        parser.add_argument("--headwater_store_options", default=None,
                            help="fsspec storage options as a JSON object")
        parser.add_argument("--headwater_namespace", default=None,
                            help="default namespace of dataset and job names")
        parser.add_argument("--headwater_lineage", default=None, choices=["on", "off"],
                            help="write OpenLineage events to the catalog's outbox")
        parser.add_argument("--headwater_job", default=None,
                            help="job name of the pipeline's catalog run (default: job_name)")
        parser.add_argument("--headwater_parent_namespace", default="beam",
                            help="OpenLineage namespace of the Beam job (the runs' parent)")
        parser.add_argument("--headwater_parent_job", default=None,
                            help="OpenLineage job name of the parent (default: the Beam job "
                                 "name; an Airflow task: dag_id.task_id)")
        parser.add_argument("--headwater_parent_run_id", default=None,
                            help="OpenLineage run id (UUID) of the Beam job; default: new")
        parser.add_argument("--headwater_root_namespace", default=None,
                            help="root of the OpenLineage hierarchy (e.g. the Airflow DAG run)")
        parser.add_argument("--headwater_root_job", default=None)
        parser.add_argument("--headwater_root_run_id", default=None)
        parser.add_argument("--headwater_pins", default=None,
                            help='input pins as JSON, {"ns/name": "ns/name@N"} (as '
                                 "HEADWATER_PINS): every Headwater read of a pinned dataset "
                                 "reads that version instead (how a rebuild substitutes one)")
        # set by HeadwaterPipeline, read by WriteVersion.expand: the pipeline's catalog run
        parser.add_argument("--headwater_pipeline_run_id", default=None, help="(internal)")
        # set by HeadwaterPipeline: how to launch this pipeline again (headwater_beam.launch)
        parser.add_argument("--headwater_launch", default=None, help="(internal)")


def settings_from_options(options: PipelineOptions) -> Settings:
    """Resolve :class:`~headwater.Settings` from ``--headwater_*`` options, then the environment.

    Raises:
        InvalidArgument: ``--headwater_store_options`` is not a JSON object.
    """
    hw = options.view_as(HeadwaterOptions)
    store_options = None
    if hw.headwater_store_options:
        try:
            store_options = json.loads(hw.headwater_store_options)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"--headwater_store_options is not valid JSON ({exc.msg}); give an object "
                'such as {"anon": true}'
            ) from exc
    settings = Settings.resolve(
        catalog_url=hw.headwater_catalog_url,
        store_url=hw.headwater_store_url,
        store_options=store_options,
        lineage=hw.headwater_lineage,
        namespace=hw.headwater_namespace,
    )
    return with_option_pins(settings, options)


def with_option_pins(settings: Settings, options: PipelineOptions) -> Settings:
    """``settings`` whose pins include ``--headwater_pins`` (an option's pin wins over the same
    dataset's pin from ``HEADWATER_PINS`` or explicit settings).

    Options, unlike environment variables, travel to every worker on every runner, and the
    frozen settings carrying the pins are what DoFns are pickled with.

    Raises:
        InvalidArgument: ``--headwater_pins`` is not a JSON object of dataset → reference.
    """
    raw = options.view_as(HeadwaterOptions).headwater_pins
    if not raw:
        return settings
    try:
        pins = parse_pins(raw, default_namespace=settings.namespace)
    except ValueError as exc:
        raise InvalidArgument(f"--headwater_pins: {exc}") from None
    return settings.with_(pins={**settings.pins, **pins})


def pinned_ref(settings: Settings, ref: str) -> str:
    """``ref``, or the pin substituted for it (``settings.pins``; see
    :func:`headwater.refs.apply_pins`). Launcher side, before a reference is resolved."""
    return apply_pins([ref], settings.pins, default_namespace=settings.namespace)[0]


def beam_job_name(options: PipelineOptions) -> str:
    """The Beam job's name: ``--job_name`` if given, else ``beam-pipeline``."""
    return options.view_as(GoogleCloudOptions).job_name or "beam-pipeline"


def beam_parent(options: PipelineOptions) -> dict[str, Any]:
    """The Beam job as an OpenLineage parent (the shape ``catalog.run(parent=…)`` takes).

    The run id is ``--headwater_parent_run_id`` (pass the launching Airflow task's OpenLineage
    namespace, job and run id — ``headwater_airflow.beam`` does — to hang the pipeline under it);
    otherwise one is generated and written back into the options, so every transform of this
    pipeline sees the same one.
    """
    hw = options.view_as(HeadwaterOptions)
    if not hw.headwater_parent_run_id:
        hw.headwater_parent_run_id = str(uuid.uuid4())
    parent: dict[str, Any] = {
        "namespace": hw.headwater_parent_namespace or "beam",
        "job": hw.headwater_parent_job or beam_job_name(options),
        "run_id": hw.headwater_parent_run_id,
    }
    if hw.headwater_root_run_id and hw.headwater_root_job:
        parent["root"] = {
            "namespace": hw.headwater_root_namespace or parent["namespace"],
            "job": hw.headwater_root_job,
            "run_id": hw.headwater_root_run_id,
        }
    return parent
