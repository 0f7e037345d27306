"""A database outage, as the call records' writer sees it (imported by the outage tests and their child)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError


def unreachable_error(why: str) -> OperationalError:
    # No statement: raised while getting a connection, as a refused or dropped connection is.
    return OperationalError(None, None, ConnectionRefusedError(why))


class Outage:
    """While `down`, every transaction of `engine` fails to begin; `commit_then_fail` commits and then
    reports the connection lost (the write is stored, its caller told it failed)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.down = False
        self.commit_then_fail = 0
        self.refused = 0
        event.listen(engine, "begin", self._begin, insert=True)
        event.listen(engine, "commit", self._commit)

    def remove(self) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "commit", self._commit)

    def _begin(self, _connection: Connection) -> None:
        if self.down:
            self.refused += 1
            raise unreachable_error("the database is down (simulated)")

    def _commit(self, connection: Connection) -> None:
        if self.commit_then_fail > 0:
            self.commit_then_fail -= 1
            dbapi: Any = connection.connection.dbapi_connection
            dbapi.commit()
            raise unreachable_error("connection lost after COMMIT (simulated)")


async def kill9_once_buffered(script: Path, *args: str, cwd: Path) -> tuple[int | None, bytes, str]:
    """Run a writer child until it prints ``buffered N``, then ``kill -9`` it.

    Returns its exit status, that line, and everything else it printed (for the assertion's message).
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output: list[bytes] = []
    line = b""
    try:
        assert child.stdout is not None
        async with asyncio.timeout(60):
            # Its log lines come first, on the same stream.
            while (line := await child.stdout.readline()) and not line.startswith(b"buffered "):
                output.append(line)
    finally:
        if child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
        _, stderr = await child.communicate()
    return child.returncode, line, (b"".join(output) + stderr).decode()
