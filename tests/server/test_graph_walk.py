"""The recursive-CTE lineage walk gives exactly the graph of the hop-by-hop (BFS) walk, on SQLite
and PostgreSQL, for random DAGs of runs, versions and explicit parents, at every depth."""

from __future__ import annotations

import random

import pyarrow as pa
from sqlalchemy import select

from headwater import Catalog
from headwater.catalog.graph import walk, walk_bfs
from headwater.catalog.models import Version


def _random_dag(cat: Catalog, seed: int) -> list[str]:
    rng = random.Random(seed)
    refs = [cat.log(pa.table({"x": [i]}), name=f"g/src{i}").ref for i in range(3)]
    for step in range(12):
        inputs = rng.sample(refs, k=min(len(refs), rng.randint(1, 3)))
        with cat.run(f"step{step}", inputs=inputs, namespace="g") as run:
            for out in range(rng.randint(1, 2)):
                parents = rng.sample(refs, k=1) if rng.random() < 0.3 else []
                run.log_output(pa.table({"x": [step, out, seed]}),
                               name=f"g/d{rng.randint(0, 5)}", parents=parents)
        refs += [v.ref for v in run.outputs if v.created]
    return refs


def test_cte_walk_equals_bfs_walk(catalog: Catalog) -> None:
    refs = _random_dag(catalog, seed=3)
    with catalog.session() as s:
        ids = s.scalars(select(Version.id)).all()
        assert len(ids) == len(set(refs))
        for vid in ids:
            for direction in ("up", "down", "both"):
                for depth in (0, 1, 2, None):
                    a = walk(s, vid, direction=direction, depth=depth).to_dict()
                    b = walk_bfs(s, vid, direction=direction, depth=depth).to_dict()
                    assert a == b, (vid, direction, depth)
