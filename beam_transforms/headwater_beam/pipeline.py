"""The reference pipeline: de-spam → ID merge → clean → split on a version of raw users.

Run it like any Beam pipeline (standard options pass through to the runner)::

    python -m headwater_beam.pipeline --input-ref raw_users@latest \\
        [--model-ref spam_model@production] [--output-prefix users] \\
        --runner=FnApiRunner \\
        --headwater_catalog_url=postgresql://… --headwater_store_url=s3://bucket/store

Without ``--model-ref`` the spam model is trained first, in the launcher, and logged as the
version ``<prefix>_spam_model`` (logging the same model again makes no new version), so the
model is itself versioned and an input of the run: with ``--corpus-ref`` from that corpus
version, through a catalog run whose input is the corpus (skipped when a run with the same
corpus, parameters and code already made the model), else from the shipped SMS Spam
Collection. A rebuild reruns the pipeline with ``--headwater_pins`` naming a corrected corpus
(or model, or users version): the pins replace the references given here.

It commits four versions: ``<prefix>_split`` (the users, de-spammed, merged, cleaned, with a
``split`` column), ``<prefix>_spam``, ``<prefix>_id_mapping`` (the next merge's ``previous``)
and ``<prefix>_dead_letter`` (every step's rejects, with reasons). With the same input version
and parameters, ``<prefix>_split`` has the same table fingerprint as running the steps'
``run_table`` one after another (what the Airflow DAG does) — ``tests/beam`` proves it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

from headwater import Catalog, Settings, VersionInfo
from headwater.steps.clean import CleanParams
from headwater.steps.despam import DespamParams
from headwater.steps.id_merge import IdMergeParams
from headwater.steps.spam_model import TrainSpamModelStep, load_sms_spam, train_spam_model
from headwater.steps.split import SplitParams
from headwater_beam.context import HeadwaterPipeline, PipelineReport
from headwater_beam.dead_letters import DEAD_LETTER_SCHEMA, DeadLetters
from headwater_beam.graph import child_run_parent
from headwater_beam.id_merge import MAPPING, IdMerge
from headwater_beam.launch import beam_engine
from headwater_beam.options import beam_job_name, pinned_ref
from headwater_beam.read import ReadVersion
from headwater_beam.steps import DEAD_LETTER, OUTPUT, SPAM, Clean, Despam, Split
from headwater_beam.write import WriteVersion

__all__ = ["ReferenceParams", "build", "ensure_spam_model", "main", "output_schemas", "run",
           "train_spam_model_version"]

log = logging.getLogger(__name__)

_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
          "timestamp": pa.timestamp("us"), "date": pa.date32(), "binary": pa.binary()}
_KIND_TYPES = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


@dataclass(frozen=True)
class ReferenceParams:
    """The four steps' parameters (defaults: the steps' own)."""

    despam: DespamParams = field(default_factory=DespamParams)
    id_merge: IdMergeParams = field(default_factory=IdMergeParams)
    clean: CleanParams = field(default_factory=CleanParams)
    split: SplitParams = field(default_factory=SplitParams)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_dict()
                for name in ("despam", "id_merge", "clean", "split")}


def ensure_spam_model(settings: Settings, name: str) -> str:
    """Train the spam model on the shipped corpus and log it as ``name``; its exact ref."""
    corpus = load_sms_spam()
    model = train_spam_model(corpus["text"].to_pylist(), corpus["label"].to_pylist())
    with tempfile.TemporaryDirectory(prefix="hw-spam-") as tmp, \
            Catalog.open(settings=settings) as cat:
        model.save(tmp)
        version = cat.log(tmp, name=name, type="model",
                          metadata={"trained_by": "headwater_beam.pipeline"})
        return version.ref


def train_spam_model_version(settings: Settings, corpus_ref: str, name: str, *,
                             engine: Mapping[str, Any] | None = None,
                             parent: Mapping[str, Any] | None = None) -> str:
    """Train the spam model on the corpus version ``corpus_ref`` (pins apply: ``settings.pins``)
    through a catalog run ``<name>.train`` whose input is the corpus, log it as ``name``; its
    exact ref. A committed run with the same corpus version, parameters and code is reused.
    ``engine``/``parent``: the pipeline's (so a rebuild reruns the pipeline for this run too)."""
    step = TrainSpamModelStep()
    with Catalog.open(settings=settings) as cat:
        with cat.run(f"{name}.train", inputs=[corpus_ref], params=step.params.to_dict(),
                     code=step.code_fingerprint(), job_type="TRAIN", engine=engine,
                     parent=parent) as run:
            previous = run.previous()
            if previous is not None:
                run.reuse(previous)
            else:
                result = step.run_table(cat.read_table(run.inputs[0].info()))
                with tempfile.TemporaryDirectory(prefix="hw-spam-") as tmp:
                    for file, blob in result.artifacts.items():
                        (Path(tmp) / file).write_bytes(blob)
                    run.log_output(tmp, name=name, type="model", stats=result.stats)
        return run.outputs[0].info().ref


