"""Database engines for the call record: URL forms, SQLite durability, schema migrations.

Accepted URLs: ``sqlite:///path/to/file.db`` and ``postgresql://user@host/db``
(also ``postgres://``). A PostgreSQL URL may name the schema to use with
``?search_path=name``; ``?sslmode=`` is understood as libpq spells it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS = (
    # busy_timeout first: switching to WAL needs a lock another process may hold.
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode=WAL",
    # Records are pay data: a commit must survive power loss, not only a killed process.
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)

# Execution option naming how a transaction starts on SQLite (DEFERRED, IMMEDIATE, EXCLUSIVE).
SQLITE_BEGIN_OPTION = "hotline_sqlite_begin"
# A deferred SQLite transaction that reads and then writes can fail at once with
# "database is locked" when another connection wrote meanwhile (the busy timeout
# does not cover that upgrade); writers take the lock up front and wait instead.
WRITER_OPTIONS = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}
_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})

_SQLITE_NAMES = frozenset({"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"})
_POSTGRES_NAMES = frozenset({"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg2"})


def async_url(url: str | URL) -> URL:
    """The asyncio-driver form of a database URL."""
    parsed = make_url(url)
    if parsed.drivername in _SQLITE_NAMES:
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(f"{parsed!r}: call records need a database file, not an in-memory database")
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername in _POSTGRES_NAMES:
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL {parsed!r}: use sqlite:///path or postgresql://user@host/db")


def create_engine(url: str | URL) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        return _sqlite_engine(target)
    return _postgres_engine(target)


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, but its SQLite transactions take the write lock when they begin."""
    return engine.execution_options(**WRITER_OPTIONS)


def blocking_sqlite_engine(url: str | URL) -> Engine:
    """A synchronous (pysqlite) writer engine on the same file with the same settings, for a worker thread.

    Through aiosqlite every statement costs a round trip to its thread; a batch
    run entirely in one thread costs one.
    """
    target = async_url(url)
    if target.get_backend_name() != "sqlite":
        raise ValueError(f"{target!r} is not a SQLite database")
    engine = create_sync_engine(target.set(drivername="sqlite+pysqlite"), execution_options=WRITER_OPTIONS)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


async def ping(engine: AsyncEngine) -> float:
    """Seconds for one round trip to the database, connection checkout included."""
    started = time.perf_counter()
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return time.perf_counter() - started


async def migrate(engine_or_url: AsyncEngine | str) -> None:
    """Bring the schema to the newest revision. Safe on every start and from several processes at once."""
    owned = isinstance(engine_or_url, str)
    engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        async with writer(engine).connect() as connection:
            await connection.run_sync(_upgrade_to_head)
    finally:
        if owned:
            await engine.dispose()


def alembic_config() -> Config:
    config = Config()
    # Config values go through configparser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def _upgrade_to_head(connection: Connection) -> None:
    # One transaction around the whole upgrade, begun before Alembic looks at the
    # version table: concurrent migrators queue on the lock, and the later ones find
    # the schema current. Both backends have transactional DDL.
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('hotline-bridge migrate ' || current_schema()))")
            )
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _sqlite_engine(url: URL) -> AsyncEngine:
    if url.database is not None:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # The driver's own transaction handling skips BEGIN before reads and DDL;
    # _on_sqlite_begin takes over so every transaction really is one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
    if mode not in _SQLITE_BEGIN_MODES:
        raise ValueError(f"{SQLITE_BEGIN_OPTION}={mode!r}: expected one of {sorted(_SQLITE_BEGIN_MODES)}")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _postgres_engine(url: URL) -> AsyncEngine:
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    search_path = query.pop("search_path", None)
    if search_path is not None:
        connect_args["server_settings"] = {"search_path": _single(search_path)}
    sslmode = query.pop("sslmode", None)
    if sslmode is not None:
        connect_args["ssl"] = _single(sslmode)
    return create_async_engine(
        url.set(query=query),
        connect_args=connect_args,
        # The server may restart under a long-running bridge; check before reuse.
        pool_pre_ping=True,
    )


def _single(value: str | tuple[str, ...]) -> str:
    if isinstance(value, tuple):
        if len(value) != 1:
            raise ValueError(f"expected one value, got {value!r}")
        return value[0]
    return value
