"""The ``headwater`` command line.

Every listing and ``show``/``diff``/``lineage`` takes ``--json``. A user mistake (unknown dataset,
bad reference, missing path, unreachable database) is one line on stderr and exit status 2, never
a traceback. Long work shows a progress bar on a terminal and stays quiet when piped.
"""

from __future__ import annotations

import gc as pygc  # the module: "gc" below is the command
import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table as RichTable

F = TypeVar("F", bound=Callable[..., Any])


class _Console:
    """The console the commands print through, made on first use: rich costs ~30 ms to import
    and ``headwater add`` (whose speed is the point of an unchanged re-log) prints one plain
    line with :func:`click.echo`."""

    _made: Console | None = None

    def __getattr__(self, name: str) -> Any:
        made = self._made
        if made is None:
            from rich.console import Console

            #: Markup off: what the CLI prints is data (file names like ``[draft]report.csv``,
            #: cell values like ``[np.float64(1.5), ...]``) that rich would otherwise read as
            #: tags and drop. The few styled lines pass ``markup=True`` and
            #: :func:`rich.markup.escape` their data.
            made = self._made = Console(highlight=False, markup=False, soft_wrap=True,
                                        width=None if sys.stdout.isatty() else 160)
        return getattr(made, name)


out: Any = _Console()


def Table(*headers: str, **options: Any) -> RichTable:
    """A :class:`rich.table.Table` (rich imported on first use)."""
    from rich.table import Table

    return Table(*headers, **options)


def escape(text: str) -> str:
    """:func:`rich.markup.escape` (rich imported on first use)."""
    from rich.markup import escape

    return escape(text)


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"headwater: error: {self.format_message()}", err=True)


def friendly(fn: F) -> F:
    """Turn Headwater's own errors into one clear line and exit status 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HeadwaterError as exc:
            raise UserError(str(exc)) from exc
        except Exception as exc:
            # S3/GCS: no credentials, an unreachable endpoint, a missing bucket (botocore's
            # and aiohttp's own classes, or a FileNotFoundError naming no bucket)
            from headwater.store.backends import remote_error

            remote = remote_error(exc, _urls_of(args, kwargs))
            if remote is not None:
                raise UserError(str(remote)) from exc
            if isinstance(exc, OSError):
                # unreadable files, names over NAME_MAX, paths over PATH_MAX, a file where a
                # directory should be: the system's words and the path, on one line
                raise UserError(_os_error_line(exc)) from exc
            raise

    return wrapper  # type: ignore[return-value]


def _urls_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """The store and source URLs a command used, to name them in a storage error."""
    urls = [str(v) for v in kwargs.values() if isinstance(v, str) and "://" in v]
    ctx = next((a for a in args if isinstance(a, click.Context)), None)
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict):
        cat = obj.get("catalog")
        store = cat.settings.store_url if cat is not None else obj.get("store_url")
        if store:
            urls.insert(0, str(store))
    return urls


class _WarningLine(logging.Handler):
    """Warnings of the ``headwater`` logger (files left out of a version, ...) as one
    ``headwater: warning:`` line each on stderr, written through click so runners capture it."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"headwater: warning: {record.getMessage()}", err=True)


#: Cloud-storage libraries that log their retries and tracebacks at WARNING/ERROR: with no
#: handler configured, Python's last-resort handler printed them (a 40-line traceback of
#: gcsfs's "_request out of retries") before the one-line error. A program that configures
#: logging still gets them through propagation.
_QUIET_LIBRARIES = ("gcsfs", "s3fs", "fsspec", "aiobotocore", "botocore", "google", "urllib3")


