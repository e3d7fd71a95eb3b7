"""The web UI's files are vendored in the package and served by the same process."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fastapi.testclient import TestClient

import headwater.server

STATIC = Path(headwater.server.__file__).parent / "static"
#: sha256 of package/dist/dagre.min.js in the npm tarball of @dagrejs/dagre 3.1.3
DAGRE_SHA256 = "54a503e346f93ca0bb10abe7999587e037262935687aca45eb4e4b0f64bbb578"


def _own_files() -> list[Path]:
    return [p for p in STATIC.rglob("*") if p.is_file() and "vendor" not in p.parts]


def test_ui_shell_and_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'content="false"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(static/[^"]+)"', page.text)
    assert "static/vendor/dagre/dagre.min.js" in assets
    for asset in assets:
        r = client.get("/" + asset)
        assert r.status_code == 200 and r.content, asset


def test_csp_stays_strict_and_allows_the_pages_own_base(client: TestClient) -> None:
    """The shell's <base href> (written for a mount prefix) was blocked by ``base-uri 'none'``:
    every page load logged a CSP error. 'self' allows it; nothing inline is allowed."""
    csp = client.get("/").headers["content-security-policy"]
    assert "base-uri 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "style-src 'self';" in csp


def test_no_inline_styles_or_scripts() -> None:
    """Inline style attributes and inline <script>/<style> blocks are refused by the CSP."""
    shell = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", shell)
    assert "<style" not in shell and "style=" not in shell
    for path in _own_files():
        if path.suffix == ".js":
            text = path.read_text()
            assert not re.search(r"""\bstyle\s*:\s*["'`]""", text), path
            assert 'setAttribute("style"' not in text and ".style." not in text, path


def test_no_cdn_and_no_html_injection() -> None:
    for path in _own_files():
        text = path.read_text()
        assert not re.search(r"(?:src|href)=[\"']https?://", text), path
        assert "innerHTML" not in text.replace("never innerHTML", ""), path
    vendored = (STATIC / "vendor" / "dagre" / "dagre.min.js").read_text()
    assert "innerHTML" not in vendored and not re.search(r"https?://", vendored)


def test_vendored_dagre_is_the_npm_file() -> None:
    data = (STATIC / "vendor" / "dagre" / "dagre.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == DAGRE_SHA256
    licence = (STATIC / "vendor" / "dagre" / "LICENSE").read_text()
    assert "Permission is hereby granted" in licence
    assert (STATIC / "vendor" / "dagre" / "LICENSE.graphlib").exists()
