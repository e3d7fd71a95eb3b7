"""docker/: what CI can check without pulling or building images (these machines cannot).

* the compose file parses and references only services, volumes and files that exist; every
  long-running service has a health check; secrets come from the environment;
* the image's entrypoint handles every role compose asks for, and what each role runs exists;
* the image's Python dependencies resolve from the project's constraints, every one of them
  pinned there (``pip install --dry-run``; needs PyPI, skipped with the reason without it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
#: the extras docker/Dockerfile installs
IMAGE_EXTRAS = "s3,postgres,server,airflow,celery,beam"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _roles() -> set[str]:
    """The case labels of docker/entrypoint.sh."""
    labels: set[str] = set()
    for m in re.finditer(r"^\s{4}([a-z|*-]+)\)\s*$", ENTRYPOINT.read_text(), re.M):
        labels.update(x for x in m.group(1).split("|") if x != "*")
    return labels


def _depends(service: dict[str, Any]) -> list[str]:
    deps = service.get("depends_on") or []
    return list(deps) if isinstance(deps, dict | list) else []


def test_compose_references_only_defined_services_volumes_and_files(
    compose: dict[str, Any],
) -> None:
    services: dict[str, Any] = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    used_volumes: set[str] = set()
    expected = {"postgres", "minio", "redis", "airflow-api-server", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer", "airflow-celery-worker",
                "headwater-server", "beam-job-service", "beam-worker-pool"}
    assert expected <= set(services)
    for name, svc in services.items():
        for dep in _depends(svc):
            assert dep in services, f"{name} depends on undefined service {dep!r}"
        mode = svc.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.split(":", 1)[1] in services, f"{name}: network_mode {mode!r}"
        for vf in svc.get("volumes_from") or []:
            assert vf.split(":")[0] in services, f"{name}: volumes_from {vf!r}"
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), f"{name}: bind mount {source}"
            else:
                assert source in declared_volumes, f"{name}: undeclared volume {source!r}"
                used_volumes.add(source)
        if "build" in svc:
            context = (DOCKER / svc["build"]["context"]).resolve()
            assert context == REPO
            assert (context / svc["build"]["dockerfile"]).is_file()
        # long-running services say when they are healthy; one-shot jobs and profiles do not
        if svc.get("restart", "no") != "no" and not svc.get("profiles"):
            assert "healthcheck" in svc, f"{name} has no health check"
    assert used_volumes == declared_volumes, "declared but unused volumes"
    assert {"postgres-data", "minio-data", "redis-data"} <= declared_volumes


def test_compose_takes_every_secret_from_the_environment(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    example = {line.split("=", 1)[0] for line in
               (DOCKER / "example.env").read_text().splitlines()
               if line and not line.startswith("#")}
    assert required <= example, f"not in docker/example.env: {sorted(required - example)}"
    assert {"POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "MINIO_ROOT_PASSWORD",
            "HEADWATER_SERVER_TOKENS", "AIRFLOW_ADMIN_PASSWORD"} <= required
    # the store's keys reach s3fs through the environment, never through store options
    # (those travel in Beam pipeline options)
    env = compose["services"]["headwater-server"]["environment"]
    assert "secret" not in env["HEADWATER_STORE_OPTIONS"]
    assert env["AWS_SECRET_ACCESS_KEY"].startswith("${MINIO_ROOT_PASSWORD")
    # no literal secret in the compose file itself: each is a ${VARIABLE}
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        for key, value in (env.items() if isinstance(env, dict) else ()):
            if re.search(r"(PASSWORD|SECRET|TOKENS|SECRET_ACCESS_KEY)$", key):
                assert str(value).startswith("${"), f"{name}: {key} is a literal"


def test_airflow_runs_celery_and_binds_no_log_server(compose: dict[str, Any]) -> None:
    worker = compose["services"]["airflow-celery-worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["environment"]["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    text = ENTRYPOINT.read_text()
    for role in ("scheduler", "triggerer", "celery worker"):
        assert re.search(rf"airflow {role} --skip-serve-logs", text), role


def test_entrypoint_handles_every_role_and_what_it_runs_exists(compose: dict[str, Any]) -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)]).returncode == 0
    roles = _roles()
    for name, svc in compose["services"].items():
        if svc.get("image", "").startswith("headwater:"):
            command = svc.get("command") or ["help"]
            assert command[0] in roles, f"{name}: role {command[0]!r} not in entrypoint.sh"
    # the programs and modules the roles start are installed by the image's extras
    for module in re.findall(r"python -m ([\w.]+)", ENTRYPOINT.read_text()):
        assert importlib.util.find_spec(module) is not None, module
    bindir = Path(sys.executable).parent
    for program in ("airflow", "headwater", "celery"):
        assert (bindir / program).exists() or shutil.which(program), program
    # Dockerfile: every COPY source exists, the entrypoint is the image's
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(\S+) ", dockerfile, re.M):
        assert (REPO / src).exists(), f"Dockerfile copies missing {src}"
    assert "docker/entrypoint.sh" in dockerfile and f"[{IMAGE_EXTRAS}]" in dockerfile
    # the reference DAG is in the image's DAG folder
    assert (REPO / "dags" / "reference_pipeline.py").is_file()


def _index_reachable() -> str | None:
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return None if resp.status == 200 else f"{url} answered HTTP {resp.status}"
    except OSError as exc:
        return f"{url} unreachable ({exc})"


@pytest.mark.slow
def test_image_dependencies_resolve_from_the_constraints(tmp_path: Path) -> None:
    """The image installs ``.[extras]`` with ``-c requirements/constraints.txt``: it resolves,
    and every package it resolves to is pinned there (a rebuilt image gets the same versions)."""
    reason = _index_reachable()
    if reason:
        pytest.skip(f"package index needed to resolve the image's dependencies: {reason}")
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "-c", str(REPO / "requirements" / "constraints.txt"),
         f"{REPO}[{IMAGE_EXTRAS}]"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    pins: dict[str, str] = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    resolved = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    unpinned = sorted(set(resolved) - set(pins) - {"headwater"})
    assert not unpinned, f"resolved but not pinned in requirements/constraints.txt: {unpinned}"
    for name in ("apache-airflow", "apache-airflow-providers-celery", "celery", "kombu", "redis",
                 "apache-beam", "psycopg", "s3fs"):
        assert resolved.get(name) == pins[name], name