def _show_warnings() -> None:
    """Only the store's: what a snapshot left out belongs on the terminal; lineage delivery
    retries and the like stay in the log."""
    for name in _QUIET_LIBRARIES:
        library = logging.getLogger(name)
        if not library.handlers:
            library.addHandler(logging.NullHandler())
    logger = logging.getLogger("headwater.store.snapshot")
    if not any(isinstance(h, _WarningLine) for h in logger.handlers):
        handler = _WarningLine(logging.WARNING)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _os_error_line(exc: OSError) -> str:
    what = exc.strerror or exc.__class__.__name__
    where = exc.filename if exc.filename is not None else ""
    if len(str(where)) > 300:  # a path over PATH_MAX: its ends say enough
        where = f"{str(where)[:120]}…{str(where)[-120:]} ({len(str(where))} characters)"
    line = f"{what}: {where}" if where else f"{what} ({exc})"
    return " ".join(line.split("\n"))


#: Set by :func:`run`: this process is the ``headwater`` command's own.
_OWN_PROCESS = False


def _import_api() -> None:
    """Import the API (SQLAlchemy and the catalog's models: ~100k objects, none of them garbage)
    with the cyclic collector off, which spared it ~30 ms of collections that free nothing; in
    the command's own process they are then frozen out of the collector (see :func:`run`)."""
    if "headwater.api" in sys.modules:
        return
    enabled = pygc.isenabled()
    pygc.disable()
    try:
        import headwater.api  # noqa: F401
    finally:
        if enabled:
            if _OWN_PROCESS:
                pygc.freeze()
            pygc.enable()


def _catalog(ctx: click.Context) -> Any:
    _import_api()
    from headwater.api import Catalog
    from headwater.progress import for_terminal

    obj = ctx.ensure_object(dict)
    if "catalog" not in obj:
        obj["catalog"] = Catalog.open(
            obj.get("catalog_url"), store_url=obj.get("store_url"), progress=for_terminal()
        )
    return obj["catalog"]


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--meta expects key=value, got {pair!r}")
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--catalog",
    "catalog_url",
    envvar="HEADWATER_CATALOG_URL",
    help="Catalog database URL (default: SQLite under ~/.headwater).",
)
@click.option(
    "--store",
    "store_url",
    envvar="HEADWATER_STORE_URL",
    help="Object store: a path, file://, s3:// or gs:// URL (default ~/.headwater/store).",
)
@click.version_option(package_name="headwater")
@click.pass_context
def main(ctx: click.Context, catalog_url: str | None, store_url: str | None) -> None:
    """Headwater: versioned datasets with provenance, for Airflow and Beam pipelines."""
    _show_warnings()
    if catalog_url:  # named by the user: a typo must not start a new, empty catalog
        from headwater.catalog.db import check_sqlite_folder

        try:
            check_sqlite_folder(catalog_url)
        except HeadwaterError as exc:
            raise UserError(str(exc)) from exc
    ctx.ensure_object(dict).update(catalog_url=catalog_url, store_url=store_url)


@main.command()
@click.argument("source")
@click.option("--name", required=True, help="Dataset name, optionally ns/name.")
@click.option("--type", "type_", default=None, help="raw_data, table, model, split, ...")
@click.option("--meta", multiple=True, help="key=value metadata (value parsed as JSON if it can).")
@click.option("--reference", is_flag=True, help="Track the data in place instead of copying it.")
@click.option("--key", default=None, help="Comma-separated key columns for row diffs of tables.")
@click.option("--parent", "parents", multiple=True, help="Parent version reference (repeatable).")
@click.option("--label", default=None,
              help="Immutable name of the new version, usable as NAME@LABEL (e.g. 1.0-kaggle).")
