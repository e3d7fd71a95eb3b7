"""Settings, resolved once into a frozen object and passed down.

Order of precedence: explicit argument → ``HEADWATER_*`` environment variable → default under
``~/.headwater``. Nothing else in Headwater reads the environment for configuration, and nothing
here writes to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from headwater.errors import InvalidArgument

DEFAULT_NAMESPACE = "default"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("HEADWATER_HOME") or Path.home() / ".headwater")


@dataclass(frozen=True)
class Settings:
    """Where the catalog and the store live, and how lineage is delivered."""

    catalog_url: str
    store_url: str
    store_options: Mapping[str, Any] = field(default_factory=dict)
    lineage: str = "on"
    namespace: str = DEFAULT_NAMESPACE
    #: Create the schema of a brand-new, empty catalog database on open.
    auto_migrate: bool = True
    #: SQLite file of the stat cache (digests of unchanged local files); None: no stat cache.
    stat_cache_path: str | None = None
    #: How often an open run block renews its lease (``HEADWATER_RUN_HEARTBEAT``, seconds).
    run_heartbeat_seconds: float = 30.0
    #: How long a run without a heartbeat stays RUNNING before it is reaped
    #: (``HEADWATER_RUN_LEASE``); at least twice the heartbeat, so one late beat costs nothing.
    run_lease_seconds: float = 300.0
    #: Opening a catalog looks for dead runs at most this often per process
    #: (``HEADWATER_REAP_INTERVAL``; 0: at every open).
    reap_interval_seconds: float = 60.0
    #: Input pins every run in this process applies (``HEADWATER_PINS``, a JSON object
    #: ``{"ns/name": "ns/name@N"}``; see :func:`headwater.refs.parse_pins`): how a rebuild
    #: reaches steps launched by Bash or a Beam subprocess.
    pins: Mapping[str, str] = field(default_factory=dict)
    #: Pack new small objects (``HEADWATER_PACK``: ``auto`` = the store's default, every store
    #: packs since 2026-12 (ADR 0005); ``on``; ``off`` keeps new objects loose).
    pack: str = "auto"
    #: Read cache folder for remote stores (``HEADWATER_CACHE``: a path, or ``off``); None: off.
    cache_path: str | None = None
    #: Read cache size bound in bytes (``HEADWATER_CACHE_SIZE``, e.g. ``10G``).
    cache_size: int = 10 << 30
    #: Airflow's api-server a rebuild triggers DAG runs on (``HEADWATER_AIRFLOW_URL``), and the
    #: user it logs in as (``HEADWATER_AIRFLOW_USER`` / ``HEADWATER_AIRFLOW_PASSWORD``);
    #: docs/rebuild.md. Inside Airflow the Headwater connection's extras give them.
    airflow_api_url: str | None = None
    airflow_user: str | None = None
    airflow_password: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        *,
        catalog_url: str | None = None,
        store_url: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        lineage: str | None = None,
        namespace: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from arguments, then ``HEADWATER_*`` variables, then defaults."""
        env = os.environ if environ is None else environ
        home = default_home(env)
        if store_options is None:
            raw = env.get("HEADWATER_STORE_OPTIONS")
            try:
                store_options = json.loads(raw) if raw else {}
            except json.JSONDecodeError as exc:
                raise InvalidArgument(
                    f"HEADWATER_STORE_OPTIONS is not valid JSON ({exc.msg}); "
                    'give an object such as {"anon": true}'
                ) from exc
        if not isinstance(store_options, Mapping):
            raise InvalidArgument("store options must be a mapping of fsspec storage options")
        lineage_mode = (lineage or env.get("HEADWATER_LINEAGE") or "on").lower()
        if lineage_mode not in {"on", "off"}:
            raise InvalidArgument(f"HEADWATER_LINEAGE must be 'on' or 'off', not {lineage_mode!r}")
        catalog_url = (
            catalog_url or env.get("HEADWATER_CATALOG_URL") or f"sqlite:///{home / 'catalog.db'}"
        )
        beat, lease = _lease_settings(env)
        return cls(
            catalog_url=catalog_url,
            store_url=store_url or env.get("HEADWATER_STORE_URL") or str(home / "store"),
            store_options=dict(store_options),
            lineage=lineage_mode,
            namespace=namespace or env.get("HEADWATER_NAMESPACE") or DEFAULT_NAMESPACE,
            stat_cache_path=_stat_cache_path(env.get("HEADWATER_STAT_CACHE"), catalog_url, home),
            run_heartbeat_seconds=beat,
            run_lease_seconds=lease,
            reap_interval_seconds=_seconds(env, "HEADWATER_REAP_INTERVAL", 60.0),
            pins=_pins(env),
            pack=_choice(env, "HEADWATER_PACK", ("auto", "on", "off")),
            cache_path=_cache_path(env.get("HEADWATER_CACHE"), home),
            cache_size=_size(env, "HEADWATER_CACHE_SIZE", 10 << 30),
            airflow_api_url=env.get("HEADWATER_AIRFLOW_URL") or None,
            airflow_user=env.get("HEADWATER_AIRFLOW_USER") or None,
            airflow_password=env.get("HEADWATER_AIRFLOW_PASSWORD"),
        )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _pins(env: Mapping[str, str]) -> dict[str, str]:
    from headwater.refs import parse_pins

    ns = env.get("HEADWATER_NAMESPACE") or DEFAULT_NAMESPACE
    try:
        return parse_pins(env.get("HEADWATER_PINS"), default_namespace=ns)
    except ValueError as exc:
        raise InvalidArgument(f"HEADWATER_PINS: {exc}") from None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise InvalidArgument(f"{name} must be a number of seconds >= 0, not {raw!r}")
    return value


def _lease_settings(env: Mapping[str, str]) -> tuple[float, float]:
    """Heartbeat and lease of runs (see :mod:`headwater.catalog.leases`)."""
    beat = _seconds(env, "HEADWATER_RUN_HEARTBEAT", 30.0)
    lease = _seconds(env, "HEADWATER_RUN_LEASE", max(300.0, 4 * beat))
    if beat <= 0 or lease < 2 * beat:
        raise InvalidArgument(
            f"HEADWATER_RUN_LEASE ({lease:g} s) must be at least twice HEADWATER_RUN_HEARTBEAT "
            f"({beat:g} s, > 0): a live run would be reaped between two heartbeats"
        )
    return beat, lease


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).lower()
    if value not in choices:
        raise InvalidArgument(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _cache_path(value: str | None, home: Path) -> str | None:
    """``HEADWATER_CACHE`` (a path, or ``off``); else ``$HEADWATER_HOME/cache``."""
    if value:
        return None if value.lower() in {"off", "none", "0", "false"} else value
    return str(home / "cache")


def _size(env: Mapping[str, str], name: str, default: int) -> int:
    from headwater.store.cache import parse_size

    raw = env.get(name)
    if not raw:
        return default
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{name}: {exc}") from None


def _stat_cache_path(value: str | None, catalog_url: str, home: Path) -> str | None:
    """``HEADWATER_STAT_CACHE`` (a path, or ``off``); else beside a SQLite catalog file (one
    cache per catalog, like DVC's per-repository state), else ``$HEADWATER_HOME/statcache.db``."""
    if value:
        return None if value.lower() in {"off", "none", "0", "false"} else value
    if catalog_url.startswith("sqlite:///") and ":memory:" not in catalog_url:
        catalog_file = Path(catalog_url.removeprefix("sqlite:///").split("?", 1)[0])
        if catalog_file.name:
            return str(catalog_file.with_name("statcache.db"))
    return str(home / "statcache.db")
