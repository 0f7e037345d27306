"""A database outage, as the call records' writer sees it (imported by the outage tests and their child)."""

from __future__ import annotations

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
