"""Test helpers for lineage: an in-memory transport, a transport that always fails, a real
HTTP receiver on 127.0.0.1, and an offline validator for the OpenLineage JSON Schemas."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
from openlineage.client.serde import Serde
from openlineage.client.transport import Transport
from referencing import Registry, Resource

from headwater.lineage.provenance import RETRACTION_SCHEMA_RESOURCE, SCHEMA_ID, load_schema

SPEC_DIR = Path(
    os.environ.get("HEADWATER_OL_SPEC_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "openlineage-spec"
)

#: openlineage-python 1.54 writes DataQualityMetricsDatasetFacet 1-0-1 (adds an optional
#: ``captureDate``); the vendored spec snapshot has 1-0-0 only. We validate 1-0-1 payloads
#: against the 1-0-0 schema (the difference is one optional property; facets allow additional
#: properties) and say so here rather than let the lookup miss.
SCHEMA_ALIASES = {
    "https://openlineage.io/spec/facets/1-0-1/DataQualityMetricsDatasetFacet.json": (
        "https://openlineage.io/spec/facets/1-0-0/DataQualityMetricsDatasetFacet.json"
    ),
}


class MemoryTransport(Transport):
    """Keeps every event it is given, as the JSON dict the wire would carry."""

    kind = "memory"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, event: Any) -> None:
        with self._lock:
            self.events.append(json.loads(Serde.to_json(event)))


class BrokenTransport(Transport):
    """Every send fails, like a backend that refuses connections."""

    kind = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: Any) -> None:
        self.calls += 1
        raise ConnectionError("lineage backend refused the connection")


class FlakyTransport(MemoryTransport):
    """Fails while ``down`` is set, then behaves like MemoryTransport."""

    kind = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def emit(self, event: Any) -> None:
        if self.down:
            raise ConnectionError("lineage backend is down")
        super().emit(event)


class OLValidator:
    """Validates run events against the vendored core schema and each facet's own schema."""

    def __init__(self, spec_dir: Path = SPEC_DIR) -> None:
        resources: list[tuple[str, Resource[Any]]] = []
        docs = [json.loads((spec_dir / "OpenLineage.json").read_text())]
        docs += [json.loads(p.read_text()) for p in sorted((spec_dir / "facets").glob("*.json"))]
        docs.append(load_schema())
        docs.append(load_schema(RETRACTION_SCHEMA_RESOURCE))
        by_id: dict[str, Any] = {}
        for doc in docs:
            by_id[doc["$id"]] = doc
            resources.append((doc["$id"], Resource.from_contents(doc)))
        for alias, target in SCHEMA_ALIASES.items():
            assert alias not in by_id, f"{alias} is vendored now: drop the alias"
            resources.append((alias, Resource.from_contents(by_id[target])))
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self.known = set(by_id) | set(SCHEMA_ALIASES)
        self.core = by_id[docs[0]["$id"]]
        self._core = jsonschema.Draft202012Validator(
            self.core,
            registry=self.registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )

    @staticmethod
    def facets_of(event: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, facet in (event.get("run", {}).get("facets") or {}).items():
            yield f"run.{key}", facet
        for key, facet in (event.get("job", {}).get("facets") or {}).items():
            yield f"job.{key}", facet
        for side in ("inputs", "outputs"):
            for i, ds in enumerate(event.get(side) or []):
                for group in ("facets", "inputFacets", "outputFacets"):
                    for key, facet in (ds.get(group) or {}).items():
                        yield f"{side}[{i}].{group}.{key}", facet

    def validate(self, event: Mapping[str, Any]) -> None:
        """Raise jsonschema.ValidationError (naming the facet) if anything does not conform."""
        self._core.validate(event)
        for where, facet in self.facets_of(event):
            url = facet["_schemaURL"]
            base = url.split("#", 1)[0]
            assert base in self.known, f"{where}: no schema for {url}"
            validator = jsonschema.Draft202012Validator(
                {"$ref": url},
                registry=self.registry,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )
            errors = sorted(validator.iter_errors(facet), key=lambda e: list(e.path))
            if errors:
                raise jsonschema.ValidationError(f"{where}: {errors[0].message}")


def custom_schema_id() -> str:
    return SCHEMA_ID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A real HTTP lineage backend on 127.0.0.1:``port`` (an OpenLineage HTTP endpoint)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.events: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                events.append(json.loads(body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