@click.option("--description", default=None, help="What this version is (editable later).")
@click.option(
    "--follow-symlinks",
    type=click.Choice(["none", "inside", "all"]),
    default="inside",
    show_default=True,
    help="Symbolic links to files to follow: none, those resolving inside SOURCE, or all. "
    "Links left out, links to directories and special files are listed in a warning.",
)
@json_option
@click.pass_context
@friendly
def add(
    ctx: click.Context,
    source: str,
    name: str,
    type_: str | None,
    meta: tuple[str, ...],
    reference: bool,
    key: str | None,
    parents: tuple[str, ...],
    label: str | None,
    description: str | None,
    follow_symlinks: str,
    as_json: bool,
) -> None:
    """Log SOURCE (a path or URI) as a new version of dataset NAME."""
    if "://" not in source and not Path(source).exists():
        raise UserError(f"path {source!r} does not exist")
    cat = _catalog(ctx)
    v = cat.log(
        source,
        name=name,
        type=type_,
        metadata=_parse_meta(meta),
        reference=reference,
        key=key.split(",") if key else None,
        parents=parents,
        label=label,
        description=description,
        follow_symlinks=follow_symlinks,
    )
    if as_json:
        _emit_json(v.info().to_dict())
    elif v.created:  # plain text (a ref has no markup or emoji codes): no rich to import
        click.echo(
            f"logged {v.ref}  digest {v.short_digest}  {v.file_count} file(s), "
            f"{_human_size(v.size)}" + (f", {v.row_count} rows" if v.row_count is not None else "")
        )
    else:
        click.echo(
            f"unchanged: content is identical to {v.ref} (digest {v.short_digest}); no new version"
        )


@main.command("ls")
@click.option("--namespace", default=None)
@click.option("--search", default=None, help="Only datasets whose name contains this.")
@json_option
@click.pass_context
@friendly
def ls_(ctx: click.Context, namespace: str | None, search: str | None, as_json: bool) -> None:
    """List datasets."""
    items = _catalog(ctx).datasets(namespace=namespace, search=search)
    if as_json:
        _emit_json([d.to_dict() for d in items])
        return
    table = Table("dataset", "type", "versions", "latest", "aliases", box=None)
    for d in items:
        aliases = ", ".join(
            f"{a}→{n}" + (" (RETRACTED)" if a in d.retracted_aliases else "")
            for a, n in d.aliases.items()
        )
        table.add_row(d.full_name, d.type, str(d.versions), str(d.latest or "-"), aliases)
    out.print(table)


@main.command()
@click.argument("name")
@json_option
@click.pass_context
@friendly
def versions(ctx: click.Context, name: str, as_json: bool) -> None:
    """List the versions of dataset NAME."""
    items = _catalog(ctx).versions(name)
    if as_json:
        _emit_json([v.info().to_dict() for v in items])
        return
    table = Table(
        "#", "label", "digest", "kind", "files", "size", "rows", "created", "run", "aliases",
        box=None,
    )
    for v in items:
        table.add_row(
            str(v.number),
            v.label or "-",
            v.short_digest,
            v.kind,
            str(v.file_count),
            _human_size(v.size),
            "-" if v.row_count is None else str(v.row_count),
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (v.run_id or "-")[:13],
            ", ".join(v.aliases) + (" (RETRACTED)" if v.retracted and v.aliases else ""),
        )
    out.print(table)


