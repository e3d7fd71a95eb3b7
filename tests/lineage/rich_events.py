"""Run events exercising every facet: the input of tests/lineage/data/events_before_records.json,
which holds what the builder of commit 487f69e (events built inside the commit) made of them."""
from __future__ import annotations

from datetime import UTC, datetime

from headwater.lineage.base import RunEvent
from headwater.version import VersionInfo

T0 = datetime(2026, 11, 30, 12, 34, 56, 789012, tzinfo=UTC)


def version(store_url: str, ns: str, name: str, number: int, *, created: bool = True,
            schema: bool = True, nulls: bool = True) -> VersionInfo:
    return VersionInfo(
        namespace=ns, dataset=name, type="table", number=number,
        digest=f"{number:02d}" + "ab" * 31, store_url=store_url, kind="table",
        size=1234 * number, file_count=3, row_count=10 * number,
        schema=[{"name": "id", "type": "int64"}, {"name": "text", "type": None}] if schema
        else None,
        table_fingerprint="fp" + str(number) if schema else None,
        stats={"null_counts": {"text": 2, "id": 0, "odd": "x"}} if nulls else {},
        metadata={}, created_at=T0, run_id=None, created=created,
    )


def rich_events() -> list[RunEvent]:
    common = dict(
        run_id="0190c1c2-7e4a-7b1c-9d3e-3f2a1b0c9d8e", job_namespace="prod", job_name="despam",
        params={"threshold": 0.5, "nested": {"k": [1, 2]}}, code_fingerprint="code-1",
        cache_key="ck-1",
        engine={"name": "airflow", "version": "3.3.2"},
        parent={"namespace": "airflow-test", "job": "etl.despam",
                "run_id": "0190c1c2-7e4a-7b1c-9d3e-000000000002",
                "root": {"namespace": "airflow-test", "job": "etl",
                         "run_id": "0190c1c2-7e4a-7b1c-9d3e-000000000001"}},
        nominal_time=datetime(2026, 11, 1, 3, 0),  # naive: taken as UTC
        job_type="task",
        source_location={"url": "https://git.x/r.git", "path": "dags/x.py", "branch": "main"},
        inputs=(version("/srv/store", "prod", "users", 1),
                version("s3://bucket/prefix", "ext", "events", 7, schema=False, nulls=False)),
    )
    return [
        RunEvent(state="START", event_time=T0, **common),
        RunEvent(state="COMPLETE", event_time=T0.replace(second=57),
                 outputs=(version("/srv/store", "prod", "users_clean", 2, created=False),
                          version("gs://b/p", "prod", "other", 3, nulls=False)), **common),
        RunEvent(state="FAIL", event_time=T0.replace(second=58),
                 error="Traceback (most recent call last):\n  x\nValueError: boom\n",
                 **{**common, "parent": {"namespace": "n", "job": "j", "run_id": "not-a-uuid"},
                    "engine": {}, "source_location": "/home/me/step.py", "job_type": None,
                    "nominal_time": None}),
    ]
