"""Database engines and migrations of the gateway.

SQLite (WAL, ``synchronous=FULL``) is the embedded default, PostgreSQL (psycopg 3) the production
store. The schema is created and upgraded only by the Alembic migrations shipped in
``gateway/migrations``; :func:`upgrade_database` runs them programmatically and is idempotent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from distillscope.errors import ConfigError, GatewayError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Any fixed 64-bit number; serialises concurrent `upgrade_database` calls on PostgreSQL.
_PG_MIGRATION_LOCK = 0x64_73_63_6F_70_65


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """Normalise a datetime read from the database (SQLite returns naive values) to aware UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI objects
        # Take transaction control away from the sqlite3 module (see SQLAlchemy's SQLite docs):
        # BEGIN is emitted by the "begin" hook below, so DDL is transactional and a limiter can
        # ask for BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _configure_async_commit(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI objects
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO OFF")
        dbapi_connection.commit()


def make_engine(url: str, *, durable: bool = True) -> Engine:
    """Create the engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    SQLite connections use WAL, ``synchronous=FULL`` (a committed row survives a crash and a
    power loss), foreign keys and a busy timeout; a plain ``postgresql://`` URL is mapped to
    psycopg 3. ``durable=False`` uses ``synchronous=NORMAL`` on SQLite and
    ``synchronous_commit=off`` on PostgreSQL: still consistent, but the newest commits may be lost
    on a crash of the machine or server; only the rate limiter's own engine uses it.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} is not a valid SQLAlchemy URL",
                          hint="use sqlite:///path/to/gateway.sqlite or postgresql+psycopg://user@host/db") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine, "FULL" if durable else "NORMAL")
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() in ("psycopg2", "pg8000", "asyncpg"):
            raise ConfigError(f"database driver {parsed.drivername!r} is not supported",
                              hint="use postgresql+psycopg:// (psycopg 3)")
        parsed = parsed.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(parsed, pool_pre_ping=True)
        if not durable:
            _configure_async_commit(engine)
        return engine
    raise ConfigError(f"database backend {backend!r} (from {parsed.render_as_string(hide_password=True)}) "
                      "is not supported", hint="use sqlite:///... or postgresql+psycopg://...")


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration pointing at the shipped migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_database(engine: Engine) -> None:
    """Bring the schema to the newest migration (``alembic upgrade head``); a no-op when current.

    Safe to call from several workers at once: PostgreSQL takes an advisory lock, SQLite a
    write lock (``BEGIN IMMEDIATE``) for the whole upgrade.
    """
    try:
        with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                command.upgrade(alembic_config(conn), "head")
    except CommandError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise GatewayError(f"the gateway database {url} has a schema this version does not know ({exc})",
                           hint="upgrade distillscope, or point DISTILLSCOPE_DATABASE_URL at another database",
                           code="database_schema_unknown") from exc
    except SQLAlchemyError as exc:
        url = engine.url.render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise GatewayError(f"cannot migrate the gateway database {url}: {reason}",
                           hint="check the database URL and that the server is reachable",
                           code="database_unavailable") from exc
    log.info("gateway database %s is at the newest schema", engine.url.render_as_string(hide_password=True))