@main.command()
@click.argument("ref")
@json_option
@click.pass_context
@friendly
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one version: digest, size, schema, stats, provenance."""
    cat = _catalog(ctx)
    v = cat.get(ref)
    if as_json:
        data = v.info().to_dict()
        data["files"] = [e.to_json() for e in v.manifest()]
        _emit_json(data)
        return
    out.print(f"[bold]{escape(v.ref)}[/bold]  ({escape(v.type)}, {v.kind})", markup=True)
    if v.retracted:
        last = cat.retractions(v.ref)[-1]
        out.print(f"  RETRACTED by {last['actor']} at {last['at']}: {last['reason']}")
    out.print(f"  digest    {v.digest}")
    out.print(f"  created   {v.created_at.isoformat()}  by run {v.run_id or '-'}")
    out.print(
        f"  content   {v.file_count} file(s), {_human_size(v.size)}"
        + (f", {v.row_count} rows" if v.row_count is not None else "")
    )
    if v.label:
        out.print(f"  label     {v.label}")
    if v.description:
        out.print(f"  description {v.description}")
    if v.properties:
        out.print(f"  properties {json.dumps(v.properties, sort_keys=True, default=str)}")
    if v.aliases:
        flag = "  (point at a RETRACTED version)" if v.retracted else ""
        out.print(f"  aliases   {', '.join(v.aliases)}{flag}")
    if v.parents:
        out.print(f"  parents   {', '.join(v.parents)}")
    inputs = cat.get_run(v.run_id).inputs if v.run_id else ()
    if inputs:
        out.print(f"  inputs    {', '.join(inputs)}  (read by run {v.run_id})")
    if v.schema:
        out.print("  schema    " + ", ".join(f"{c['name']}: {c['type']}" for c in v.schema))
    if v.metadata:
        out.print(f"  metadata  {json.dumps(v.metadata, sort_keys=True)}")
    if v.stats:
        out.print(f"  stats     {json.dumps(v.stats, sort_keys=True, default=str)}")


@main.command()
@click.argument("ref")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--allow-foreign-store", is_flag=True,
              help="Read an external version (recorded from OpenLineage) from the store its "
              "producer named, not this catalog's.")
@click.pass_context
@friendly
def get(ctx: click.Context, ref: str, dest: str, allow_foreign_store: bool) -> None:
    """Check out version REF into directory DEST (every file verified)."""
    v = _catalog(ctx).get(ref)
    root = v.checkout(dest, allow_foreign_store=allow_foreign_store)
    out.print(f"checked out {v.ref} ({v.file_count} file(s)) to {root}")


@main.command()
@click.argument("a")
@click.argument("b")
@click.option("--key", default=None, help="Comma-separated key columns for a row diff.")
@click.option("--limit", type=click.IntRange(min=0), default=5, show_default=True,
              help="Changed rows to print (--json gives them all).")
@json_option
@click.pass_context
@friendly
def diff(
    ctx: click.Context, a: str, b: str, key: str | None, limit: int, as_json: bool
) -> None:
    """Show what changed from version A to version B."""
    d = _catalog(ctx).diff(a, b, key=key.split(",") if key else None,
                           sample=sys.maxsize if as_json else limit, strict=False)
    if as_json:
        _emit_json(d.to_dict())
        if d.rows_error:
            raise UserError(d.rows_error)
        return
    out.print(
        f"{d.a} → {d.b}: {len(d.added)} added, {len(d.removed)} removed, "
        f"{len(d.changed)} changed, {d.unchanged} unchanged file(s)"
    )
    for e in d.added:
        out.print(f"  + {e.path}  ({_human_size(e.size)})")
    for e in d.removed:
        out.print(f"  - {e.path}")
    for old, new in d.changed:
        out.print(f"  ~ {new.path}  ({_human_size(old.size)} → {_human_size(new.size)})")
    if d.rows is not None:
        r = d.rows
        out.print(
            f"rows (key {', '.join(r.key)}): {r.added} added, {r.removed} removed, "
            f"{r.changed} changed, {r.unchanged} unchanged"
        )
        for col, n in r.cells_changed.items():
            out.print(f"  {col}: {n} cell(s) changed")
        if r.columns_added or r.columns_removed:
            out.print(f"  columns added {r.columns_added}, removed {r.columns_removed}")
        for s in d.to_dict()["rows"]["sample_changed"]:  # plain Python values, NaN as None
            out.print(f"  ~ {_row_key(s['key'])}: " + ", ".join(
                f"{col} {_cell(old)} → {_cell(new)}" for col, (old, new) in s["cells"].items()))
        if r.changed > len(r.sample_changed):
            out.print(f"  … {r.changed - len(r.sample_changed)} more changed row(s): "
                      f"--limit {r.changed} prints them all, --json gives every one")
    elif d.rows_error is not None:  # the file and schema diff, then the error
        if d.columns_added:
            out.print(f"  columns added: {', '.join(d.columns_added)}")
        if d.columns_removed:
            out.print(f"  columns removed: {', '.join(d.columns_removed)}")
        raise UserError(f"no row diff: {d.rows_error}")
    elif d.suggested_key is not None:
        out.print(f"rows: no key declared; `headwater diff {a} {b} --key {d.suggested_key}` "
                  f"compares rows ({d.suggested_key} is unique in both versions)")


def _row_key(key: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_cell(v)}" for k, v in key.items())


def _cell(value: Any) -> str:
    """A cell as a user would type it: ``1.25``, ``bob``, ``null``."""
    return "null" if value is None else str(value)


@main.command()
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from REF's dataset instead.")
@click.pass_context
@friendly
def alias(ctx: click.Context, ref: str, alias: str, remove: bool) -> None:
    """Point ALIAS (e.g. production) at version REF."""
    cat = _catalog(ctx)
    if remove:
        cat.unalias(ref.split("@")[0], alias)
        out.print(f"removed alias {alias!r} from {ref.split('@')[0]}")
        return
    v = cat.alias(ref, alias)
    out.print(f"{v.name}@{alias} → {v.ref}")


class _RefOrCommand(click.Group):
    """``headwater lineage REF`` walks the graph; ``headwater lineage flush|status`` manage
    delivery. An argument that is not a subcommand is a reference for ``trace``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["trace", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_RefOrCommand)
