"""``headwater rebuild REF [--with NEWREF] [--dry-run] [--wait] [--json]`` (docs/rebuild.md).

Plans from the lineage of REF (:mod:`headwater.rebuild.plan`), prints the plan, and unless
``--dry-run`` runs it: new Airflow DAG runs through the api-server (``--airflow-url`` or
``HEADWATER_AIRFLOW_URL``, user and password from ``HEADWATER_AIRFLOW_USER`` /
``HEADWATER_AIRFLOW_PASSWORD``), Beam pipelines relaunched. A module of its own, registered by
the main CLI like ``cli_status``.
"""

from __future__ import annotations

from typing import Any

import click


def _cli() -> Any:
    from headwater import cli  # imported late: cli imports this module to register it

    return cli


def print_plan(plan: Any, echo: Any = click.echo) -> None:
    """The plan as text: what is affected, what runs again where, with which pins."""
    if plan.empty:
        echo(f"nothing to rebuild: every dataset derived from {plan.root} already has a newer "
             "version that is not")
        return
    todo = [d for d, info in sorted(plan.datasets.items()) if info["rebuild"]]
    sub = f" -> {plan.replacement}" if plan.replacement else ""
    echo(f"rebuild what {plan.root}{sub} fed: {len(todo)} dataset(s) "
         f"({', '.join(todo)})")
    if plan.problem:
        echo(f"  ! {plan.problem}")
    for e in plan.entries:
        echo(f"{e.order + 1}. {e.label()}")
        if e.task_ids:
            echo(f"   tasks: {', '.join(e.task_ids)}")
        else:
            echo(f"   jobs: {', '.join(e.jobs)}")
        echo(f"   supersedes: {', '.join(e.rebuilds)}")
        if e.pins:
            echo("   pins: " + ", ".join(f"{k} -> {v}" for k, v in sorted(e.pins.items())))
        for cmd in e.commands():
            echo(f"   by hand: {cmd}")
        if e.local_command():
            echo(f"   without a scheduler: {e.local_command()}")


@click.command()
@click.argument("ref")
@click.option("--with", "with_ref", default=None, metavar="NEWREF",
              help="The corrected version read instead of REF (default: the alias's current "
                   "target, else the latest version that is not retracted).")
@click.option("--dry-run", is_flag=True, help="Print the plan; run nothing.")
@click.option("--wait", is_flag=True, help="Follow the runs to their end; print new versions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--airflow-url", default=None, metavar="URL",
              help="Airflow api-server (default: HEADWATER_AIRFLOW_URL).")
@click.option("--timeout", default=3600.0, show_default=True,
              help="Seconds --wait follows a run before giving up.")
@click.pass_context
def rebuild(ctx: click.Context, ref: str, with_ref: str | None, dry_run: bool, wait: bool,
            as_json: bool, airflow_url: str | None, timeout: float) -> None:
    """Rebuild exactly what version REF fed, reading NEWREF instead of it."""
    cli = _cli()

    def go() -> None:
        from headwater.rebuild import plan_rebuild, run_plan
        from headwater.rebuild.airflow_api import AirflowApi
        from headwater.rebuild.execute import check_runnable

        cat = cli._catalog(ctx)
        plan = plan_rebuild(cat, ref, with_ref=with_ref, require_replacement=not dry_run)
        if dry_run or plan.empty:
            if as_json:
                cli._emit_json(plan.to_dict() | {"dry_run": dry_run})
            else:
                print_plan(plan)
            return
        s = cat.settings
        url = airflow_url or s.airflow_api_url
        api = AirflowApi(url, username=s.airflow_user, password=s.airflow_password,
                         timeout=60) if url else None
        check_runnable(plan, api)
        if not as_json:
            print_plan(plan)
        result = run_plan(cat, plan, airflow=api, wait=wait, timeout=timeout)
        if as_json:
            cli._emit_json(result.to_dict())
            return
        for item in result.launched:
            if item.dag_run_id:
                click.echo(f"triggered {item.dag_id} run {item.dag_run_id}: {item.state}")
            elif item.state:
                click.echo(f"{item.label}: {item.state} ({item.command})")
            else:
                click.echo(f"{item.label}: run by hand: {item.command}")
        if wait:
            new = ", ".join(result.new_versions) or "none (outputs unchanged)"
            click.echo(f"new versions: {new}")

    cli.friendly(go)()


COMMANDS = (rebuild,)
