"""SQLite on the event loop's own thread, its writers taking turns, a busy database awaited.

Stock aiosqlite hands every call (open a cursor, execute, fetch, close) to the connection's own
thread and back; a statement here takes microseconds and the hand-offs cost more than the work.
This adapter, the `module=` of every `sqlite+aiosqlite` engine `bot.db.create_engine` makes,
runs each statement on the calling (event loop) thread and reads its rows at once.

So that nothing ever blocks the loop, SQLite's busy timeout is 0 and a busy answer is retried
after an `asyncio.sleep` that doubles from 1 ms to 50 ms, for at most `timeout` seconds (the
engine's `connect_args`, 30 s by default), then a clear `OperationalError` is raised.

Transactions are those Python's sqlite3 makes by default (reads before a transaction's first
write run on their own; the first INSERT/UPDATE/DELETE/REPLACE begins it), with two changes:
DDL and SAVEPOINT begin it too, and it begins with BEGIN IMMEDIATE once the process's writer
lock for that database file is taken (an `asyncio.Lock`, first come first served). Writers of
one process thus never meet SQLite's lock, nor its BUSY_SNAPSHOT; a writer of another process
is waited for asynchronously. The lock is given back when the transaction ends.

A `:memory:` database is one connection shared by every session (StaticPool): there the
transaction belongs to the task that began it; another task's write waits for its end, and
another task's COMMIT or ROLLBACK (a read-only session closing) leaves it alone instead of
ending, or undoing, the writer's work half-way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy.util.concurrency import await_

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30.0  # the longest a statement waits for a busy database, unless told
FIRST_PAUSE = 0.001
LONGEST_PAUSE = 0.05
LONG_HOLD_SECONDS = 1.0  # a write transaction open longer than this is logged
SQLITE_BUSY_SNAPSHOT = 517  # SQLITE_BUSY | (2 << 8): a stale read snapshot, waiting won't help

_FIRST_WORD = re.compile(r"\s*(\w+)")
_DML = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_BEGINS_WRITE = frozenset(
    {"INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT", "CREATE", "DROP", "ALTER"}
)
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_LONG_EXPECTED: ContextVar[bool] = ContextVar("sqlite_long_writes_expected", default=False)
Outcome = tuple[Any, int, int, list[Any]]
T = TypeVar("T")


class _Done:
    """An awaitable that is done at once: one await per statement, as SQLAlchemy requires."""

    def __await__(self) -> Any:
        """Finish without suspending."""
        return iter(())


_DONE = _Done()


def begins_write(operation: str) -> bool:
    """Tell whether a statement writes (so must run inside a write transaction)."""
    match = _FIRST_WORD.match(operation)
    if match is None:
        return False
    word = match.group(1).upper()
    if word == "WITH":
        return _DML.search(operation) is not None
    return word in _BEGINS_WRITE


def is_busy(error: BaseException) -> bool:
    """Tell whether an error is SQLite's 'database is locked' (busy)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_BUSY)
    return isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error)


@contextmanager
def long_writes_expected() -> Iterator[None]:
    """Log no long write transaction made within (a seed that is long by design)."""
    token = _LONG_EXPECTED.set(True)
    try:
        yield
    finally:
        _LONG_EXPECTED.reset(token)


def _writer_lock(key: str) -> asyncio.Lock:
    """Return this event loop's writer lock for a database file."""
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


