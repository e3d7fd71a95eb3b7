"""``headwater serve``: run the catalog server (REST API, OpenLineage ingestion, web UI).

Why the loopback rule lives here: it is a property of *where the socket listens*, which only the
command knows. With no token configured, anyone who can connect may write, so the server refuses
to listen beyond this machine and says so.
"""

from __future__ import annotations

import ipaddress
import os
import sys

import click

from headwater.errors import HeadwaterError

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def decide_host(host: str, *, open_mode: bool) -> tuple[str, str | None]:
    """The host to bind and, if it differs from the one asked for, why."""
    if open_mode and not is_loopback(host):
        return LOOPBACK, (
            f"no token configured: refusing to listen on {host}; serving on loopback "
            f"({LOOPBACK}) only. Set --token/--read-token or HEADWATER_SERVER_TOKENS to serve "
            "other machines."
        )
    return host, None


@click.command("serve")
@click.option("--host", default=LOOPBACK, show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", "tokens", multiple=True,
              help="Write token (repeatable); also HEADWATER_SERVER_TOKENS='write:T,read:R'.")
@click.option("--read-token", "read_tokens", multiple=True, help="Read-only token (repeatable).")
@click.option("--public-read", is_flag=True, help="Reads need no token (writes still do).")
@click.option("--read-only", is_flag=True, help="Disable every write endpoint.")
@click.option("--allow-host", "allow_hosts", multiple=True,
              help="With no token: another Host name to serve besides localhost, 127.0.0.1 and "
              "::1 (repeatable; also HEADWATER_SERVER_ALLOWED_HOSTS=a,b; '*' for any).")
@click.option("--event-retention-days", type=float, default=None,
              help="Keep ingested OpenLineage events this many days (0: forever; default 90; "
              "also HEADWATER_SERVER_EVENT_RETENTION_DAYS).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, tokens: tuple[str, ...],
          read_tokens: tuple[str, ...], public_read: bool, read_only: bool,
          allow_hosts: tuple[str, ...], event_retention_days: float | None,
          log_level: str) -> None:
    """Serve the catalog: REST API (/api/v1, OpenAPI at /api/openapi.json), OpenLineage
    ingestion compatible with Marquez (POST /api/v1/lineage) and the web UI (/)."""
    try:
        import uvicorn

        from headwater.api import Catalog
        from headwater.catalog.db import safe_url
        from headwater.lineage.base import NullLineage
        from headwater.server.app import create_app
        from headwater.server.auth import AccessPolicy
        from headwater.server.guard import ENV_ALLOWED_HOSTS, LOCAL_HOSTS
        from headwater.server.retention import retention_from
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise click.ClickException(
            f"the server needs FastAPI and uvicorn: pip install 'headwater[server]' ({exc})"
        ) from exc
    root = ctx.find_root().obj or {}
    try:
        policy = AccessPolicy.from_env(os.environ, write_tokens=tokens, read_tokens=read_tokens,
                                       public_read=public_read, read_only=read_only)
        retention = retention_from(
            str(event_retention_days) if event_retention_days is not None
            else os.environ.get("HEADWATER_SERVER_EVENT_RETENTION_DAYS"))
        catalog = Catalog.open(root.get("catalog_url"), store_url=root.get("store_url"),
                               lineage=NullLineage())
    except HeadwaterError as exc:
        click.echo(f"headwater: error: {exc}", err=True)
        sys.exit(2)
    bind, why = decide_host(host, open_mode=policy.open)
    if why:
        click.echo(f"headwater serve: {why}", err=True)
    elif policy.open:
        click.echo(f"headwater serve: no token configured: loopback only ({bind}); anyone on "
                   "this machine can read and write.", err=True)
    mode = "read-only" if policy.read_only else "read/write"
    click.echo(f"headwater serve: catalog {safe_url(catalog.settings.catalog_url)}, "
               f"{mode}, http://{bind}:{port}/", err=True)
    # no token: only these Host/Origin names are served (DNS rebinding), as Jupyter does
    hosts = [*LOCAL_HOSTS, bind, *allow_hosts,
             *(os.environ.get(ENV_ALLOWED_HOSTS) or "").split(",")]
    app = create_app(catalog, policy=policy, allowed_hosts=hosts, event_retention=retention)
    app.state.retention.maybe_prune(catalog)  # on start, then at most every 10 min of ingest
    uvicorn.run(app, host=bind, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                timeout_keep_alive=30)


__all__ = ["decide_host", "is_loopback", "serve"]
