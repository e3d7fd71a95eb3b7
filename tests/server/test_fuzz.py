"""Property-based fuzz of the whole API from its own OpenAPI spec (schemathesis + Hypothesis):
whatever a client sends, the answer is never a 5xx and the server stays up. Bounded (a fixed
number of examples per operation, derandomized) so it runs in well under a minute.

Driven through schemathesis's strategies rather than its pytest plugin (``from_fixture``), which
does not work with pytest 9.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from headwater import Catalog
from headwater.lineage.base import NullLineage
from headwater.server.app import create_app

pytestmark = pytest.mark.slow
EXAMPLES = 30


def _app(home: Path) -> tuple[object, dict[str, str]]:
    cat = Catalog.open(f"sqlite:///{home / 'catalog.db'}", store_url=str(home / "store"),
                       lineage=NullLineage())
    v1 = cat.log(pa.table({"id": [1, 2, 3], "x": ["a", None, "c"]}), name="t/users", key=["id"])
    cat.log(pa.table({"id": [1, 2, 4], "x": ["a", "b", "d"]}), name="t/users")
    with cat.run("derive", inputs=["t/users@2"], namespace="t") as run:
        run.log_output(pa.table({"n": [3]}), name="t/summary")
    cat.alias(v1, "production")
    report = cat.report("t/users@1", "balance", "histogram", counts={"a": 1, "b": 2})
    real = {"namespace": "t", "name": "users", "selector": "1", "alias": "production",
            "run_id": run.id, "report_id": str(report.id), "report": "balance",
            "path": next(cat.get("t/users@1").files())}
    return create_app(cat, allowed_hosts=["*"]), real  # any Host: the fuzzer's own


def test_api_never_answers_5xx(tmp_path: Path) -> None:
    app, real = _app(tmp_path)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            # as generated, then on real data (so the query and body fuzz reaches real rows)
            for path in (dict(case.path_parameters or {}),
                         {k: real.get(k, v) for k, v in (case.path_parameters or {}).items()}):
                case.path_parameters = path
                response = case.call()
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} query={case.query} "
                                    f"body={str(case.body)[:300]} → {response.status_code}: "
                                    f"{response.text[:300]}")

        check()
    assert not failures, "\n".join(failures[:10])
