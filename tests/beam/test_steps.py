"""The step composites against the table path, and connected components against union-find."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.display import DisplayData
from headwater_beam import (
    DEAD_LETTER,
    DEAD_LETTER_SCHEMA,
    MAPPING,
    OUTPUT,
    Clean,
    ConnectedComponents,
    DeadLetters,
    Despam,
    IdMerge,
    Split,
    WriteVersion,
)

from headwater import Catalog
from headwater.steps.clean import CleanStep
from headwater.steps.id_merge import IdMergeStep
from headwater.steps.linkage.clustering import UnionFind
from headwater.steps.split import SplitParams, SplitStep
from headwater.tables import table_fingerprint
from headwater.tables.fingerprint import same_rows
from tests.beam.conftest import FNAPI
from tests.table_rows import sorted_rows


def _components(edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    uf: UnionFind[int] = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    return sorted((x, g[0]) for g in uf.groups() for x in g)


@pytest.mark.parametrize("rounds", [0, 1, 3])
def test_connected_components_match_union_find(rounds: int) -> None:
    rng = random.Random(rounds)
    edges = {tuple(sorted(rng.sample(range(400), 2))) for _ in range(300)}
    chain = [(i, i + 1) for i in range(1000, 1150)]  # a long path: unconverged after 1 round
    star = [(2000, 2000 + i) for i in range(1, 60)] + [(2059, 2100), (2100, 2101)]
    all_edges = sorted(edges) + chain + star
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        labels = p | beam.Create(all_edges) | ConnectedComponents(rounds=rounds)
        assert_that(labels, equal_to(_components(all_edges)))


def test_split_matches_the_table_path_per_stratum(users: pa.Table) -> None:
    params = SplitParams(label_column="job_seeker", seed=3, ratios=(0.7, 0.2, 0.1))
    expected = SplitStep(params).run_table(users).output
    want = sorted(zip(expected["record_id"].to_pylist(), expected["split"].to_pylist(),
                      strict=True))
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        out = (p | beam.Create(users.to_pylist())
               | Split(params, buckets=8))  # few buckets: many records per group
        assert_that(out[OUTPUT] | beam.Map(lambda r: (r["record_id"], r["split"])),
                    equal_to(want))
        assert_that(out[DEAD_LETTER], equal_to([]), label="NoDeadLetters")


def test_clean_dead_letters_reconcile(settings: Any, users: pa.Table) -> None:
    table = CleanStep().run_table(users)
    want_reasons = Counter(r.split(" (")[0] for r in table.dead_letter["reason"].to_pylist())
    assert sum(want_reasons.values()) > 10  # the sample plants invalid rows
    p = beam.Pipeline(options=PipelineOptions(FNAPI))
    clean = p | beam.Create(users.to_pylist()) | Clean()
    # every invalid row is dead-lettered, so `_invalid_reason` is all null in the output: an
    # inferred schema would type it null (a different table); the declared schema keeps it
    _ = clean[OUTPUT] | "WriteOut" >> WriteVersion("clean", settings=settings,
                                                    schema=table.output.schema)
    _ = ({"clean": clean[DEAD_LETTER]} | DeadLetters()
         | "WriteDead" >> WriteVersion("dead", settings=settings, schema=DEAD_LETTER_SCHEMA))
    result = p.run()
    result.wait_until_finish()
    counters = {r.key.metric.name: r.committed for r in result.metrics().query()["counters"]
                if r.key.metric.namespace == "headwater.clean"}
    with Catalog.open(settings=settings) as cat:
        good, dead = cat.get("clean@1"), cat.get("dead@1")
        dead_rows = dead.to_arrow()
    assert same_rows(good.table_fingerprint or "", table_fingerprint(table.output))
    with Catalog.open(settings=settings) as cat:
        assert sorted_rows(cat.read_table(cat.get("clean@1"))) == sorted_rows(table.output)
    assert counters["records_in"] == users.num_rows
    assert counters["records_in"] == counters["records_out"] + counters["dead_lettered"]
    assert dead.row_count == counters["dead_lettered"] == table.dead_letter.num_rows
    got = Counter(r.split(" (")[0] for r in dead_rows["reason"].to_pylist())
    assert got == want_reasons
    assert set(dead_rows["step"].to_pylist()) == {"clean"}
    assert all(dead_rows["record_id"].to_pylist())


def test_id_merge_matches_the_table_path(users: pa.Table) -> None:
    table = IdMergeStep().run_table(users)
    want = sorted(zip(table.output["record_id"].to_pylist(), table.output["user_id"].to_pylist(),
                      strict=True))
    assert len(set(u for _, u in want)) < len(want)  # there are merges to get right
    rows = users.to_pylist()
    # a duplicate id (its canonical JSON sorts after the original's, so the original stays)
    # and a missing one
    dup = {**rows[0], "name": "~duplicate"}
    nobody = {**rows[1], "record_id": None}
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        out = p | beam.Create([*rows, dup, nobody]) | IdMerge(rounds=2)
        assert_that(out[OUTPUT] | beam.Map(lambda r: (r["record_id"], r["user_id"])),
                    equal_to(want))
        assert_that(out[MAPPING] | "M" >> beam.Map(lambda r: (r["record_id"], r["user_id"])),
                    equal_to(want), label="Mapping")
        assert_that(out[DEAD_LETTER] | "D" >> beam.Map(lambda r: r["reason"]),
                    equal_to(["duplicate_record_id", "missing_record_id"]), label="Dead")


def test_every_step_transform_has_display_data(spam_model: Any) -> None:
    for transform in (Clean(), Split(), IdMerge(), Despam(model=spam_model),
                      ConnectedComponents(), DeadLetters()):
        items = {i.key for i in DisplayData.create_from(transform).items}
        assert items, type(transform).__name__
        if not isinstance(transform, (ConnectedComponents, DeadLetters)):
            assert {"step", "params", "code"} <= items


def test_id_merge_keeps_previous_ids_like_the_table_path(users: pa.Table) -> None:
    """Version 2 of the users, merged with version 1's mapping: the same IDs as the table path,
    and people already known keep their IDs."""
    from headwater.steps.sample import generate_users

    first = IdMergeStep().run_table(users)
    mapping = first.side_outputs["mapping"]
    extra = generate_users(n_records=60, seed=99)
    extra = extra.set_column(0, "record_id", pa.array(
        [f"x{r}" for r in extra["record_id"].to_pylist()]))
    # the new delivery: the first 20 records gone, new sign-ups (some of the same people) added
    second = pa.concat_tables([users.slice(20), extra.cast(users.schema)])
    table = IdMergeStep(previous=mapping).run_table(second)
    want = sorted(zip(table.output["record_id"].to_pylist(), table.output["user_id"].to_pylist(),
                      strict=True))
    old = dict(zip(mapping["record_id"].to_pylist(), mapping["user_id"].to_pylist(),
                   strict=True))
    kept = [rid for rid, uid in want if old.get(rid) == uid]
    assert len(kept) == len([rid for rid, _ in want if rid in old]) > 0
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        previous = p | "Previous" >> beam.Create(mapping.to_pylist())
        out = (p | beam.Create(second.to_pylist())
               | IdMerge(rounds=2, previous=previous))
        assert_that(out[OUTPUT] | beam.Map(lambda r: (r["record_id"], r["user_id"])),
                    equal_to(want))
