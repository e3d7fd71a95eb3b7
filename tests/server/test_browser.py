"""End to end in headless Chromium (Debian's, driven by Playwright): the lineage page of the clean
dataset after the reference pipeline ran, click through to the spam corpus version it came from,
then the impact view. Screenshots go to ``test-output/``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater import Catalog
from headwater.lineage.base import NullLineage
from headwater.server.app import create_app
from tests.server.pipeline import build_reference

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
OUT = Path(__file__).resolve().parents[2] / "test-output" / "server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    home = tmp_path_factory.mktemp("browser")
    cat = Catalog.open(f"sqlite:///{home / 'catalog.db'}", store_url=str(home / "store"),
                       lineage=NullLineage())
    build_reference(cat)
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
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run scripts/ensure-system-deps")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def test_lineage_click_through_and_impact(served: str, browser: object) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 950})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)

    # 1. the lineage page of the clean dataset: its upstream reaches the spam corpus
    page.goto(served + "#/lineage/reference/users_clean/latest")
    clean = page.locator('[data-node="version:reference/users_clean@1"]')
    clean.wait_for()
    assert "root" in (clean.get_attribute("class") or "")
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
    page.screenshot(path=str(OUT / "2-version-sms_spam_corpus.png"), full_page=True)

    # 3. the impact view: everything derived from the corpus version is highlighted
    page.locator("#impact-link").click()
    panel = page.locator('[data-hw="impact"]')
    panel.wait_for()
    for derived in ("reference/spam_model", "reference/users_despammed",
                    "reference/users_merged", "reference/users_clean", "reference/users_split"):
        assert panel.locator(f'[data-impacted="{derived}"]').count() == 1, derived
    assert panel.locator('[data-impacted="reference/users_raw"]').count() == 0
    impacted = page.locator('[data-hw="lineage-graph"] .node.impacted')
    assert impacted.count() >= 6
    node_class = page.locator('[data-node="version:reference/users_clean@1"]').get_attribute(
        "class") or ""
    assert "impacted" in node_class
    raw_class = page.locator('[data-node="version:reference/users_raw@1"]')
    if raw_class.count():
        assert "impacted" not in (raw_class.get_attribute("class") or "")
    assert "airflow tasks clear headwater_reference_pipeline" in panel.inner_text()
    page.screenshot(path=str(OUT / "3-impact-sms_spam_corpus.png"), full_page=True)
    assert not errors, errors
    page.close()


def test_dataset_pages_show_versions_charts_and_reports(served: str, browser: object) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    page.goto(served)
    search = page.locator("#dataset-search")
    search.fill("split")
    page.locator('[data-dataset="reference/users_split"]').wait_for()
    expect(page.locator("tr[data-dataset]")).to_have_count(1)
    page.screenshot(path=str(OUT / "4-datasets-search.png"), full_page=True)
    page.locator('[data-dataset="reference/users_split"] a').first.click()
    page.locator('tr[data-version="1"]').wait_for()
    page.get_by_text("Rows per version").wait_for()
    page.get_by_text("Class balance: train").wait_for()
    page.screenshot(path=str(OUT / "5-dataset-users_split.png"), full_page=True)
    page.locator('tr[data-version="1"] a').first.click()
    page.get_by_role("tab", name="reports").click()
    page.locator('[data-report="class_balance_train"] svg').wait_for()
    page.screenshot(path=str(OUT / "6-version-reports.png"), full_page=True)
    assert not errors, errors
    page.close()