def lineage() -> None:
    """Trace lineage (`lineage REF [--up|--down]`) and manage lineage event delivery."""


@lineage.command()
@click.argument("ref")
@click.option("--up", "direction", flag_value="up", default=True, help="Upstream (default).")
@click.option("--down", "direction", flag_value="down", help="Downstream: what came from REF.")
@click.option("--depth", type=click.IntRange(min=0), default=None)
@json_option
@click.pass_context
@friendly
def trace(ctx: click.Context, ref: str, direction: str, depth: int | None, as_json: bool) -> None:
    """Trace the versions and runs upstream or downstream of REF."""
    g = _catalog(ctx).lineage(ref, direction=direction, depth=depth)
    if as_json:
        _emit_json(g.to_dict())
        return
    _print_tree(g.to_dict())


@main.command()
@click.argument("ref")
@json_option
@click.pass_context
@friendly
def impact(ctx: click.Context, ref: str, as_json: bool) -> None:
    """What was built from REF: affected datasets/versions and the tasks that produced them."""
    from headwater.rebuild import plan_rebuild

    cat = _catalog(ctx)
    report = cat.impact(ref)
    plan = plan_rebuild(cat, ref, require_replacement=False)
    if as_json:
        _emit_json(report.to_dict() | {"rebuild": plan.to_dict()})
        return
    n = sum(len(v) for v in report.versions.values())
    out.print(f"{n} version(s) in {len(report.versions)} dataset(s) derive from "
              f"{report.root.removeprefix('version:')}:", markup=False)
    for dataset, refs in sorted(report.versions.items()):
        out.print(f"  {dataset}: {', '.join(r.rsplit('@', 1)[1] for r in refs)}", markup=False)
    if report.tasks:
        out.print("produced by:")
        for t in report.tasks:
            out.print(f"  {t.label()}", markup=False)
    if plan.entries:
        from headwater.cli_rebuild import print_plan

        out.print("rebuild plan (`headwater rebuild` runs it; unchanged tasks reuse their "
                  "outputs):", markup=False)
        print_plan(plan, lambda line: out.print("  " + line, markup=False))


@main.command()
@click.argument("ref")
@json_option
@click.pass_context
@friendly
def reports(ctx: click.Context, ref: str, as_json: bool) -> None:
    """List the reports logged with version REF (newest first)."""
    items = _catalog(ctx).reports(ref)
    if as_json:
        _emit_json([r.to_dict() for r in items])
        return
    table = Table("name", "kind", "size", "created", "run", box=None)
    for r in items:
        table.add_row(r.name, r.kind, _human_size(r.size) if r.size else "-",
                      r.created_at.strftime("%Y-%m-%d %H:%M:%S"), (r.run_id or "-")[:13])
    out.print(table)