def _arrow_type(column: dict[str, Any]) -> pa.DataType:
    try:
        return pa.type_for_alias(str(column.get("type")))
    except (ValueError, KeyError):
        return _ARROW.get(str(column.get("family")), pa.string())


def output_schemas(input_schema: Sequence[dict[str, Any]] | None,
                   params: ReferenceParams) -> dict[str, pa.Schema | None]:
    """Arrow schemas of ``split`` and ``spam`` from the input version's recorded schema, so every
    shard has the table path's column types — a column that is null in every row (say, the
    ``_invalid_reason`` of rows that all passed) keeps its type instead of becoming ``null``."""
    if not input_schema:
        return {"split": None, "spam": None}
    base = [pa.field(c["name"], _arrow_type(c)) for c in input_schema]
    score = pa.field(params.despam.score_column, pa.float64())
    spam = pa.schema([*base, score, pa.field("reason", pa.string()),
                      pa.field("column", pa.string())])
    fields = [*base, score, pa.field(params.id_merge.user_id_column, pa.string())]
    kinds = {c.name: _KIND_TYPES.get(c.kind, pa.string()) for c in params.clean.columns}
    fields = [pa.field(f.name, kinds.get(f.name, f.type)) for f in fields]
    fields += [pa.field(n, t) for n, t in kinds.items() if n not in {f.name for f in fields}]
    fields.append(pa.field(params.split.split_column, pa.string()))
    return {"split": pa.schema(fields), "spam": spam}


def build(p: beam.Pipeline, *, input_ref: str, model_ref: str, prefix: str,
          params: ReferenceParams | None = None,
          previous_mapping_ref: str | None = None) -> dict[str, beam.PCollection]:
    """Apply the reference steps to ``p``; returns the write results (one VersionInfo each).

    ``previous_mapping_ref`` (the last run's ``<prefix>_id_mapping`` version) keeps people's
    user IDs stable across versions, as the table path's ``previous`` does.
    """
    params = params or ReferenceParams()
    read = ReadVersion(input_ref)
    users = p | "Read" >> read
    previous = (p | "ReadPreviousMapping" >> ReadVersion(previous_mapping_ref)
                if previous_mapping_ref else None)
    despam = users | "Despam" >> Despam(params.despam, model_ref=model_ref)
    merged = despam[OUTPUT] | "IdMerge" >> IdMerge(params.id_merge, previous=previous)
    clean = merged[OUTPUT] | "Clean" >> Clean(params.clean)
    split = clean[OUTPUT] | "Split" >> Split(params.split)
    dead = {"despam": despam[DEAD_LETTER], "id_merge": merged[DEAD_LETTER],
            "clean": clean[DEAD_LETTER], "split": split[DEAD_LETTER]} | "DeadLetters" >> (
        DeadLetters(id_column=params.id_merge.id_column))
    schemas = output_schemas(read.version.schema if read.version else None, params)
    key = [params.id_merge.id_column]
    return {
        "split": split[OUTPUT] | "WriteSplit" >> WriteVersion(
            f"{prefix}_split", schema=schemas["split"], key=key),
        "spam": despam[SPAM] | "WriteSpam" >> WriteVersion(
            f"{prefix}_spam", schema=schemas["spam"]),
        "mapping": merged[MAPPING] | "WriteMapping" >> WriteVersion(
            f"{prefix}_id_mapping", schema=pa.schema([
                (params.id_merge.id_column, pa.string()),
                (params.id_merge.user_id_column, pa.string())]), key=key),
        "dead_letter": dead | "WriteDeadLetters" >> WriteVersion(
            f"{prefix}_dead_letter", schema=DEAD_LETTER_SCHEMA),
    }


