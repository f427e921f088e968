"""SQLite through aiosqlite with one trip to its thread per statement, not three or four.

aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes a call
each for opening a cursor, executing, fetching the rows and closing the cursor: four hand-offs
to the thread and back for a SELECT, three for an UPDATE. Each costs the event loop a wake-up and
a turn of the interpreter lock, and together they were most of what a handled update cost on
SQLite. Here one function does all four on the thread and hands back the rows, the description,
the row count and the last row id. A connection given back to the pool outside a transaction is
not rolled back (a trip for nothing).

Used by `bot.db.create_engine` for every `sqlite+aiosqlite` URL (`module=` of the engine);
server-side cursors (streaming results) keep SQLAlchemy's own path.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

Outcome = tuple[Any, int, int | None, list[Any]]


def _execute(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """Run one statement on the connection's thread: description, row count, last id, rows."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor that opens, executes, fetches and closes on the thread in one call."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # no aiosqlite cursor is opened (SQLAlchemy's opens one here: a trip)
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._rows = deque()
        self._soft_closed_memoized = EMPTY_DICT
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        """Return the last statement's column description."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Return the rows the last statement changed."""
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        """Return the id of the last row inserted."""
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        """Return how many rows fetchmany gives by default."""
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        """Ignore: every row is fetched at once."""

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        """Execute one statement in one trip to the thread."""
        try:
            return await_(self._run(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        """Execute one statement for many parameter sets in one trip to the thread."""
        try:
            return await_(self._run(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        """Run the statement on the thread; keep what it returned."""
        conn: Any = self._connection  # an aiosqlite.Connection: its private queue to the thread
        async with self._adapt_connection._execute_mutex:
            outcome: Outcome = await conn._execute(
                _execute, conn._conn, operation, parameters, many
            )
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = deque(rows)

    async def _async_soft_close(self) -> None:
        """Nothing to close on the thread (the rows are already here)."""

    def close(self) -> None:
        """Drop the rows not read."""
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """An aiosqlite connection whose cursors make one trip per statement."""

    __slots__ = ()
    _cursor_cls = OneTripCursor

    def rollback(self) -> None:
        """Roll back, unless no transaction is open (the pool's reset then costs no trip)."""
        if self._connection._connection and self._connection.in_transaction:
            super().rollback()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI adapter, handing out one-trip connections."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        """Connect as SQLAlchemy does, with one-trip cursors."""
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDbapi:
    """Return the module to give `create_async_engine(module=...)` for aiosqlite URLs."""
    return OneTripDbapi(aiosqlite, sqlite3)