@main.command()
@click.argument("ref")
@click.argument("name")
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="Write the report's payload (Parquet, PNG…) to this file instead.")
@click.option("--rows", default=20, show_default=True, help="Table rows to print.")
@click.pass_context
@friendly
def report(ctx: click.Context, ref: str, name: str, out_path: str | None, rows: int) -> None:
    """Show report NAME of version REF: tables and histograms readably, the rest described."""
    cat = _catalog(ctx)
    found = cat.reports(ref, name=name)
    if not found:
        raise UserError(f"{ref} has no report named {name!r}; `headwater reports {ref}` lists them")
    r = found[0]
    if out_path:
        data = cat.report_payload(r) if r.digest else json.dumps(r.body, indent=2).encode()
        Path(out_path).write_bytes(data)
        out.print(f"wrote {len(data)} bytes of {r.kind} report {name!r} to {out_path}")
        return
    out.print(f"[bold]{escape(name)}[/bold] ({escape(r.kind)}) on {escape(r.version)}",
              markup=True)
    if r.kind == "table":
        import io

        from headwater.tables.formats import read_table

        table_data = read_table(io.BytesIO(cat.report_payload(r)), "parquet")
        t = Table(*table_data.column_names, box=None)
        for row in table_data.slice(0, rows).to_pylist():
            t.add_row(*(str(v) for v in row.values()))
        out.print(t)
        if table_data.num_rows > rows:
            out.print(f"… {table_data.num_rows - rows} more row(s)")
    elif r.kind == "histogram":
        _print_histogram(r.body)
    elif r.kind == "scalar":
        out.print(str(r.body["value"]))
    elif r.kind == "samples":
        for i, item in enumerate(r.body.get("items", [])):
            what = item.get("record") or item.get("text") or \
                f"{item.get('media_type')} {item.get('filename')}"
            out.print(f"  [{i}] {item.get('caption') or ''}: {what}", markup=False)
    else:
        out.print(json.dumps({k: v for k, v in r.body.items() if v is not None}, indent=2)
                  if r.body else f"{r.media_type}, {_human_size(r.size)} (use --out FILE)")


def _print_histogram(body: dict[str, Any]) -> None:
    counts = body.get("counts", [])
    if "labels" in body:
        labels = [str(x) for x in body["labels"]]
    else:
        edges = body.get("edges", [])
        labels = [f"{edges[i]:.3g}-{edges[i + 1]:.3g}" for i in range(len(counts))]
    top = max(counts, default=0) or 1
    width = max((len(x) for x in labels), default=1)
    if body.get("x_title"):
        out.print(f"{body['x_title']} → {body.get('y_title') or 'count'}", markup=False)
    for label, n in zip(labels, counts, strict=False):
        bar = "█" * max(1 if n else 0, round(40 * n / top))
        out.print(f"  {label.rjust(width)} │{bar} {n:g}", markup=False)


