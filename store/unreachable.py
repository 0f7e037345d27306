"""Telling "the database is away" from "the database refused this write".

The first is nobody's fault and passes (the call records buffer locally and
catch up later); the second is a bug or a broken invariant and must reach the
caller. When in doubt, an error is the write's: buffering a write the
database would refuse only delays its refusal to the replay.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc

# SQLSTATE classes: connection exception, insufficient resources, operator
# intervention (shutdown, cannot connect now), system error (I/O).
_UNREACHABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
# SQLite says everything with OperationalError, "no such table" included: only these are the file's state.
_SQLITE_UNREACHABLE = (
    "unable to open database file",
    "disk i/o error",
    "database is locked",
    "database or disk is full",
)
_REFUSALS = (exc.IntegrityError, exc.ProgrammingError, exc.DataError, exc.NotSupportedError)


class DatabaseUnavailable(RuntimeError):
    """A read could not reach the database (the error it got is its cause)."""


@contextlib.contextmanager
def needs_database(what: str) -> Iterator[None]:
    """Turn an unreachable database under what a person asked for (a read, or a write that is theirs to
    retry) into DatabaseUnavailable; other errors pass as they are."""
    try:
        yield
    except Exception as error:
        if unreachable(error):
            raise DatabaseUnavailable(f"{what}: the database is unreachable ({type(error).__name__})") from error
        raise


def unreachable(error: BaseException) -> bool:
    """True when `error` says the database could not be reached or stopped answering."""
    if isinstance(error, OSError | TimeoutError | exc.TimeoutError | exc.DisconnectionError):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return _sqlite_unreachable(error)
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error, _REFUSALS):
        return False
    if error.statement is None:
        # Raised while connecting, before any statement of ours ran.
        return True
    if isinstance(error, exc.InterfaceError):
        return True
    state = getattr(error.orig, "sqlstate", None)
    if isinstance(state, str) and state[:2] in _UNREACHABLE_SQLSTATE_CLASSES:
        return True
    return isinstance(error.orig, sqlite3.OperationalError) and _sqlite_unreachable(error.orig)


def _sqlite_unreachable(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return any(known in message for known in _SQLITE_UNREACHABLE)
