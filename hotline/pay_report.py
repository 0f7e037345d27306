"""`hotline pay`: an agent's statement for a period, from the call records and the rate cards."""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

from config.settings import Settings
from dialplan.tenant import Tenant
from store.db import create_engine, migrate
from store.pay_statements import agent_statements, write_statements
from store.records import CallRecords


async def print_pay(
    settings: Settings, tenant: Tenant, *, agent: str, since: datetime, until: datetime, as_csv: bool, out: TextIO
) -> int:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        found = await agent_statements(CallRecords(engine), tenant, agent, since, until)
    finally:
        await engine.dispose()
    write_statements(found, out, as_csv=as_csv)
    return 0
