"""A tiny Headwater Beam pipeline launched as a script (by the Airflow tests and reruns): read a
version, double ``n``, write a version. ``python tiny_pipeline.py --input_ref R --output NAME``
plus pipeline options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from headwater_beam import HeadwaterPipeline, ReadVersion, WriteVersion


def double(record: dict[str, Any]) -> dict[str, Any]:
    return {"n": record["n"] * 2}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input_ref", required=True)
    parser.add_argument("--output", required=True)
    args, beam_args = parser.parse_known_args(argv)
    with HeadwaterPipeline(PipelineOptions(beam_args), job=f"{args.output}_tiny") as p:
        _ = (p | ReadVersion(args.input_ref) | beam.Map(double) | WriteVersion(args.output))


if __name__ == "__main__":
    main()
