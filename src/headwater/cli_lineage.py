"""``headwater lineage``: look at and drain the OpenLineage outbox.

    headwater [--catalog URL] lineage status [--json]   pending / failed / delivered counts
    headwater [--catalog URL] lineage flush [--json]    send every pending event now

Registered by the main CLI under its ``lineage`` group. Both commands open the catalog the main
command names (``--catalog``/``--store``, else the ``HEADWATER_*`` settings) and deliver through
whatever openlineage-python is configured with. ``flush`` exits with status 2 when an event it
was asked to send stays undelivered, after saying how many and why.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from headwater.errors import HeadwaterError


class LineageCliError(click.ClickException):
    """A one-line error, exit status 2."""

    exit_code = 2


def _open_catalog() -> Any:
    """The catalog of the root command's ``--catalog``/``--store`` (or the settings).

    Events the catalog records while open (a dead run reaped on open, say) go to the outbox
    without after-commit delivery: ``flush`` sends them itself, in order.
    """
    from headwater.api import Catalog
    from headwater.lineage.base import NullLineage
    from headwater.lineage.outbox import OutboxRecorder
    from headwater.settings import Settings

    ctx = click.get_current_context()
    root = ctx.find_root().obj
    options = root if isinstance(root, dict) else {}
    try:
        settings = Settings.resolve(
            catalog_url=options.get("catalog_url"), store_url=options.get("store_url")
        )
        recorder = NullLineage() if settings.lineage == "off" else OutboxRecorder(deliver=False)
        return Catalog.open(settings=settings, lineage=recorder)
    except HeadwaterError as exc:
        raise LineageCliError(str(exc)) from exc


@click.group("lineage")
def lineage_group() -> None:
    """OpenLineage events: delivery status and redelivery of the outbox."""


@lineage_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def status(as_json: bool) -> None:
    """Counts of pending, failed and delivered events."""
    from headwater.lineage.emitter import openlineage_configured, outbox_status

    with _open_catalog() as cat:
        try:
            info = outbox_status(cat.engine)
        except Exception as exc:
            raise LineageCliError(f"cannot read the lineage outbox: {exc}") from exc
    info["transport_configured"] = openlineage_configured()
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    click.echo(f"pending {info['pending']}, failed {info['failed']}, delivered {info['delivered']}")
    if info["oldest_undelivered"]:
        click.echo(f"oldest undelivered event: {info['oldest_undelivered']}")
    if info["last_error"]:
        click.echo(f"last delivery error: {info['last_error']}")
    for p in info["paused"]:
        click.echo(
            f"after-commit delivery to {p['transport'] or 'the configured transport'} paused "
            f"until {p['next_attempt_at']} after {p['failures']} failure(s): {p['last_error']}"
        )
    if not info["transport_configured"]:
        click.echo("no OpenLineage transport is configured (openlineage.yml, OPENLINEAGE_URL or "
                   "OPENLINEAGE__TRANSPORT__*): events wait in the outbox; `headwater lineage "
                   "flush` sends them once one is")


@lineage_group.command("flush")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--include-failed",
    is_flag=True,
    help="Also retry events that gave up after too many failed attempts.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Send at most N events.")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="How long to wait for events another live process is sending.",
)
def flush(as_json: bool, include_failed: bool, limit: int | None, wait_seconds: float) -> None:
    """Send every pending event now, oldest first; stops at the first delivery error.

    Backoff is ignored, and events claimed by a process of this host that has exited are taken
    over at once. Exit status 2 when an event stays undelivered, with the reason.
    """
    from headwater.catalog import outbox
    from headwater.lineage.emitter import Emitter, not_sent, outbox_status

    emitter = Emitter()
    emitter.warn = False  # the reasons are reported below
    with _open_catalog() as cat:
        try:
            with cat.engine.connect() as conn:  # what exists now; later rows are not ours
                upto = outbox.newest_id(conn)
            options: dict[str, Any] = {
                "ignore_backoff": True,
                "include_failed": include_failed,
                "take_over_dead": True,
                "upto_id": upto,
            }
            result = emitter.deliver(cat.engine, limit=limit, **options)
            reasons = not_sent(cat.engine, result, upto_id=upto, include_failed=include_failed)
            deadline = time.monotonic() + wait_seconds
            while (  # rows another live process is sending: give it a moment, then take over
                result.ok
                and not result.limited
                and any(r["reason"].startswith("being sent by") for r in reasons)
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
                more = emitter.deliver(
                    cat.engine,
                    limit=None if limit is None else limit - result.delivered,
                    **options,
                )
                result.merge(more)
                reasons = not_sent(cat.engine, result, upto_id=upto, include_failed=include_failed)
            after = outbox_status(cat.engine)
        except Exception as exc:
            raise LineageCliError(f"lineage flush failed: {exc}") from exc
    left = sum(r["events"] for r in reasons)
    only_limit = bool(reasons) and all(r["reason"].startswith("not tried") for r in reasons)
    info = {
        "delivered": result.delivered,
        "pending": after["pending"],
        "failed": after["failed"],
        "error": result.refused or (result.errors[0] if result.errors else None),
        "not_sent": reasons,
    }
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
    else:
        click.echo(
            f"delivered {info['delivered']}, pending {info['pending']}, failed {info['failed']}"
        )
        for r in reasons:
            click.echo(f"not sent: {r['events']} event(s): {r['reason']}")
    if left and not only_limit:
        first = reasons[0]
        raise LineageCliError(
            f"{left} lineage event(s) not delivered: {first['reason']}"
            + ("" if len(reasons) == 1 else f" (and {len(reasons) - 1} other reason(s) above)")
        )


__all__ = ["LineageCliError", "lineage_group"]
