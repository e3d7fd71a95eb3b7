"""``headwater cache`` (the read cache for remote stores, docs/performance.md, ADR 0005).

    headwater cache [--json]     where it is, its size and bound, hits and misses so far
    headwater cache clear        delete every cached object (the stores are not touched)

The cache needs no catalog: its place and bound come from ``HEADWATER_CACHE`` and
``HEADWATER_CACHE_SIZE`` (or ``$HEADWATER_HOME/cache``, 10 GiB).
"""

from __future__ import annotations

from typing import Any

import click


def _cli() -> Any:
    from headwater import cli  # imported late: cli imports this module to register it

    return cli


def _open() -> Any:
    from headwater.settings import Settings
    from headwater.store.cache import ReadCache

    settings = Settings.resolve()
    if settings.cache_path is None:
        return None
    return ReadCache(settings.cache_path, settings.cache_size)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def cache(ctx: click.Context, as_json: bool) -> None:
    """The local read cache of remote (S3/GCS) stores: size, bound, hits."""
    if ctx.invoked_subcommand is not None:
        return
    cli = _cli()
    rc = cli.friendly(_open)()
    if rc is None:
        if as_json:
            cli._emit_json({"enabled": False})
        else:
            cli.out.print("read cache: off (HEADWATER_CACHE=off)")
        return
    u = rc.usage()
    looked = u.stats.hits + u.stats.misses
    if as_json:
        cli._emit_json({"enabled": True, "path": u.root, "max_bytes": u.max_bytes,
                        "objects": u.objects, "bytes": u.bytes, "hits": u.stats.hits,
                        "misses": u.stats.misses, "hit_bytes": u.stats.hit_bytes,
                        "miss_bytes": u.stats.miss_bytes, "evicted": u.stats.evicted})
        return
    rate = f" ({100 * u.stats.hits / looked:.1f} % hits)" if looked else ""
    cli.out.print(f"read cache: {u.root}")
    cli.out.print(f"size: {_mb(u.bytes)} in {u.objects:,} files (objects and pack ranges), "
                  f"bound {_mb(u.max_bytes)}")
    cli.out.print(f"hits: {u.stats.hits:,} ({_mb(u.stats.hit_bytes)}), misses: "
                  f"{u.stats.misses:,} ({_mb(u.stats.miss_bytes)}){rate}, "
                  f"evicted: {u.stats.evicted:,}")


@cache.command()
def clear() -> None:
    """Delete every cached object and the hit counts."""
    cli = _cli()
    rc = cli.friendly(_open)()
    if rc is None:
        cli.out.print("read cache: off (HEADWATER_CACHE=off)")
        return
    n = rc.clear()
    cli.out.print(f"deleted {n:,} cached object(s) from {rc.root}")


COMMANDS = [cache]
