"""Alembic environment for the call-record schema.

store.db.migrate() hands over a connection already inside a locked
transaction (config.attributes["connection"]). The alembic command line
(store/migrations/alembic.ini) has none: it connects to HOTLINE_DATABASE_URL
with the async driver and runs the same code through ``run_sync``.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from store.db import async_url, create_engine
from store.models import metadata

DEFAULT_URL = "sqlite:///var/hotline.db"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _command_line_url() -> str:
    return os.environ.get("HOTLINE_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url", DEFAULT_URL)


def _main() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    if context.config.config_file_name is not None:
        fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    url = _command_line_url()
    if context.is_offline_mode():
        context.configure(url=async_url(url), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_from_url(url))


_main()
