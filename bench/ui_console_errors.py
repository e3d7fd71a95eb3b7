"""Console errors of the web UI over its main pages, for the current static files and for those of
an older commit (same server, same catalog: the reference pipeline of tests/server/pipeline.py).

    .venv/bin/python bench/ui_console_errors.py [--before 84c3cbf]

``--before`` serves ``src/headwater/server/static`` as of that commit (``git archive``) with the
Content-Security-Policy of that time (``base-uri 'none'``), then the current files; headless
Chromium (Playwright, /usr/bin/chromium) visits each page at 1400x900 and counts console errors
and uncaught exceptions. Not part of the test suite: tests/server/test_browser.py is the guard.
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAGES = ["#/", "#/d/reference/users_split", "#/runs", "#/lineage/reference/users_clean/1",
         "#/lineage/reference/sms_spam_corpus/1?impact=1"] + [
    f"#/v/reference/users_split/1?tab={t}" for t in ("overview", "files", "rows", "diff",
                                                       "reports")]


def count(cat: object, static: Path | None, csp: str | None) -> list[tuple[str, int]]:
    import uvicorn
    from playwright.sync_api import sync_playwright

    import headwater.server.routes.ui as ui
    from headwater.server.app import create_app

    saved = ui.STATIC, dict(ui.SECURITY_HEADERS)
    if static is not None:
        ui.STATIC = static
        ui._shell.cache_clear()
    if csp is not None:
        ui.SECURITY_HEADERS["Content-Security-Policy"] = csp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(cat), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    out = []
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                   args=["--headless", "--no-sandbox", "--disable-gpu"])
            for p in PAGES:
                page = b.new_page(viewport={"width": 1400, "height": 900})
                errs: list[str] = []
                page.on("console", lambda m, e=errs: e.append(m.text) if m.type == "error"
                        else None)
                page.on("pageerror", lambda x, e=errs: e.append(str(x)))
                page.goto(f"http://127.0.0.1:{port}/{p}")
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(300)
                out.append((p, len(errs)))
                page.close()
            b.close()
    finally:
        server.should_exit = True
        ui.STATIC = saved[0]
        ui.SECURITY_HEADERS.clear()
        ui.SECURITY_HEADERS.update(saved[1])
        ui._shell.cache_clear()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="84c3cbf", help="commit of the older static files")
    args = ap.parse_args()
    from headwater import Catalog
    from headwater.lineage.base import NullLineage
    from tests.server.pipeline import build_reference

    tmp = Path(tempfile.mkdtemp(prefix="hw-ui-errors-"))
    cat = Catalog.open(f"sqlite:///{tmp / 'catalog.db'}", store_url=str(tmp / "store"),
                       lineage=NullLineage())
    build_reference(cat, n_users=120)
    blob = subprocess.run(["git", "-C", str(REPO), "archive", args.before,
                           "src/headwater/server/static"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tmp / "old", filter="data")
    import headwater.server.routes.ui as ui

    old_csp = ui.SECURITY_HEADERS["Content-Security-Policy"].replace("base-uri 'self'",
                                                                     "base-uri 'none'")
    before = count(cat, tmp / "old" / "src/headwater/server/static", old_csp)
    after = count(cat, None, None)
    for (page, a), (_, b) in zip(before, after, strict=True):
        print(f"{a:4d} {b:4d}  {page}")
    print(f"console errors over {len(PAGES)} pages: {args.before} {sum(n for _, n in before)}, "
          f"now {sum(n for _, n in after)}")
    cat.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
