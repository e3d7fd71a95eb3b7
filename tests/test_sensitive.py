"""One rule for secrets (``headwater.sensitive``): the Beam launch record and the server agree on
which names hold secrets and which URLs carry a password.

Before, ``headwater_beam.launch`` had its own name pattern and ``headwater.server.redact`` its
own: the launch record dropped ``--db_password`` while the server let ``db_password=...`` through,
and the server masked ``pwd=...`` while the launch record kept ``--pwd``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from headwater_beam.launch import launch_record

from headwater import Settings
from headwater.sensitive import (
    has_secret_keys,
    has_url_password,
    is_secret_name,
    mask_secrets,
    mask_url_passwords,
)
from headwater.server.redact import redact, redact_json

SECRET_NAMES = ["password", "PASSWORD", "passwd", "pwd", "db_password", "sslpassword",
                "db-pass", "passwordfile", "secret", "client_secret", "AWS_SECRET_ACCESS_KEY",
                "token", "api_token", "access_token", "csrftoken", "apiKey", "api-key", "apikey",
                "access_key", "x.private_key", "credentials", "gcp_credentials_json", "auth",
                "oauth_scope", "Authorization", "passphrase"]
PLAIN_NAMES = ["input_ref", "runner", "user", "passenger_id", "tokenizer", "author", "max_count",
               "job_name", "keys", "address"]


def _settings(tmp_path: Path) -> Settings:
    return Settings(catalog_url=f"sqlite:///{tmp_path / 'c.db'}",
                    store_url=str(tmp_path / "store"))


def _launch_drops(tmp_path: Path, option: str) -> bool:
    """Whether the Beam launch record leaves ``option`` (``--name=value``) out as a secret."""
    rec = launch_record(PipelineOptions([]), _settings(tmp_path), entry_point="my.pipeline",
                        argv=["--input-ref", "raw@1", option])
    dropped = option.split("=", 1)[0] in rec["redacted"]
    assert dropped == (option not in rec["argv"])
    return dropped


def _server_masks(text: str, secret: str) -> bool:
    """Whether the server's redaction hides ``secret`` in ``text``."""
    return secret not in redact(text)


@pytest.mark.parametrize("name", SECRET_NAMES + PLAIN_NAMES)
def test_launch_record_and_server_agree_on_secret_names(name: str, tmp_path: Path) -> None:
    want = name in SECRET_NAMES
    assert is_secret_name(name) is want
    assert _launch_drops(tmp_path, f"--{name}=v4lue") is want
    assert _server_masks(f"connect with {name}=v4lue&x=1", "v4lue") is want
    assert _server_masks(f"https://h.example/p?a=b&{name}=v4lue", "v4lue") is want


@pytest.mark.parametrize(("url", "password"), [
    ("postgresql://hw:s3cret@127.0.0.1:5432/hw", "s3cret"),
    ("postgresql+psycopg://bob:hunter2@db/cat", "hunter2"),
    ("redis://:pw0rd@127.0.0.1:6379/0", "pw0rd"),
    ("https://u:p@ss@host.example/x", "p@ss"),  # a password holding @, read as urlsplit does
    ("s3://bucket/prefix", None),
    ("https://host.example/x?y=z@w", None),
    ("mailto:someone@example.com", None),
])
def test_launch_record_and_server_agree_on_url_passwords(url: str, password: str | None,
                                                         tmp_path: Path) -> None:
    assert has_url_password(url) is (password is not None)
    assert _launch_drops(tmp_path, f"--target={url}") is (password is not None)
    if password is not None:
        masked = mask_url_passwords(url)
        assert password not in masked and ":***@" in masked
        assert _server_masks(f"error at {url}: refused", password)
    else:
        assert redact(url) == url


def test_masking_keeps_the_rest_of_the_text() -> None:
    text = ("postgresql://bob:hunter2@db/cat?sslmode=require&sslpassword=x1 "
            "api_token=abc== tokenizer=word")
    assert mask_secrets(text) == ("postgresql://bob:***@db/cat?sslmode=require&sslpassword=*** "
                                  "api_token=*** tokenizer=word")
    assert redact(text) == mask_secrets(text)
    assert redact_json({"a": ["token=t0k", 3, None]}) == {"a": ["token=***", 3, None]}
    assert redact("nothing to hide") == "nothing to hide"


@pytest.mark.parametrize(("store_options", "secret"), [
    ({"key": "AKIAEXAMPLE", "secret": "s"}, True),
    ({"key": "AKIAEXAMPLE"}, True),  # s3fs's access key id: the Airflow adapter's rule too
    ({"client_kwargs": {"aws_secret_access_key": "s"}}, True),  # nested
    ({"endpoint_url": "http://u:pw@127.0.0.1:9000"}, True),
    ({"token": "anon"}, True),
    ({"anon": True, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}, False),
])
def test_store_options_with_secrets_are_dropped_from_the_launch_record(
        store_options: dict[str, object], secret: bool, tmp_path: Path) -> None:
    # the same function decides whether headwater_airflow.beam passes them by environment
    assert has_secret_keys(store_options) is secret
    settings = _settings(tmp_path).with_(store_options=store_options)
    rec = launch_record(PipelineOptions([]), settings, entry_point="my.pipeline", argv=[])
    assert ("--headwater_store_options" in rec["redacted"]) is secret
    assert any(a.startswith("--headwater_store_options=") for a in rec["argv"]) is not secret


def test_secret_rules_live_in_headwater_sensitive_only() -> None:
    """No second copy: a regex naming password-like words, or a URL password read by urlsplit,
    outside :mod:`headwater.sensitive`. (A SQLAlchemy URL's password, ``make_url(...)``, is the
    catalog URL as SQLAlchemy reads it, not a copy of this rule.)"""
    root = Path(__file__).resolve().parents[1]
    copy = re.compile(r"pass\(|passw\w*\||secret\||token\||urlsplit\([^)]*\)\.password\b",
                      re.I)
    offenders = [str(p.relative_to(root)) for folder in ("src", "providers", "beam_transforms")
                 for p in (root / folder).rglob("*.py")
                 if p.name != "sensitive.py" and copy.search(" ".join(p.read_text().split()))]
    assert offenders == [], f"use headwater.sensitive instead: {offenders}"
