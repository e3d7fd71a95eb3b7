"""A small client of Airflow 3's stable REST API (``/api/v2`` on the api-server).

Only what a rebuild needs: log in (``POST /auth/token`` with a user name and password, the
simple and FAB auth managers' endpoint; or a ready JWT), read a DAG run, trigger a DAG run with a
conf, poll it, and list its task instances. Standard library only (``urllib``): the ``headwater``
CLI runs outside Airflow and needs no Airflow installed to drive one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from headwater.errors import HeadwaterError, InvalidArgument

TERMINAL = ("success", "failed")


class AirflowApiError(HeadwaterError, RuntimeError):
    """The api-server refused or could not be reached (the message says which and what to do)."""


@dataclass
class AirflowApi:
    """``base_url``: the api-server (``http://host:8080``); ``username``/``password`` for
    ``POST /auth/token``, or ``token`` (a JWT) directly."""

    base_url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    timeout: float = 30.0
    _jwt: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(f"Airflow API URL {self.base_url!r} is not http(s)://host:port")
        self.base_url = self.base_url.rstrip("/")

    # -- transport ------------------------------------------------------------------------------
    def _send(self, method: str, url: str, body: Any = None,
              headers: dict[str, str] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Accept": "application/json", **({"Content-Type": "application/json"} if data else {}),
            **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            if exc.code in (401, 403):
                raise AirflowApiError(
                    f"Airflow API {method} {url}: {exc.code} (check HEADWATER_AIRFLOW_USER / "
                    f"HEADWATER_AIRFLOW_PASSWORD and the user's role): {detail}") from None
            raise AirflowApiError(f"Airflow API {method} {url}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AirflowApiError(f"Airflow api-server at {self.base_url} is not reachable "
                                  f"({reason}); is `airflow api-server` running there?") from None
        return json.loads(raw) if raw else None

    def _bearer(self) -> str:
        if self.token:
            return self.token
        if self._jwt is None:
            if not self.username or self.password is None:
                raise InvalidArgument("the Airflow API needs a user and password "
                                      "(HEADWATER_AIRFLOW_USER, HEADWATER_AIRFLOW_PASSWORD)")
            got = self._send("POST", f"{self.base_url}/auth/token",
                             {"username": self.username, "password": self.password})
            self._jwt = str(got["access_token"])
        return self._jwt

    def request(self, method: str, path: str, body: Any = None) -> Any:
        return self._send(method, f"{self.base_url}/api/v2{path}", body,
                          {"Authorization": f"Bearer {self._bearer()}"})

    # -- what a rebuild does --------------------------------------------------------------------
    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        q = urllib.parse.quote
        return dict(self.request("GET", f"/dags/{q(dag_id, safe='')}/dagRuns/{q(run_id, safe='')}"))

    def trigger(self, dag_id: str, *, conf: dict[str, Any], run_id: str | None = None,
                note: str | None = None) -> dict[str, Any]:
        """A new DAG run (no logical date: a manual run) with ``conf``."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note[:1000]
        q = urllib.parse.quote(dag_id, safe="")
        return dict(self.request("POST", f"/dags/{q}/dagRuns", body))

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        q = urllib.parse.quote
        got = self.request("GET", f"/dags/{q(dag_id, safe='')}/dagRuns/"
                                  f"{q(run_id, safe='')}/taskInstances?limit=1000")
        return {ti["task_id"]: ti["state"] for ti in got["task_instances"]}

    def wait(self, dag_id: str, run_id: str, *, timeout: float = 3600,
             poll: float = 2.0) -> str:
        """Poll the DAG run until it ends; its final state. Raises ``AirflowApiError`` when
        ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.dag_run(dag_id, run_id)["state"])
            if state in TERMINAL:
                return state
            if time.monotonic() > deadline:
                raise AirflowApiError(f"DAG run {dag_id}/{run_id} is still {state} after "
                                      f"{timeout:.0f} s")
            time.sleep(poll)
