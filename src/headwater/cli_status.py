"""``headwater retract|unretract|status`` (docs/retract-status.md).

    headwater retract REF --reason TEXT [--actor WHO]     record that a version is bad
    headwater unretract REF --reason TEXT [--actor WHO]   undo it (the history keeps both)
    headwater status [NS|REF] [--all] [--json]            fresh, stale or retracted, with causes

A module of its own so the main CLI gains three registrations, not three commands' worth of
code; it reuses the main CLI's catalog opening, one-line errors and JSON output.
"""

from __future__ import annotations

from typing import Any

import click


def _cli() -> Any:
    from headwater import cli  # imported late: cli imports this module to register it

    return cli


def cause_text(c: dict[str, Any]) -> str:
    """One cause as a sentence (the JSON form is ``StatusCause.to_dict``)."""
    cause = c["cause"]
    if cause == "retracted":
        return f"retracted: {c.get('reason')}"
    if cause == "input_retracted":
        via = f" (via {c['via']})" if c.get("via") else ""
        return f"input {c['input']} is retracted{via}"
    if cause == "alias_moved":
        return f"input {c['input']} was read as @{c['selector']}, which now points elsewhere"
    if cause == "newer_input":
        return f"input {c['input']} was read as @latest; a newer version exists"
    if cause in ("code_changed", "params_changed"):
        what = "code" if cause == "code_changed" else "parameters"
        return f"the step's {what} changed since (newer run {c['newer_run']})"
    return f"upstream {c['input']} is stale"


@click.command()
@click.argument("ref")
@click.option("--reason", required=True, help="Why the version is bad (kept in the history).")
@click.option("--actor", default=None, help="Who (default: the OS user).")
@click.pass_context
def retract(ctx: click.Context, ref: str, reason: str, actor: str | None) -> None:
    """Record that version REF is bad: runs refuse it, what came from it is stale."""
    cli = _cli()
    v = cli.friendly(lambda: cli._catalog(ctx).retract(ref, reason=reason, actor=actor))()
    click.echo(f"retracted {v.ref}; `headwater status` shows what came from it")


@click.command()
@click.argument("ref")
@click.option("--reason", required=True, help="Why it is good after all (kept in the history).")
@click.option("--actor", default=None, help="Who (default: the OS user).")
@click.pass_context
def unretract(ctx: click.Context, ref: str, reason: str, actor: str | None) -> None:
    """Undo a retraction of REF (adds an entry; the history keeps both)."""
    cli = _cli()
    v = cli.friendly(lambda: cli._catalog(ctx).unretract(ref, reason=reason, actor=actor))()
    click.echo(f"unretracted {v.ref}")


@click.command()
@click.argument("target", required=False)
@click.option("--all", "all_versions", is_flag=True, help="Every version, not just the latest.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, target: str | None, all_versions: bool, as_json: bool) -> None:
    """Fresh, stale or retracted, with causes. TARGET is a namespace or a reference
    (ns/name[@selector]); without it, the latest version of every dataset."""
    cli = _cli()
    items = cli.friendly(
        lambda: cli._catalog(ctx).status(target, all_versions=all_versions))()
    if as_json:
        cli._emit_json([st.to_dict() for st in items])
        return
    from rich.table import Table
    from rich.text import Text

    table = Table("version", "status", "causes", box=None)
    colour = {"fresh": "green", "stale": "yellow", "retracted": "red"}
    for st in items:
        # Text, not markup: refs and reasons are data (``[draft]`` must print as typed)
        name = st.ref + (f" ({', '.join(st.aliases)})" if st.aliases else "")
        table.add_row(Text(name), Text(st.status, style=colour[st.status]),
                      Text("; ".join(cause_text(c) for c in st.causes) or "-"))
    cli.out.print(table)


COMMANDS = (retract, unretract, status)