def _print_tree(graph: dict[str, Any]) -> None:
    nodes = {n["id"]: n for n in graph["nodes"]}
    up = graph["direction"] == "up"
    children: dict[str, list[str]] = {}
    for e in graph["edges"]:
        src, dst = (e["to"], e["from"]) if up else (e["from"], e["to"])
        children.setdefault(src, []).append(dst)

    def label(node_id: str) -> str:
        n = nodes[node_id]
        if n["type"] == "version":
            rows = f", {n['rows']} rows" if n.get("rows") is not None else ""
            return f"{n['ref']}  [{n['dataset_type']}] {n['digest'][:12]}{rows}"
        return f"run {n['job']} ({n['state']}) {n['run_id'][:13]}"

    seen: set[str] = set()

    def visit(node_id: str, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        out.print(f"{prefix}{branch}{label(node_id)}", markup=False)
        if node_id in seen:
            return
        seen.add(node_id)
        kids = sorted(set(children.get(node_id, [])))
        ext = "" if top else ("    " if last else "│   ")
        for i, kid in enumerate(kids):
            visit(kid, prefix + ext, i == len(kids) - 1, False)

    visit(graph["root"], "", True, True)


@main.command()
@click.option("--limit", default=50, show_default=True)
@click.option("--job", default=None)
@click.option(
    "--state",
    default=None,
    type=click.Choice(["RUNNING", "COMPLETED", "FAILED", "ABORTED"], case_sensitive=False),
)
@json_option
@click.pass_context
@friendly
def runs(ctx: click.Context, limit: int, job: str | None, state: str | None, as_json: bool) -> None:
    """List recent runs with their inputs and outputs."""
    items = _catalog(ctx).runs(limit=limit, job=job, state=state)
    if as_json:
        _emit_json([r.to_dict() for r in items])
        return
    table = Table("run", "job", "state", "started", "inputs", "outputs", box=None)
    for r in items:
        table.add_row(
            r.id[:13],
            f"{r.namespace}/{r.job}",
            r.state + (f" (retry of {r.retry_of[:13]})" if r.retry_of else ""),
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(r.inputs),
            ", ".join(r.outputs) + (f" (reused {r.reused_run_id[:13]})" if r.reused_run_id else ""),
        )
    out.print(table)


@main.group("run")
def run_group() -> None:
    """One run: `headwater run show ID` (the full id or the prefix `runs` prints)."""


@run_group.command("show")
@click.argument("run_id")
@json_option
@click.pass_context
@friendly
def run_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show run RUN_ID (the full id or a unique prefix, as `runs` prints it)."""
    r = _catalog(ctx).get_run(run_id)
    if as_json:
        _emit_json(r.to_dict())
        return
    out.print(f"run {r.id}  {r.namespace}/{r.job}  {r.state}")
    out.print(f"  started   {r.started_at.isoformat()}"
              + (f"  ended {r.ended_at.isoformat()}" if r.ended_at else ""))
    for what, value in (
        ("inputs", ", ".join(r.inputs)),
        ("outputs", ", ".join(r.outputs)),
        ("reused", r.reused_run_id),
        ("retry of", r.retry_of),
        ("params", json.dumps(r.params, sort_keys=True, default=str) if r.params else ""),
        ("code", r.code_fingerprint),
        ("cache key", r.cache_key),
        ("engine", json.dumps(r.engine, sort_keys=True, default=str) if r.engine else ""),
        ("error", r.error),
    ):
        if value:
            out.print(f"  {what:<9} {value}")


@main.command()
@click.option(
    "--grace",
    default=3600.0,
    show_default=True,
    help="Keep unreferenced objects younger than this many seconds (in-flight runs).",
)
@click.option("--dry-run", is_flag=True)
@json_option
@click.pass_context
@friendly
def gc(ctx: click.Context, grace: float, dry_run: bool, as_json: bool) -> None:
    """Delete store objects that no committed version refers to."""
    report = _catalog(ctx).gc(grace_seconds=grace, dry_run=dry_run)
    if as_json:
        _emit_json(
            {
                "deleted": len(report.deleted),
                "deleted_bytes": report.deleted_bytes,
                "kept_young": report.kept_young,
                "live_objects": report.live_objects,
                "staging_removed": report.staging_removed,
                "damaged_manifests": report.damaged,
                "dry_run": dry_run,
            }
        )
        return
    verb = "would delete" if dry_run else "deleted"
    for problem in report.damaged:
        out.print(f"SKIPPED damaged manifest {problem}", markup=False)
    out.print(
        f"{verb} {len(report.deleted)} object(s), {_human_size(report.deleted_bytes)}; "
        f"{report.live_objects} live, {report.kept_young} kept (younger than {grace:.0f}s)"
        + (f"; {len(report.damaged)} damaged manifest(s) skipped: run `headwater verify`"
           if report.damaged else "")
    )


@main.command()
@click.argument("ref", required=False)
@click.option("--repair", "repair_from", metavar="SOURCE_DIR", default=None,
              help="Write missing or corrupted objects back from the files under SOURCE_DIR "
                   "(for data that cannot simply be logged again).")
@json_option
@click.pass_context
@friendly
def verify(ctx: click.Context, ref: str | None, repair_from: str | None, as_json: bool) -> None:
    """Re-hash every object of REF (or of every version); exit 1 if any is bad.

    Corrupted objects are moved to the store's quarantine/ folder; re-logging the data, or
    --repair SOURCE_DIR, writes them again.
    """
    report = _catalog(ctx).verify(ref, repair_from=repair_from)
    if repair_from is not None:
        fixed = len(report.before.problems) - len(report.after.problems)
        if not as_json:
            out.print(f"repaired {fixed} of {len(report.before.problems)} problem(s) from "
                      f"{repair_from}: wrote {report.written} object(s) and "
                      f"{report.manifests} manifest(s)", markup=False)
        report = report.after
    if as_json:
        _emit_json(
            {
                "versions": report.versions,
                "objects": report.objects,
                "problems": [p.__dict__ for p in report.problems],
                "skipped": report.skipped,
            }
        )
    else:
        for p in report.problems:
            out.print(f"BAD {p.version} {p.path}: {p.problem}", markup=False)
        for ref in report.skipped:
            out.print(f"SKIPPED {ref}: external version (recorded from OpenLineage), not "
                      "verified", markup=False)
        verdict = "all good" if report.ok else f"{len(report.problems)} problem(s)"
        if report.skipped:
            verdict = (("no problem" if report.ok else verdict)
                       + f" in what was checked; {len(report.skipped)} external version(s) "
                       "not verified")
        out.print(f"verified {report.objects} object(s) in {report.versions} version(s): "
                  + verdict)
    if not report.ok:
        sys.exit(1)


@main.group()
def store() -> None:
    """Object store maintenance."""


@store.command()
@click.argument("old")
@click.argument("new")
@click.pass_context
@friendly
def relocate(ctx: click.Context, old: str, new: str) -> None:
    """Point the versions kept in store OLD at NEW, where their objects are now (after moving a
    store directory). The catalog's own store (``store`` beside a SQLite catalog) needs no
    relocating: it moves with the catalog."""
    counts = _catalog(ctx).relocate_store(old, new)
    out.print(f"relocated {counts['versions']} version(s) and {counts['reports']} report(s) "
              f"from {old} to {new}", markup=False)


@main.group()
def db() -> None:
    """Catalog database maintenance."""


@db.command()
@click.pass_context
@friendly
def upgrade(ctx: click.Context) -> None:
    """Run the catalog's schema migrations up to this Headwater's version."""
    from headwater.catalog import db as catalog_db
    from headwater.settings import Settings

    root = ctx.find_root().obj or {}
    settings = Settings.resolve(catalog_url=root.get("catalog_url"))
    engine = catalog_db.create_catalog_engine(settings.catalog_url)
    before = catalog_db.current_revision(engine)
    catalog_db.upgrade(engine)
    after = catalog_db.current_revision(engine)
    out.print(
        f"catalog {catalog_db.safe_url(settings.catalog_url)}: schema {before or 'empty'} → {after}"
    )


def _register_optional() -> None:
    try:
        from headwater.cli_lineage import lineage_group
    except ImportError:
        return
    for name, command in lineage_group.commands.items():
        lineage.add_command(command, name)


_register_optional()


def _register_status() -> None:
    """``headwater retract|unretract|status`` (headwater/cli_status.py)."""
    from headwater.cli_status import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_status()


def _register_rebuild() -> None:
    """``headwater rebuild`` (headwater/cli_rebuild.py, docs/rebuild.md)."""
    from headwater.cli_rebuild import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_rebuild()


def _register_serve() -> None:
    """``headwater serve`` (the catalog server; FastAPI and uvicorn are imported only when run)."""
    from headwater.server.cli import serve

    main.add_command(serve)


_register_serve()


def _register_cache() -> None:
    """``headwater cache`` (headwater/cli_cache.py: the read cache of remote stores)."""
    from headwater.cli_cache import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_cache()


def run() -> None:
    """The ``headwater`` command (console script and ``python -m headwater``).

    A CLI process is short-lived and owns its interpreter, so the objects its imports created
    (SQLAlchemy's alone are ~100k) are frozen out of the cyclic collector: they live until exit
    anyway, and scanning them again at exit cost 0.1 s per command. In-process callers of
    :func:`main` (tests, other programs) keep their collector untouched. The API, imported by
    the first command that opens the catalog, is frozen too (:func:`_import_api`).
    """
    global _OWN_PROCESS
    _OWN_PROCESS = True
    pygc.freeze()
    main()
