"""A run that opts in to a retracted input says so in its OpenLineage events: the input dataset
carries the ``headwater_retraction`` facet (events validated by the ``open_catalog`` fixture)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from headwater import Catalog
from headwater.lineage.facets import stored_event
from headwater.lineage.outbox import OutboxRecorder
from tests.lineage.support import MemoryTransport
from tests.lineage.test_outbox import rows

Opener = Callable[..., tuple[Catalog, OutboxRecorder]]


def test_retracted_input_carries_the_retraction_facet(db_url: str, open_catalog: Opener) -> None:
    cat, _ = open_catalog(db_url, MemoryTransport(), deliver=False)
    bad = cat.log(pa.table({"a": [1]}), name="corpus")
    good = cat.log(pa.table({"a": [2]}), name="other")
    cat.retract(bad.ref, reason="mislabelled", actor="ana")
    with cat.run("clean", inputs=[bad.ref, good.ref], allow_retracted=True) as run:
        run.log_output(pa.table({"a": [3]}), name="clean")
    events = [stored_event(r.event) for r in rows(cat) if r.run_id == run.id]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for e in events:
        facets = {i["facets"]["symlinks"]["identifiers"][0]["name"]: i["facets"]
                  for i in e["inputs"]}
        assert facets["default/corpus"]["headwater_retraction"]["retracted"] is True
        assert "HeadwaterRetractionDatasetFacet" in (
            facets["default/corpus"]["headwater_retraction"]["_schemaURL"])
        assert "headwater_retraction" not in facets["default/other"]
        assert all("headwater_retraction" not in o["facets"] for o in e["outputs"])
