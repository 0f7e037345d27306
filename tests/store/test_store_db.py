from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.services import postgres_schema
from store.db import alembic_config, async_url, blocking_sqlite_engine, create_engine, migrate, ping, writer
from store.models import metadata

REPO = Path(__file__).resolve().parents[2]


# The newest migration: every run of `migrate` ends there.
HEAD = "0006"


def test_urls_take_the_async_drivers() -> None:
    assert str(async_url("sqlite:///var/h.db")) == "sqlite+aiosqlite:///var/h.db"
    assert str(async_url("sqlite:////abs/h.db")) == "sqlite+aiosqlite:////abs/h.db"
    assert str(async_url("postgresql://u@h/db")) == "postgresql+asyncpg://u@h/db"
    assert str(async_url("postgres://u@h:5433/db")) == "postgresql+asyncpg://u@h:5433/db"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db"])
def test_urls_that_cannot_hold_records_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="database"):
        async_url(url)


async def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'h.db'}")
    try:
        assert await ping(engine) >= 0
        assert (tmp_path / "a" / "b" / "h.db").exists()
    finally:
        await engine.dispose()


SQLITE_SETTINGS = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10000}  # 2: FULL


async def test_sqlite_durability_settings_hold_on_every_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        async with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                pragmas = {
                    name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one() for name in SQLITE_SETTINGS
                }
                assert pragmas == SQLITE_SETTINGS
    finally:
        await engine.dispose()


def test_the_journal_thread_engine_has_the_same_settings(tmp_path: Path) -> None:
    engine = blocking_sqlite_engine(f"sqlite:///{tmp_path / 'h.db'}")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _k, statement, *_: statements.append(statement))
    try:
        with engine.begin() as connection:
            pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one() for name in SQLITE_SETTINGS}
    finally:
        engine.dispose()
    assert pragmas == SQLITE_SETTINGS
    assert statements[0] == "BEGIN IMMEDIATE"


async def test_sqlite_writers_take_the_write_lock_when_they_begin(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("SELECT 1"))
        async with writer(engine).begin() as connection:
            await connection.execute(text("SELECT 2"))
    finally:
        await engine.dispose()
    assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN DEFERRED", "BEGIN IMMEDIATE"]


async def test_ping_measures_a_round_trip(engine: AsyncEngine) -> None:
    seconds = await ping(engine)
    assert 0 < seconds < 5


async def test_search_path_in_a_postgres_url_selects_the_schema(requires_postgres: None) -> None:
    async with postgres_schema() as url:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                schema = (await connection.execute(text("SELECT current_schema()"))).scalar_one()
            assert url.endswith(f"search_path={schema}")
        finally:
            await engine.dispose()


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migration_builds_exactly_the_models_schema(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(_schema_diff) == []
        # The comparison is not blind: a missing index is noticed.
        await connection.exec_driver_sql("DROP INDEX ix_calls_outcome")
        diff = await connection.run_sync(_schema_diff)
        await connection.rollback()
    assert [change[0] for change in diff] == ["add_index"]  # type: ignore[index]


async def test_migrate_again_changes_nothing(engine: AsyncEngine) -> None:
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as connection:
        versions = (await connection.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
    assert [v[0] for v in versions] == [HEAD]


async def test_downgrade_to_base_and_back(engine: AsyncEngine) -> None:
    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(_schema_diff) == []


async def test_several_processes_migrating_at_once_all_succeed(database_url: str) -> None:
    script = "import asyncio, sys; from store.db import migrate; asyncio.run(migrate(sys.argv[1]))"
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, database_url, cwd=REPO, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = await asyncio.gather(*(child.communicate() for child in children))
    for child, (_, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr.decode()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_schema_diff) == []
            versions = (await connection.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
        assert [v[0] for v in versions] == [HEAD]
    finally:
        await engine.dispose()
