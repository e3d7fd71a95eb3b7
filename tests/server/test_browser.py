"""End to end in headless Chromium (Debian's, driven by Playwright) against a served catalog: the
reference pipeline (tests/server/pipeline.py), a 1,500-file folder, a scalar series and a wide
synthetic graph of 50+ nodes with long names.

Every page of the UI is visited and any console error, uncaught exception or failed request fails
the test (the page's strict CSP reports its violations as console errors). Screenshots go to
``test-output/server/``; those in ``docs/screenshots/`` come from the reference DAG run by real
Airflow (``scripts/ui-screenshots``)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater import Catalog
from headwater.lineage.base import NullLineage
from headwater.server.app import create_app
from tests.server.pipeline import build_reference

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "test-output" / "server"
WIDE_BRANCHES, WIDE_STEPS = 6, 4  # 1 source + 6 x 4 (run + version) = 49 nodes, + ingest run
SCALARS = [0.031, 0.027, 0.019, 0.012]
DASH = "\u2013"  # the pager's en dash


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _build_extras(cat: Catalog, tmp: Path) -> None:
    """A 1,500-file folder, a falling scalar across versions and a wide graph with long names."""
    folder = tmp / "many" / "images"
    folder.mkdir(parents=True)
    for i in range(1500):
        (folder / f"img_{i:05d}.txt").write_text(str(i))
    (tmp / "many" / "README.txt").write_text("a folder of 1,500 files")
    cat.log(str(tmp / "many"), name="ui/many_files", type="raw_data")
    for i, value in enumerate(SCALARS):
        (tmp / "metric.txt").write_text(str(i))
        cat.report(cat.log(str(tmp / "metric.txt"), name="ui/trained_model", type="model"),
                   "validation_loss", "scalar", value)
    (tmp / "src.txt").write_text("source")
    with cat.run("ingest_customer_interaction_events", namespace="wide") as r:
        r.log_output(str(tmp / "src.txt"), name="wide/customer_interaction_events_source",
                     type="raw_data")
    for b in range(WIDE_BRANCHES):
        prev = "wide/customer_interaction_events_source@1"
        for s in range(WIDE_STEPS):
            out = tmp / f"b{b}s{s}.txt"
            out.write_text(f"{b}/{s}")
            with cat.run(f"feature_engineering_branch_{b}_stage_{s}", namespace="wide",
                         inputs=[prev], engine={"name": "airflow", "dag_id": "wide_feature_dag",
                                                "task_id": f"branch_{b}_stage_{s}_aggregate"}) as r:
                r.log_output(str(out), name=f"wide/branch_{b}_stage_{s}_aggregated_features",
                             type="table")
            prev = r.outputs[0].ref
    # an Airflow task that launched a Beam pipeline: the pipeline run's parent is the task run
    with cat.run("launch_users_pipeline", namespace="beam",
                 engine={"name": "airflow", "dag_id": "beam_dag",
                         "task_id": "launch_users_pipeline"}) as task:
        pass
    (tmp / "beam.txt").write_text("beam")
    with cat.run("users_pipeline", namespace="beam", inputs=["reference/users_raw@1"],
                 engine={"name": "beam", "version": "2.77.0"},
                 parent={"namespace": "beam", "job": "launch_users_pipeline",
                         "run_id": task.id}) as r:
        r.log_output(str(tmp / "beam.txt"), name="beam/users_beam_clean", type="table")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    home = tmp_path_factory.mktemp("browser")
    cat = Catalog.open(f"sqlite:///{home / 'catalog.db'}", store_url=str(home / "store"),
                       lineage=NullLineage())
    build_reference(cat)
    _build_extras(cat, home)
    cat.alias("reference/users_clean@1", "production")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(cat), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)
    cat.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run scripts/ensure-system-deps")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


class Watched:
    """A page that records console errors, uncaught exceptions and failed requests."""

    def __init__(self, browser: Any, width: int, height: int = 900) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.problems: list[str] = []
        self.page.set_default_timeout(15_000)
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)

    def finish(self, shot: str, *, full_page: bool = True) -> None:
        """Save a screenshot, fail on what was recorded, close the page."""
        self.page.screenshot(path=str(OUT / shot), full_page=full_page)
        self.check()
        self.page.close()


def _labels_readable(page: Any) -> Any:
    """Per node: its label, whether the label fits its box, and its on-screen font size."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-hw="lineage-graph"] .node')]
      .map((g) => {
        const rect = g.querySelector('rect').getBoundingClientRect();
        const text = g.querySelector('text.label');
        const tb = text.getBoundingClientRect();
        const first = text.querySelector('tspan');
        const title = [...text.querySelectorAll('tspan:not(.sub)')].map((t) => t.textContent);
        return { id: g.dataset.node, text: title.join(''),
                 fits: tb.left >= rect.left - 0.5 && tb.right <= rect.right + 0.5
                       && tb.bottom <= rect.bottom + 0.5,
                 font: first.getBoundingClientRect().height, visible: rect.width > 0,
                 box: [rect.left, rect.top, rect.right, rect.bottom] };
      })""")


def _graph_box(page: Any) -> Any:
    return page.evaluate("""() => {
      const r = document.getElementById('lineage-graph').getBoundingClientRect();
      return [r.left, r.top, r.right, r.bottom]; }""")


def scale(transform: str) -> float:
    m = re.search(r"scale\(([\d.]+)\)", transform)
    assert m, transform
    return float(m.group(1))


def _no_horizontal_overflow(page: Any) -> None:
    sw, iw = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert sw <= iw, f"the page scrolls sideways: {sw} > {iw}"


@pytest.mark.parametrize("width", [1400, 1024])
def test_reference_lineage_graph_readable_and_centred(served: str, browser: Any,
                                                      width: int) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    w = Watched(browser, width, 1300)
    page = w.page
    page.goto(served + "#/lineage/reference/users_clean/latest")
    root = page.locator('[data-node="version:reference/users_clean@1"]')
    root.wait_for()
    assert "root" in (root.get_attribute("class") or "")
    nodes = _labels_readable(page)
    assert len(nodes) == 14  # 7 runs, 7 versions
    box = _graph_box(page)
    for n in nodes:
        assert "…" not in n["text"], n  # full labels, wrapped, never cut
        assert n["fits"], n
        assert n["font"] >= 10.5, n  # 13px labels at a scale of at least 0.85
        left, top, right, bottom = n["box"]
        assert left >= box[0] and right <= box[2] and top >= box[1] and bottom <= box[3], (n, box)
    texts = {n["id"]: n["text"] for n in nodes}
    assert texts["version:reference/users_clean@1"] == "reference/users_clean@1"
    runs = sorted(t for i, t in texts.items() if i.startswith("run:"))
    # run nodes are named by their Airflow task
    assert runs == sorted(["ingest_spam_corpus", "ingest_raw_users", "train_spam_model", "despam",
                           "id_merge", "clean", "split"])
    # the node asked for is in the middle third of the view
    rl, rt, rr, rb = next(n["box"] for n in nodes if n["id"] == "version:reference/users_clean@1")
    cx, cy = (rl + rr) / 2, (rt + rb) / 2
    assert box[0] + (box[2] - box[0]) / 3 <= cx <= box[2] - (box[2] - box[0]) / 3, (cx, box)
    assert box[1] + (box[3] - box[1]) / 4 <= cy <= box[3] - (box[3] - box[1]) / 4, (cy, box)
    _no_horizontal_overflow(page)
    w.finish(f"lineage-users_clean-{width}.png")


def test_lineage_click_through_and_impact(served: str, browser: Any) -> None:
    w = Watched(browser, 1400, 1300)
    page = w.page
    # 1. the lineage page of the clean dataset: its upstream reaches the spam corpus
    page.goto(served + "#/lineage/reference/users_clean/latest")
    corpus = page.locator('[data-node="version:reference/sms_spam_corpus@1"]')
    corpus.wait_for()
    assert page.locator('[data-hw="lineage-graph"] .node.run').count() >= 5
    page.screenshot(path=str(OUT / "1-lineage-users_clean.png"), full_page=True)

    # 2. click through to the spam corpus version it came from
    corpus.click()
    detail = page.locator("#node-detail")
    detail.get_by_text("reference/sms_spam_corpus@1").wait_for()
    detail.locator("a.open").click()
    page.wait_for_url("**#/v/reference/sms_spam_corpus/1**")
    heading = page.locator("h1")
    heading.get_by_text("reference/sms_spam_corpus").wait_for()
    assert "@1" in heading.inner_text()
    page.get_by_role("tab", name="schema & rows").click()
    page.locator('[data-hw="sample-rows"] tbody tr').first.wait_for()
    assert "tab=rows" in page.url
    page.screenshot(path=str(OUT / "2-version-sms_spam_corpus.png"), full_page=True)

    # 3. the impact view: everything derived from the corpus version is highlighted
    page.locator("#impact-link").click()
    panel = page.locator('[data-hw="impact"]')
    panel.wait_for()
    for derived in ("reference/spam_model", "reference/users_despammed",
                    "reference/users_merged", "reference/users_clean", "reference/users_split"):
        assert panel.locator(f'[data-impacted="{derived}"]').count() == 1, derived
    assert panel.locator('[data-impacted="reference/users_raw"]').count() == 0
    assert page.locator('[data-hw="lineage-graph"] .node.impacted').count() >= 6
    node_class = page.locator('[data-node="version:reference/users_clean@1"]').get_attribute(
        "class") or ""
    assert "impacted" in node_class
    raw = page.locator('[data-node="version:reference/users_raw@1"]')
    if raw.count():
        assert "impacted" not in (raw.get_attribute("class") or "")
    assert page.locator('[data-hw="lineage-graph"] .edge.impacted').count() >= 6
    # the impact panel fits the page: nothing sticks out on the right
    right = page.evaluate(
        "document.querySelector('[data-hw=impact]').getBoundingClientRect().right")
    assert right <= 1400
    _no_horizontal_overflow(page)
    w.finish("3-impact-sms_spam_corpus.png")


def test_wide_graph_pan_zoom_collapse_expand(served: str, browser: Any) -> None:
    w = Watched(browser, 1400)
    page = w.page
    page.goto(served + "#/lineage/wide/customer_interaction_events_source/1?depth=100")
    page.locator('[data-node="version:wide/customer_interaction_events_source@1"]').wait_for()
    nodes = _labels_readable(page)
    assert len(nodes) >= 50
    for n in nodes:
        assert "…" not in n["text"] and n["fits"], n
    texts = {n["id"]: n["text"] for n in nodes}
    assert texts["version:wide/branch_3_stage_2_aggregated_features@1"] == \
        "wide/branch_3_stage_2_aggregated_features@1"
    assert "branch_3_stage_2_aggregate" in texts.values()
    # boxes never overlap (the layout library's job)
    boxes = [n["box"] for n in nodes]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    vp = page.locator('[data-hw="lineage-graph"] g.viewport')
    before = vp.get_attribute("transform") or ""
    page.get_by_role("button", name="zoom in").click()
    zoomed = vp.get_attribute("transform") or ""
    assert scale(zoomed) > scale(before)
    # drag the background: the view pans
    gb = _graph_box(page)
    page.mouse.move(gb[0] + 5, gb[1] + 5)
    page.mouse.down()
    page.mouse.move(gb[0] + 105, gb[1] + 65, steps=4)
    page.mouse.up()
    assert vp.get_attribute("transform") != zoomed
    page.locator("#fit-button").click()
    # collapse a branch: what lies behind it disappears, and comes back
    count = page.locator('[data-hw="lineage-graph"] .node').count()
    target = "version:wide/branch_2_stage_0_aggregated_features@1"
    page.locator(f'[data-collapse="{target}"]').click()
    page.locator(f'[data-uncollapse="{target}"]').wait_for()
    assert page.locator('[data-hw="lineage-graph"] .node').count() == count - 6
    page.locator(f'[data-uncollapse="{target}"]').click()
    page.locator(f'[data-collapse="{target}"]').wait_for()
    assert page.locator('[data-hw="lineage-graph"] .node').count() == count
    page.screenshot(path=str(OUT / "7-lineage-wide.png"), full_page=True)
    # a shallow graph expands from a leaf
    page.goto(served + "#/lineage/wide/branch_0_stage_1_aggregated_features/1?depth=1")
    page.locator('[data-node="version:wide/branch_0_stage_1_aggregated_features@1"]').wait_for()
    page.wait_for_timeout(300)
    small = page.locator('[data-hw="lineage-graph"] .node').count()
    page.locator('[data-expand="version:wide/branch_0_stage_2_aggregated_features@1"]').click()
    page.locator('[data-node="version:wide/branch_0_stage_3_aggregated_features@1"]').wait_for()
    assert page.locator('[data-hw="lineage-graph"] .node').count() > small
    w.finish("7-lineage-expanded.png")


def test_every_page_without_console_errors(served: str, browser: Any) -> None:
    """Every page and every tab, at two widths: no console error, no failed request."""
    import json
    import urllib.request

    with urllib.request.urlopen(served + "api/v1/runs?limit=1") as r:
        run_id = json.load(r)["runs"][0]["id"]
    pages = {
        "datasets": "#/",
        "datasets-search": "#/?q=users",
        "dataset": "#/d/reference/users_split",
        "dataset-model": "#/d/ui/trained_model",
        "runs": "#/runs",
        "run": f"#/run/{run_id}",
        "lineage": "#/lineage/reference/users_merged/1",
        "impact": "#/lineage/reference/users_raw/1?impact=1",
        "not-found": "#/nowhere",
    }
    for tab in ("overview", "files", "rows", "columns", "diff", "reports"):
        pages[f"version-{tab}"] = f"#/v/reference/users_split/1?tab={tab}"
    for width in (1400, 1024):
        w = Watched(browser, width)
        for name, path in pages.items():
            w.page.goto(served + path)
            w.page.locator("main#app > .page > *:not(p.muted)").first.wait_for()
            w.page.wait_for_load_state("networkidle")
            w.page.screenshot(path=str(OUT / f"page-{name}-{width}.png"), full_page=True)
            _no_horizontal_overflow(w.page)
        w.check()
        w.page.close()


def test_tab_deep_links_files_paging_inputs(served: str, browser: Any) -> None:
    w = Watched(browser, 1400)
    page = w.page
    # ?tab= opens the tab, also when only the tab changes in a pasted link
    page.goto(served + "#/v/reference/users_clean/1?tab=rows")
    page.locator('[data-hw="sample-rows"] tbody tr').first.wait_for()
    assert page.locator('.tabs [data-tab="rows"]').get_attribute("aria-selected") == "true"
    page.evaluate("location.hash = '#/v/reference/users_clean/1?tab=overview'")
    # a derived version's overview lists its inputs
    page.locator('[data-input="reference/users_merged@1"]').wait_for()
    page.goto(served + "#/v/reference/users_clean/1?tab=schema%20%26%20rows")  # the old label
    page.locator('[data-hw="sample-rows"] tbody tr').first.wait_for()

    # a 1,500-file folder is paged with counts
    page.goto(served + "#/v/ui/many_files/1?tab=files")
    page.locator('[data-dir="images"]').wait_for()
    page.locator('[data-dir="images"] a').click()
    count = page.locator('[data-hw="files-pager-top"] .files-count')
    count.get_by_text(f"files 1{DASH}200 of 1500 here").wait_for()
    assert page.locator("tr[data-file]").count() == 200
    page.locator('[data-hw="files-pager-top"] .files-next').click()
    count.get_by_text(f"files 201{DASH}400 of 1500 here").wait_for()
    assert page.locator('tr[data-file="images/img_00200.txt"]').count() == 1
    assert "prefix=images%2F" in page.url and "offset=200" in page.url
    page.reload()  # the URL keeps the folder and the page
    page.locator('[data-hw="files-pager-top"] .files-count').get_by_text(
        f"files 201{DASH}400 of 1500 here").wait_for()
    w.finish("8-files-paged.png", full_page=False)


def test_column_lineage_tab_and_parent_run_link(served: str, browser: Any) -> None:
    w = Watched(browser, 1400)
    page = w.page
    # column lineage of a step's output: each column and the input column it came from
    page.goto(served + "#/v/reference/users_clean/1?tab=columns")
    table = page.locator('[data-hw="column-lineage"]')
    table.wait_for()
    assert table.locator('[data-column="email"] [data-from="reference/users_merged.email"]'
                         ).count() == 1
    page.screenshot(path=str(OUT / "10-column-lineage.png"), full_page=False)
    # task run -> pipeline run is drawn as its own kind of edge
    page.goto(served + "#/lineage/beam/users_beam_clean/1")
    page.locator('[data-hw="lineage-graph"] .node.root').wait_for()
    link = page.locator('[data-hw="lineage-graph"] .edge.run-link')
    assert link.count() == 1
    assert "kind-run_parent" in (link.get_attribute("class") or "")
    texts = {n["id"]: n["text"] for n in _labels_readable(page)}
    assert {"launch_users_pipeline", "users_pipeline"} <= set(texts.values())
    w.finish("11-lineage-parent-run.png")


def test_charts_autoscale_one_size_unit_labels_inside(served: str, browser: Any) -> None:
    w = Watched(browser, 1400)
    page = w.page
    page.goto(served + "#/v/ui/trained_model/4?tab=reports")
    chart = page.locator('[data-report="validation_loss"] .chart svg')
    chart.wait_for()
    ys = [float(c.get_attribute("cy") or 0) for c in chart.locator("circle.dot").all()]
    assert len(ys) == len(SCALARS)
    # 0.031 → 0.012 spans most of the 160 px plot, not a flat line at the bottom of 0 to 1
    assert max(ys) - min(ys) > 100, ys
    page.goto(served + "#/d/reference/users_split")
    page.get_by_text("Size per version").wait_for()
    page.get_by_text("Class balance: train").wait_for()
    size_chart = page.locator(".chart", has_text="Size per version")
    ticks = size_chart.locator("svg text").evaluate_all("els => els.map((e) => e.textContent)")
    assert any(re.search(r"\d (B|KiB|MiB)$", t) for t in ticks), ticks
    assert not any(re.search(r"\dk$", t) for t in ticks), ticks  # no 479.7k beside 468.5 KiB
    # no chart text sticks out of its SVG (axis labels not clipped)
    outside = page.evaluate("""() => [...document.querySelectorAll('.chart svg')].flatMap((svg) => {
        const r = svg.getBoundingClientRect();
        return [...svg.querySelectorAll('text')]
          .map((t) => [t.textContent, t.getBoundingClientRect()])
          .filter(([, b]) => b.left < r.left - 1 || b.right > r.right + 1
                             || b.bottom > r.bottom + 1 || b.top < r.top - 1)
          .map(([s]) => s); })""")
    assert not outside, outside
    w.finish("5-dataset-users_split.png")


def test_dataset_search_versions_and_reports(served: str, browser: Any) -> None:
    from playwright.sync_api import expect

    w = Watched(browser, 1400)
    page = w.page
    page.goto(served)
    page.locator("#dataset-search").fill("split")
    page.locator('[data-dataset="reference/users_split"]').wait_for()
    expect(page.locator("tr[data-dataset]")).to_have_count(1)
    page.locator('[data-dataset="reference/users_split"] a').first.click()
    page.locator('tr[data-version="1"]').wait_for()
    page.locator('tr[data-version="1"] a').first.click()
    page.get_by_role("tab", name="reports").click()
    page.locator('[data-report="class_balance_train"] svg').wait_for()
    w.finish("6-version-reports.png")


def test_retract_from_the_ui_flags_status_everywhere(served: str, browser: Any) -> None:
    w = Watched(browser, 1400)
    page = w.page
    page.goto(served + "#/v/reference/users_merged/1")
    page.locator("#retract-button").click()
    page.locator("#retract-reason").fill("merge threshold was wrong")
    page.locator("#retract-submit").click()
    page.locator("h1 .pill.status-retracted").wait_for()
    page.locator('[data-hw="retraction"] details').get_by_text(
        "merge threshold was wrong").wait_for()
    # the dataset list has a status column; the alias on the now stale clean version is flagged
    page.goto(served + "#/")
    page.locator('tr[data-dataset="reference/users_merged"][data-status="retracted"]').wait_for()
    page.locator('tr[data-dataset="reference/users_clean"][data-status="stale"]').wait_for()
    page.locator('tr[data-dataset="reference/users_raw"][data-status="fresh"]').wait_for()
    page.goto(served + "#/d/reference/users_clean")
    page.locator('[data-alias="production"][data-alias-status="stale"]').first.wait_for()
    # the lineage graph colours retracted and stale versions
    page.goto(served + "#/lineage/reference/users_clean/1")
    page.locator('[data-node="version:reference/users_merged@1"].status-retracted').wait_for()
    page.locator('[data-node="version:reference/users_clean@1"].status-stale').wait_for()
    assert "status-" not in (page.locator('[data-node="version:reference/users_raw@1"]')
                             .get_attribute("class") or "").replace("status-fresh", "")
    page.screenshot(path=str(OUT / "9-lineage-retracted.png"), full_page=False)
    # unretract: the history keeps both entries and the status is fresh again
    page.goto(served + "#/v/reference/users_merged/1")
    page.locator("#retract-button").get_by_text("Unretract…").click()
    page.locator("#retract-reason").fill("false alarm")
    page.locator("#retract-submit").click()
    page.locator("h1 .pill.status-fresh").wait_for()
    page.get_by_text("Retraction history (2)").wait_for()
    w.finish("12-unretracted.png")
