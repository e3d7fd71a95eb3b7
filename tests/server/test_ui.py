"""The web UI's files are vendored in the package and served by the same process."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

import headwater.server

STATIC = Path(headwater.server.__file__).parent / "static"


def test_ui_shell_and_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'content="false"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
        r = client.get("/" + asset)
        assert r.status_code == 200 and r.content, asset


def test_no_cdn_and_no_html_injection() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"(?:src|href)=[\"']https?://", text), path
        assert "innerHTML" not in text.replace("never innerHTML", ""), path