def _parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-ref", required=True, help="version of raw users to process")
    parser.add_argument("--model-ref", default=None,
                        help="spam model version (default: train one and log it first)")
    parser.add_argument("--corpus-ref", default=None,
                        help="labelled corpus version to train the model on (without "
                             "--model-ref; default: the shipped SMS Spam Collection)")
    parser.add_argument("--output-prefix", default="users",
                        help="dataset name prefix of the outputs (default: users)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--previous-mapping-ref", default=None,
                        help="last run's id mapping version: people keep their user IDs")
    return parser.parse_known_args(argv)


def run(argv: Sequence[str] | None = None, *,
        params: ReferenceParams | None = None) -> tuple[PipelineReport, dict[str, VersionInfo]]:
    """Run the reference pipeline; returns the report and the committed versions by output.

    The run records ``python -m headwater_beam.pipeline <argv>`` as the way to launch it again.
    """
    recorded = list(sys.argv[1:] if argv is None else argv)
    args, beam_args = _parse(recorded)
    params = params or ReferenceParams()
    if args.split_seed != params.split.seed:
        params = replace(params, split=replace(params.split, seed=args.split_seed))
    options = PipelineOptions(beam_args)
    ctx = HeadwaterPipeline(options, job=f"{args.output_prefix}_reference_pipeline",
                            params={"input": args.input_ref, **params.to_dict()},
                            entry_point="headwater_beam.pipeline", argv=recorded)
    with ctx as p:
        settings = ctx.settings
        model_ref = args.model_ref
        model_name = f"{args.output_prefix}_spam_model"
        if settings is None:
            raise RuntimeError("HeadwaterPipeline resolved no settings")
        if model_ref is not None:
            model_ref = pinned_ref(settings, model_ref)
        elif args.corpus_ref:
            model_ref = train_spam_model_version(
                settings, args.corpus_ref, model_name, parent=child_run_parent(options, settings),
                engine=beam_engine(options, settings, job_name=beam_job_name(options),
                                   step="train_spam_model"))
        else:
            model_ref = ensure_spam_model(settings, model_name)
        outputs = build(p, input_ref=args.input_ref, model_ref=model_ref or "",
                        prefix=args.output_prefix, params=params,
                        previous_mapping_ref=args.previous_mapping_ref)
        del outputs
    report = ctx.report
    if report is None:
        raise RuntimeError("the pipeline did not run")
    prefix = f"{args.output_prefix}_"
    versions = {name.removeprefix(prefix): v for name, v in report.outputs.items()}
    return report, versions


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report, versions = run(argv)
    print(f"pipeline run {report.run_id}: {report.state}")
    for name, v in versions.items():
        print(f"  {name:12s} {v.ref:40s} rows={v.row_count} fingerprint={v.table_fingerprint}")
    for key in sorted(report.counters):
        print(f"  {key} = {report.counters[key]}")
    print(f"  beam lineage sources={report.lineage.get('sources')} "
          f"sinks={report.lineage.get('sinks')}")


if __name__ == "__main__":
    main()
