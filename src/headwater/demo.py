"""The README's main job on the embedded default (SQLite catalog + local-disk store).

It generates realistic raw user records, versions them, versions a second delivery (new
sign-ups, corrections, removals), derives a dataset from the latest version in a recorded run,
and shows what a user would look at: the versions, the row diff, and the lineage.

Run: ``make demo`` (or ``python -m headwater.demo``). Uses ``HEADWATER_HOME`` (default
``~/.headwater``), ``HEADWATER_CATALOG_URL`` and ``HEADWATER_STORE_URL`` like every command.
"""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.compute as pc

from headwater.api import Catalog
from headwater.catalog.db import safe_url
from headwater.cli import main as cli
from headwater.progress import for_terminal
from headwater.steps.sample import generate_users

RAW = "demo/users_raw"


def second_delivery(first: pa.Table, *, seed: int) -> pa.Table:
    """The next delivery of the same source: 50 rows withdrawn, 100 emails corrected (lower-cased)
    and 300 new sign-ups."""
    kept = first.slice(50)
    fixed = pc.if_else(pc.less(pa.array(range(kept.num_rows)), 100),
                       pc.utf8_lower(kept.column("email")), kept.column("email"))
    kept = kept.set_column(kept.schema.get_field_index("email"), "email", fixed)
    new = generate_users(n_records=300, seed=seed)
    new = new.set_column(0, "record_id", pc.binary_join_element_wise(
        "n", new.column("record_id"), ""))
    return pa.concat_tables([kept, new.cast(kept.schema)])


def city_summary(users: pa.Table) -> pa.Table:
    return users.group_by("city").aggregate([("record_id", "count")]).rename_columns(
        ["city", "signups"]).sort_by("city")


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def main() -> int:
    cat = Catalog.open(progress=for_terminal())
    print(f"catalog: {safe_url(cat.settings.catalog_url)}\nstore:   {cat.store.url}")

    section("1. version the first delivery of raw user records")
    first = generate_users(n_records=2000, seed=7)
    v1 = cat.log(first, name=RAW, type="raw_data", key=["record_id"],
                 metadata={"source": "sample generator", "seed": 7})
    print(f"{v1.ref}: {v1.row_count} rows, digest {v1.short_digest}"
          + ("" if v1.created else " (identical content: no new version)"))

    section("2. version the second delivery")
    v2 = cat.log(second_delivery(first, seed=8), name=RAW, key=["record_id"],
                 metadata={"source": "sample generator", "seed": 8})
    print(f"{v2.ref}: {v2.row_count} rows, digest {v2.short_digest}"
          + ("" if v2.created else " (identical content: no new version)"))
    again = cat.log(second_delivery(first, seed=8), name=RAW)
    print(f"logging the same delivery again: created={again.created} → still {again.ref}")

    section("3. derive a dataset from the latest version, recorded as a run")
    with cat.run("city_summary", inputs=[f"{RAW}@latest"], namespace="demo",
                 params={"group_by": "city"}, code=city_summary) as run:
        summary = city_summary(run.inputs[0].to_arrow())
        run.log_output(summary, name="demo/signups_by_city", type="table", key=["city"])
    print(f"run {run.id} → {run.outputs[0].ref} ({run.outputs[0].row_count} cities)")
    cat.alias(v2, "production")
    print(f"{RAW}@production → {cat.get(f'{RAW}@production').ref}")

    section(f"4. versions of {RAW}")
    cli(["versions", RAW], standalone_mode=False)
    section(f"5. diff {v1.ref} → {v2.ref} (rows keyed by record_id)")
    cli(["diff", v1.ref, v2.ref], standalone_mode=False)
    section("6. lineage of demo/signups_by_city, upstream")
    cli(["lineage", "demo/signups_by_city"], standalone_mode=False)
    section(f"7. lineage of {v2.ref}, downstream: what was built from it")
    cli(["lineage", v2.ref, "--down"], standalone_mode=False)
    print("\nExplore further: `.venv/bin/headwater ls`, `show`, `runs`, `get`, `verify`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