def _current_task() -> asyncio.Task[Any] | None:
    """Return the running task, or None outside one."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


async def _acquire(lock: asyncio.Lock, seconds: float) -> None:
    """Take the lock, waiting at most `seconds`."""
    if not lock.locked():
        await lock.acquire()
        return
    async with asyncio.timeout(seconds):
        await lock.acquire()


class LoopCursor:
    """A cursor whose statements run at once on the calling thread, rows read in full."""

    arraysize = 1

    def __init__(self, connection: LoopConnection) -> None:
        """Make a cursor on `connection`."""
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def execute(self, operation: str, parameters: Any = None) -> LoopCursor:
        """Execute one statement."""
        self._keep(self._connection.run(operation, parameters, many=False))
        return self

    def executemany(self, operation: str, seq_of_parameters: Any) -> LoopCursor:
        """Execute one statement for many parameter sets."""
        self._keep(self._connection.run(operation, seq_of_parameters, many=True))
        return self

    def _keep(self, outcome: Outcome) -> None:
        """Keep what a statement gave back."""
        self.description, self.rowcount, self.lastrowid, rows = outcome
        self._rows = deque(rows)

    def fetchone(self) -> Any:
        """Return the next row, or None."""
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """Return up to `size` rows."""
        size = self.arraysize if size is None else size
        rows = self._rows
        return [rows.popleft() for _ in range(min(size, len(rows)))]

    def fetchall(self) -> list[Any]:
        """Return the rows left."""
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def _async_soft_close(self) -> None:
        """Nothing to do (SQLAlchemy's async results call it): the rows are all here."""

    def setinputsizes(self, *_args: Any) -> None:
        """Ignore (DBAPI)."""

    def close(self) -> None:
        """Drop the rows not read."""
        self._rows.clear()


class LoopConnection:
    """A sqlite3 connection used from the event loop, in transactions as the module says."""

    def __init__(self, conn: sqlite3.Connection, *, key: str | None, timeout: float) -> None:
        """Wrap `conn` (autocommit at the sqlite3 level); `key` names its file, None if shared."""
        self._connection = conn
        self._key = key
        self._shared = key is None
        self._own_lock: asyncio.Lock | None = None
        self.timeout = timeout
        self.isolation_level: str | None = ""  # "" transactions as sqlite3's; None autocommit
        self._held: asyncio.Lock | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._since = 0.0
        self._first = ""

    # the DBAPI ----------------------------------------------------------------

    def cursor(self, server_side: bool = False) -> LoopCursor:
        """Return a cursor (rows are always read in full)."""
        return LoopCursor(self)

    def commit(self) -> None:
        """Commit this session's transaction."""
        if self._conn_in_transaction() and self._mine():
            self._retry(lambda: self._connection.execute("COMMIT"), time.monotonic())
        self._settle()

    def rollback(self) -> None:
        """Roll back this session's transaction."""
        if self._conn_in_transaction() and self._mine():
            self._connection.execute("ROLLBACK")
        self._settle()

    def close(self) -> None:
        """Close the connection, giving back the writer lock if held."""
        self._release()
        self._connection.close()

    def terminate(self) -> None:
        """Close the connection at once."""
        self.close()

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        """Register an SQL function."""
        self._connection.create_function(*args, **kwargs)

    # statements ---------------------------------------------------------------

    def run(self, operation: str, parameters: Any, *, many: bool) -> Outcome:
        """Run one statement, beginning a write transaction first when it writes."""
        await_(_DONE)  # AsyncConnection.execute insists the driver awaited something
        started = time.monotonic()
        # a write with no transaction open, or (a shared connection) another task's open:
        # wait for the writer lock, then begin
        if (
            self.isolation_level is not None
            and begins_write(operation)
            and (not self._conn_in_transaction() or not self._mine())
        ):
            self._begin(operation, started)
        try:
            return self._retry(lambda: self._step(operation, parameters, many), started)
        finally:
            self._settle()

    def _step(self, operation: str, parameters: Any, many: bool) -> Outcome:
        """Execute and read every row."""
        cursor = self._connection.cursor()
        try:
            if many:
                cursor.executemany(operation, parameters)
            elif parameters is None:
                cursor.execute(operation)
            else:
                cursor.execute(operation, parameters)
            description = cursor.description
            rows = cursor.fetchall() if description else []
            return description, cursor.rowcount, cursor.lastrowid or 0, rows
        finally:
            cursor.close()

    def _retry(self, step: Callable[[], T], started: float) -> T:
        """Run `step`, awaiting a busy database between tries, up to the timeout."""
        pause = FIRST_PAUSE
        while True:
            try:
                return step()
            except sqlite3.OperationalError as error:
                if not is_busy(error) or getattr(error, "sqlite_errorcode", 0) == (
                    SQLITE_BUSY_SNAPSHOT
                ):
                    raise
                waited = time.monotonic() - started
                if waited >= self.timeout:
                    raise sqlite3.OperationalError(
                        f"database is locked: another process kept it for {waited:.1f} s "
                        f"(the limit is {self.timeout:g} s)"
                    ) from error
                await_(asyncio.sleep(min(pause, self.timeout - waited)))
                pause = min(pause * 2, LONGEST_PAUSE)

    # the writer lock ------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        """Return the lock writers of this database take turns on."""
        if self._key is not None:
            return _writer_lock(self._key)
        if self._own_lock is None:
            self._own_lock = asyncio.Lock()
        return self._own_lock

    def _begin(self, operation: str, started: float) -> None:
        """Take the writer lock, then BEGIN IMMEDIATE (awaiting another process's writer)."""
        lock = self._lock()
        try:
            await_(_acquire(lock, self.timeout))
        except TimeoutError:
            raise sqlite3.OperationalError(
                f"database is locked: this process's writers kept it for {self.timeout:g} s "
                "(a transaction held open too long?)"
            ) from None
        self._held, self._owner = lock, _current_task()
        self._since, self._first = time.monotonic(), operation
        try:
            self._retry(lambda: self._connection.execute("BEGIN IMMEDIATE"), started)
        except BaseException:
            self._release()
            raise

    def _conn_in_transaction(self) -> bool:
        """Tell whether SQLite has a transaction open on this connection."""
        return self._connection.in_transaction

    def _mine(self) -> bool:
        """Tell whether the open transaction is the calling session's."""
        return not self._shared or self._held is None or self._owner is _current_task()

    def _settle(self) -> None:
        """Give the writer lock back once the transaction has ended."""
        if self._held is not None and not self._connection.in_transaction:
            self._release()

    def _release(self) -> None:
        """Give the writer lock back."""
        lock, self._held, self._owner = self._held, None, None
        if lock is None:
            return
        held = time.monotonic() - self._since
        if held > LONG_HOLD_SECONDS and not _LONG_EXPECTED.get():
            log.warning("SQLite write transaction open %.1f s: %.120s", held, self._first)
        if lock.locked():
            lock.release()


class LoopDbapi:
    """The DBAPI module SQLAlchemy's aiosqlite dialect is given: sqlite3, run on the loop."""

    paramstyle = "qmark"
    has_stop = True
    aiosqlite = None
    sqlite = sqlite3
    Error = sqlite3.Error
    DatabaseError = sqlite3.DatabaseError
    IntegrityError = sqlite3.IntegrityError
    NotSupportedError = sqlite3.NotSupportedError
    OperationalError = sqlite3.OperationalError
    ProgrammingError = sqlite3.ProgrammingError
    InterfaceError = sqlite3.InterfaceError
    InternalError = sqlite3.InternalError
    DataError = sqlite3.DataError
    Warning = sqlite3.Warning
    sqlite_version = sqlite3.sqlite_version
    sqlite_version_info = sqlite3.sqlite_version_info
    PARSE_COLNAMES = sqlite3.PARSE_COLNAMES
    PARSE_DECLTYPES = sqlite3.PARSE_DECLTYPES
    Binary = sqlite3.Binary

    def connect(self, database: str, *, timeout: float = TIMEOUT_SECONDS, **kw: Any) -> Any:
        """Open `database` for use from the loop; `timeout` bounds the wait for a busy one."""
        kw.pop("async_creator_fn", None)
        kw.pop("check_same_thread", None)
        kw.pop("isolation_level", None)
        conn = sqlite3.connect(
            database, timeout=0, isolation_level=None, check_same_thread=False, **kw
        )
        return LoopConnection(conn, key=_file_key(database, bool(kw.get("uri"))), timeout=timeout)


def _file_key(database: str, uri: bool) -> str | None:
    """Name a database file for its writer lock; None for a private in-memory database."""
    if database in ("", ":memory:"):
        return None
    if uri:
        if "mode=memory" in database and "cache=shared" not in database:
            return None
        return database
    return os.path.realpath(database)


def dbapi() -> LoopDbapi:
    """Return the module to give `create_async_engine(module=...)` for aiosqlite URLs."""
    return LoopDbapi()


__all__: Sequence[str] = (
    "LoopConnection",
    "LoopCursor",
    "LoopDbapi",
    "begins_write",
    "dbapi",
    "long_writes_expected",
)
