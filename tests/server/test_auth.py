"""Tokens: writes need a write token, read tokens only read, read-only mode refuses writes, and
with no token at all the server listens on loopback only and says so."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from headwater import Catalog
from headwater.errors import InvalidArgument
from headwater.server.app import create_app
from headwater.server.auth import AccessPolicy
from headwater.server.cli import decide_host
from tests.server.conftest import READ, WRITE, auth

API = "/api/v1"
ALIAS = f"{API}/datasets/t/users/aliases/production"


def test_tokens_guard_reads_and_writes(secured: TestClient) -> None:
    assert secured.get(f"{API}/datasets").status_code == 401
    assert secured.get(f"{API}/datasets", headers=auth("not-a-known-token-x")).status_code == 401
    assert secured.get(f"{API}/datasets", headers=auth(READ)).status_code == 200
    assert secured.get(f"{API}/datasets", headers=auth(WRITE)).status_code == 200
    assert secured.put(ALIAS, json={"version": "2"}).status_code == 401
    denied = secured.put(ALIAS, json={"version": "2"}, headers=auth(READ))
    assert denied.status_code == 403 and "read-only" in denied.json()["detail"]
    assert secured.post(f"{API}/lineage", json={}, headers=auth(READ)).status_code == 403
    assert secured.delete(ALIAS, headers=auth(READ)).status_code == 403
    assert secured.put(ALIAS, json={"version": "2"}, headers=auth(WRITE)).status_code == 200
    assert secured.delete(ALIAS, headers=auth(WRITE)).status_code == 200
    # the UI shell and its static files hold no data: always served
    assert secured.get("/").status_code == 200
    assert secured.get("/static/app.js").status_code == 200


def test_public_read(small: Catalog) -> None:
    policy = AccessPolicy.build(write_tokens=[WRITE], public_read=True)
    with TestClient(create_app(small, policy=policy), base_url="http://localhost") as c:
        assert c.get(f"{API}/datasets").status_code == 200
        assert c.put(ALIAS, json={"version": "2"}).status_code == 401


def test_read_only_app_refuses_every_write(small: Catalog) -> None:
    with TestClient(create_app(small, read_only=True), base_url="http://localhost") as c:
        assert c.get(f"{API}/datasets").status_code == 200
        for r in (c.put(ALIAS, json={"version": "2"}), c.delete(ALIAS),
                  c.post(f"{API}/lineage", json={})):
            assert r.status_code == 403 and "read-only" in r.json()["detail"]
        assert 'content="true"' in c.get("/").text
    assert small.get("t/users@production").number == 1


def test_token_configuration() -> None:
    policy = AccessPolicy.from_env({"HEADWATER_SERVER_TOKENS": f"write:{WRITE}, read:{READ}"})
    assert len(policy.write_digests) == 1 and len(policy.read_digests) == 1 and not policy.open
    assert AccessPolicy.from_env({"HEADWATER_SERVER_TOKENS": WRITE}).write_digests
    assert AccessPolicy.from_env({}).open
    with pytest.raises(InvalidArgument, match="at least 16"):
        AccessPolicy.build(write_tokens=["short"])
    with pytest.raises(InvalidArgument, match="write:TOKEN"):
        AccessPolicy.from_env({"HEADWATER_SERVER_TOKENS": f"admin:{WRITE}"})
    assert WRITE not in repr(policy)  # only digests are kept


def test_no_token_means_loopback_only() -> None:
    assert decide_host("0.0.0.0", open_mode=True)[0] == "127.0.0.1"
    assert "no token configured" in (decide_host("0.0.0.0", open_mode=True)[1] or "")
    assert decide_host("::1", open_mode=True) == ("::1", None)
    assert decide_host("0.0.0.0", open_mode=False) == ("0.0.0.0", None)


def test_serve_says_so_at_startup(tmp_path: object) -> None:
    """The real command: no token and --host 0.0.0.0 → it binds 127.0.0.1 and says why; the
    catalog URL's password never shows."""
    code = (
        "import sys, uvicorn\n"
        "uvicorn.run = lambda app, host, port, **kw: print('BIND', host, port)\n"
        "from headwater.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    db = f"sqlite:///{tmp_path}/c.db"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--catalog", db, "serve", "--host", "0.0.0.0",
         "--port", "9"], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HEADWATER_HOME": str(tmp_path)})
    assert "BIND 127.0.0.1 9" in proc.stdout, proc.stderr
    assert "no token configured" in proc.stderr and "loopback" in proc.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code, "--catalog",
         "postgresql://bob:hunter2@127.0.0.1:1/nope", "serve"],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HEADWATER_HOME": str(tmp_path)})
    assert bad.returncode == 2 and "hunter2" not in bad.stderr + bad.stdout
    assert "bob:***@" in bad.stderr
