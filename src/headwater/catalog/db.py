"""Connecting to the catalog database and keeping its schema current.

SQLite (the embedded default) is opened in WAL mode with a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE`` so two processes never deadlock upgrading a read lock to a write
lock; PostgreSQL goes through psycopg 3. Schema changes are Alembic migrations shipped inside the
package, so ``headwater db upgrade`` works from an installed wheel.

Alembic is imported only to migrate: opening a catalog that is current reads the
``alembic_version`` row with one query and compares it with :data:`HEAD_REVISION` (a test keeps
that constant equal to the migrations' head), which keeps every CLI command ~0.1 s faster.

Migrations are serialised across processes (a PostgreSQL advisory lock; a ``flock`` on a file
beside a SQLite catalog), and whoever gets the lock looks at the revision again: eight Airflow
tasks opening one brand-new catalog at once migrate it once, instead of seven of them failing
with a duplicate-table error. A first migration is bracketed by a marker table, so one that was
interrupted (SQLite's DDL is not transactional under Alembic) is reported as a half-initialised
catalog that ``headwater db upgrade`` recreates, not as an "older schema".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

from headwater.errors import CatalogSchemaOutdated, CatalogUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
#: The newest migration's revision; ``tests/test_migrations.py`` checks it against Alembic's head.
HEAD_REVISION = "0011"


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable catalog URL>"


def normalise_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def check_sqlite_folder(url: str) -> None:
    """Refuse a SQLite catalog URL whose folder does not exist.

    Opening one would create the folders and a new, empty catalog: a typo in ``--catalog``
    looked like a catalog whose datasets were all gone. A new file in an existing folder is
    fine (that is how a catalog starts); the default catalog under ``~/.headwater`` does not go
    through here and still makes its folder. Raises :class:`CatalogUnavailable`.
    """
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        return  # create_catalog_engine says what is wrong with it
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return
    folder = Path(database).expanduser().parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise CatalogUnavailable(
            f"catalog folder {folder} {what} (catalog URL {safe_url(url)}); create the folder "
            "first to start a new catalog there, or correct the path"
        )


def create_catalog_engine(url: str) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CatalogUnavailable(f"invalid catalog URL {safe_url(url)!r}: {exc}") from exc
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise CatalogUnavailable(
            f"no driver for catalog URL {safe_url(url)!r}: for PostgreSQL install "
            "'headwater[postgres]' (psycopg 3)"
        ) from exc
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The head of the shipped migrations, as Alembic computes it (slow: parses every script)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("the catalog migrations have no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: no ``alembic_version`` table or no row)."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            try:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            except ProgrammingError:  # dropped between the two statements
                return None
    except OperationalError as exc:
        raise CatalogUnavailable(
            f"cannot reach the catalog at {safe_url(str(engine.url))}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
        ) from exc
    if len(rows) > 1:
        raise CatalogSchemaOutdated(
            f"the catalog at {safe_url(str(engine.url))} has {len(rows)} schema revisions "
            "(branched migrations); Headwater's migrations are linear — repair alembic_version"
        )
    return str(rows[0][0]) if rows else None


#: A table that exists only while a catalog's first migration runs (see the module docstring).
INIT_MARKER = "headwater_initialising"
#: First half of the PostgreSQL advisory-lock key of migrations; the second is the schema's hash,
#: so catalogs in different schemas of one database do not wait for each other.
_PG_LOCK_CLASS = 0x68770001


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the catalog's migration lock (other processes migrating the same catalog wait)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = {"c": _PG_LOCK_CLASS}
            conn.execute(text("SELECT pg_advisory_lock(:c, hashtext(current_schema()))"), key)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:c, hashtext(current_schema()))"),
                             key)
                conn.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield  # one process only (or nothing to lock a file beside)
        return
    import fcntl

    # a file of its own: a lock on the database file would mix with SQLite's own POSIX locks
    fd = os.open(f"{Path(database).expanduser()}-migrate.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _has_table(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return inspect(conn).has_table(name)


def _migrate(engine: Engine, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def _create_from_scratch(engine: Engine, revision: str) -> None:
    """Migrate a catalog that holds no data, inside the marker that says so until it is done.

    A marker left by an interrupted first migration means everything there is that migration's
    partial work (no Headwater opens a catalog while the marker exists): it is dropped first.
    """
    from headwater.catalog.models import Base

    with engine.begin() as conn:
        if inspect(conn).has_table(INIT_MARKER):
            Base.metadata.drop_all(conn, checkfirst=True)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        else:
            conn.execute(text(f"CREATE TABLE {INIT_MARKER} (started INTEGER)"))
    _migrate(engine, revision)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {INIT_MARKER}"))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (``headwater db upgrade``); recreate a catalog whose
    first migration was interrupted. Serialised with other processes by :func:`migration_lock`."""
    with migration_lock(engine):
        if _has_table(engine, INIT_MARKER) or is_empty(engine):
            _create_from_scratch(engine, revision)
        else:
            _migrate(engine, revision)


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not inspect(conn).get_table_names()


def check_schema(engine: Engine, *, auto_migrate: bool) -> None:
    """Raise CatalogSchemaOutdated unless the database is at the head revision.

    A brand-new empty database is migrated on the spot when ``auto_migrate`` is set, so the
    embedded default just works; an existing older one is never changed behind the user's back.
    """
    head = HEAD_REVISION
    if current_revision(engine) == head:
        return
    with migration_lock(engine):
        # another process may have migrated it while this one waited for the lock
        current = current_revision(engine)
        if current == head:
            return
        half_initialised = _has_table(engine, INIT_MARKER)
        if current is None and auto_migrate and is_empty(engine):
            _create_from_scratch(engine, "head")
            return
    where = safe_url(str(engine.url))
    if half_initialised:
        raise CatalogSchemaOutdated(
            f"the catalog at {where} is half-initialised: its first migration was interrupted "
            f"(at schema revision {current or 'none'}) and it holds no data yet; run "
            "`headwater db upgrade` to create it again"
        )
    if current is None:
        raise CatalogSchemaOutdated(
            f"the database at {where} is not a Headwater catalog (no schema revision); "
            "run `headwater db upgrade` to create one"
        )
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise CatalogSchemaOutdated(
            f"the catalog at {where} is at schema revision {current}, newer than this Headwater "
            f"knows (head {head}); upgrade Headwater"
        )
    raise CatalogSchemaOutdated(
        f"the catalog at {where} is at schema revision {current}, older than {head}; "
        "run `headwater db upgrade`"
    )
