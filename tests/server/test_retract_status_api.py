"""Retract / unretract through the REST API (writes need the write token, like alias moves),
the history, aliases flagged when they point at a retracted version, and the status field."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.server.conftest import READ, WRITE, auth

API = "/api/v1"
V1 = f"{API}/versions/t/users/1"
V2 = f"{API}/versions/t/users/2"


def test_retract_needs_write_token_and_keeps_history(secured: TestClient) -> None:
    body = {"reason": "mislabelled rows", "actor": "ana"}
    assert secured.post(f"{V1}/retract", json=body).status_code == 401
    assert secured.post(f"{V1}/retract", json=body, headers=auth(READ)).status_code == 403
    r = secured.post(f"{V1}/retract", json=body, headers=auth(WRITE))
    assert r.status_code == 200 and r.json()["retracted"] is True
    again = secured.post(f"{V1}/retract", json=body, headers=auth(WRITE))
    assert again.status_code == 400 and "already retracted" in again.text
    empty = secured.post(f"{V1}/retract", json={"reason": ""}, headers=auth(WRITE))
    assert empty.status_code == 422
    un = secured.post(f"{V1}/unretract", json={"reason": "fixed upstream"}, headers=auth(WRITE))
    assert un.status_code == 200
    hist = secured.get(f"{V1}/retractions", headers=auth(READ)).json()
    assert hist["retracted"] is False
    assert [(h["action"], h["actor"], h["reason"]) for h in hist["history"]] == [
        ("retract", "ana", "mislabelled rows"),
        ("unretract", "headwater-server", "fixed upstream"),
    ]


def test_alias_flag_and_status_field(client: TestClient) -> None:
    assert client.post(f"{V2}/retract", json={"reason": "bad"}).status_code == 200
    # production points at @1: not flagged; move it to the retracted @2 and it is
    users = client.get(f"{API}/datasets/t/users/aliases").json()
    assert users["retracted_aliases"] == []
    client.put(f"{API}/datasets/t/users/aliases/production", json={"version": "2"})
    users = client.get(f"{API}/datasets/t/users/aliases").json()
    assert users["retracted_aliases"] == ["production"]
    listed = client.get(f"{API}/datasets").json()["datasets"]
    assert next(d for d in listed if d["full_name"] == "t/users")["retracted_aliases"] == [
        "production"]
    v2 = client.get(V2).json()
    assert v2["retracted"] is True and v2["status"]["status"] == "retracted"
    assert v2["status"]["aliases"] == ["production"]
    summary = client.get(f"{API}/versions/t/summary/1").json()["status"]
    assert summary == {"ref": "t/summary@1", "status": "stale", "aliases": [],
                       "causes": [{"cause": "input_retracted", "input": "t/users@2"}]}
    status = client.get(f"{API}/status", params={"namespace": "t"}).json()["versions"]
    assert {s["ref"]: s["status"] for s in status} == {"t/summary@1": "stale",
                                                       "t/users@2": "retracted"}
