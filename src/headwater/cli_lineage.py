"""``headwater lineage``: look at and drain the OpenLineage outbox.

    headwater lineage status [--json]     pending / failed / delivered counts
    headwater lineage flush [--json]      send every pending event now (backoff ignored)

Registered by the main CLI with ``main.add_command(lineage_group)``. Both commands open the
catalog with ``Catalog.open()`` (``HEADWATER_*`` settings) and deliver through whatever
openlineage-python is configured with. Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
from typing import Any

import click

from headwater.errors import HeadwaterError


class LineageCliError(click.ClickException):
    """A one-line error, exit status 2."""

    exit_code = 2


def _open_catalog() -> Any:
    from headwater.api import Catalog

    try:
        return Catalog.open()
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
def flush(as_json: bool, include_failed: bool, limit: int | None) -> None:
    """Send every pending event now, oldest first; stops at the first delivery error."""
    from headwater.lineage.emitter import Emitter, outbox_status

    with _open_catalog() as cat:
        try:
            result = Emitter().deliver(
                cat.engine, ignore_backoff=True, include_failed=include_failed, limit=limit
            )
            after = outbox_status(cat.engine)
        except Exception as exc:
            raise LineageCliError(f"lineage flush failed: {exc}") from exc
    info = {
        "delivered": result.delivered,
        "pending": after["pending"],
        "failed": after["failed"],
        "error": result.errors[0] if result.errors else None,
    }
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
    else:
        click.echo(
            f"delivered {info['delivered']}, pending {info['pending']}, failed {info['failed']}"
        )
    if result.errors:
        raise LineageCliError(
            f"lineage backend unreachable ({result.errors[0]}); {after['pending']} events "
            "stay queued: run `headwater lineage flush` again once it is back"
        )


__all__ = ["LineageCliError", "lineage_group"]
