"""The two database engines behind one connection interface: SQLite (the embedded default) and PostgreSQL.

The ledger speaks one dialect, SQLite's, through the API of Python's `sqlite3` (`execute(sql, params)`
returning a cursor, `executemany`, `in_transaction`, explicit `BEGIN`/`COMMIT`, autocommit otherwise).
On PostgreSQL, `PgConnection` gives that same API over psycopg 3, and the few SQLite-isms the queries
keep are translated here and nowhere else (`translate`):

- `?` placeholders become `%s` (and a literal `%` becomes `%%`);
- `INSERT OR IGNORE INTO t ...` becomes `INSERT INTO t ... ON CONFLICT DO NOTHING`;
- `BEGIN IMMEDIATE` becomes `BEGIN` (writers take turns on the log's head row instead, see
  `TileLog.begin`);
- `json_each(?)` becomes `json_array_elements_text(?::json)` (a list of keys in one parameter).

The schema is translated once (`ddl`): BLOB is BYTEA, INTEGER is BIGINT, TEXT is TEXT COLLATE "C" (so
text sorts by bytes, as in SQLite), and WITHOUT ROWID goes. Everything else is written to run on both:
quoted `"inner"`, no bare columns beside an aggregate, `RETURNING` for generated ids.

Errors: psycopg's are raised as sqlite3's, chained (`IntegrityError` for a constraint or a trigger's
refusal, `OperationalError` for a server that is down or a connection that was lost, `DatabaseError`
otherwise), so each `except sqlite3.Error` of the ledger means "the database failed" on either engine.

A lost connection is made again at the next statement outside a transaction (a read-only session
sends the statement that found it lost again, once: a read is safe to repeat); inside a transaction,
every statement fails until the caller's ROLLBACK (nothing of it was committed, and it must not go on
in a new session as if it had been).

Readers share a pool of sessions (`ReadPool`, psycopg_pool): a statement borrows one for itself; the log's
writer keeps one session of its own, which holds the head row's lock through a batch.

Not here: the log's locking protocol (`ledger.storage.log`) and the PostgreSQL schema's triggers
(`ledger.storage.schema`). psycopg is imported only when a PostgreSQL database is opened.
"""

from __future__ import annotations

import functools
import itertools
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ledger.config import database_problem
from ledger.errors import LedgerError

if TYPE_CHECKING:
    import psycopg

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class Cursor(Protocol):
    """What the ledger uses of a cursor (sqlite3's and psycopg's both are one)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the ledger uses of a connection: `sqlite3.Connection`, or `PgConnection`."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...


def is_postgresql(database: str) -> bool:
    """Does this `database` setting name a PostgreSQL database (rather than the SQLite file)?"""
    return database.startswith(("postgresql://", "postgres://"))


def check_url(url: str) -> None:
    """Refuse a PostgreSQL URL that is not one, or that holds a password (config.toml is no place for it).

    Raises:
        LedgerError: code "bad_config", saying what to do instead.
    """
    why = database_problem(url)
    if why:
        raise LedgerError(f"database: {why}", code="bad_config")


def redact(url: str) -> str:
    """The URL as a message may show it (it holds no password, see `check_url`; the query is dropped)."""
    return url.split("?", 1)[0]


_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """A statement of the ledger's SQLite dialect, in PostgreSQL's (see the module's docstring)."""
    if sql == "BEGIN IMMEDIATE":
        return "BEGIN"
    q = sql.replace("%", "%%")
    if _INSERT_OR_IGNORE.match(q):
        q = _INSERT_OR_IGNORE.sub("INSERT INTO", q, count=1).rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    q = q.replace("json_each(?)", "json_array_elements_text(?::json)")
    return q.replace("?", "%s")


_DDL = [
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    (re.compile(r"\s+WITHOUT ROWID\b"), ""),
]


def ddl(script: str) -> str:
    """The schema's SQLite DDL in PostgreSQL's (tables and indexes; the triggers are written for each)."""
    for pattern, replacement in _DDL:
        script = pattern.sub(replacement, script)
    return script


def _as_sqlite_error(e: Exception) -> sqlite3.Error:
    """psycopg's error as the sqlite3 error the ledger's handlers expect (the original is its cause)."""
    import psycopg

    message = str(e).strip().split("\n", 1)[0]
    if isinstance(e, psycopg.errors.IntegrityError) or getattr(e, "sqlstate", None) == "P0001":
        return sqlite3.IntegrityError(message)  # a constraint, or a trigger's RAISE EXCEPTION (SQLite: ABORT)
    if isinstance(e, psycopg.OperationalError | psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow):
        return sqlite3.OperationalError(f"PostgreSQL: {message}")
    if isinstance(e, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable
                  | psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return sqlite3.OperationalError(f"PostgreSQL: {message}")
    return sqlite3.DatabaseError(f"PostgreSQL: {message}")


class _Empty:
    """The cursor of a statement that did nothing (ROLLBACK on a lost connection)."""

    rowcount = 0

    def fetchone(self) -> Any:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def _numeric_loader() -> type:
    """A loader of NUMERIC (what PostgreSQL's sum() of BIGINTs gives) as int when whole, as SQLite does."""
    from psycopg.adapt import Loader

    class IntNumericLoader(Loader):
        def load(self, data: Any) -> Any:
            d = Decimal(bytes(data).decode())
            return int(d) if d == d.to_integral_value() else float(d)

    return IntNumericLoader


def _connect_kwargs(password: str | None, role: str, connect_timeout: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": connect_timeout,
                              "application_name": f"ledger-{role}"}
    if password is not None:
        kwargs["password"] = password
    return kwargs


def _set_up(raw: psycopg.Connection[Any], readonly: bool) -> None:
    """What every session of the ledger's is set to, made sure of (a pooled one too)."""
    raw.adapters.register_loader("numeric", _numeric_loader())
    # every COMMIT waits for its WAL to be flushed (the default, made sure of): acknowledged means durable.
    # A session idle inside a transaction (a host that hangs mid-batch) gives its locks back after a minute.
    raw.execute("SET synchronous_commit = on")
    raw.execute("SET idle_in_transaction_session_timeout = '60s'")
    if readonly:
        raw.execute("SET default_transaction_read_only = on")


STREAM_ROWS = 64  # rows per fetch of `stream` (an entry chunk holds up to 256 entries)
_cursor_names = itertools.count()


def stream(conn: Connection, sql: str, parameters: Sequence[Any] = ()) -> Iterator[Any]:
    """The rows of a query over a large table, as few at a time as the engine allows: SQLite's cursor steps
    through the file; PostgreSQL's session fetches from a server-side cursor (`PgConnection.stream`)."""
    if isinstance(conn, PgConnection):
        return conn.stream(sql, parameters)
    return iter(conn.execute(sql, parameters))


class PgConnection:
    """A PostgreSQL session with the API of an autocommit `sqlite3.Connection` (see the module's docstring).

    Args:
        url: postgresql://user@host[:port]/dbname (no password: see `check_url`).
        password: from the environment variable `database_password_env` names, if any.
        readonly: every transaction read-only (readers, the audit).
        role: a name for the session, shown by pg_stat_activity (writer, reader, migrate).
        connect_timeout: seconds to wait for the server to answer a connection (libpq's least is 2).
    """

    engine = POSTGRESQL

    def __init__(self, url: str, *, password: str | None = None, readonly: bool = False,
                 role: str = "ledger", connect_timeout: int = 10) -> None:
        self.url, self._password, self.readonly, self.role = url, password, readonly, role
        self._connect_timeout = connect_timeout
        self._in_txn = False
        self._trace: Callable[[str], object] | None = None
        self._raw: psycopg.Connection[Any] = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            raw = psycopg.connect(self.url, **_connect_kwargs(self._password, self.role, self._connect_timeout))
        except psycopg.Error as e:
            raise _as_sqlite_error(e) from e
        _set_up(raw, self.readonly)
        return raw

    @property
    def in_transaction(self) -> bool:
        return self._in_txn

    def set_trace_callback(self, trace: Callable[[str], object] | None) -> None:
        """As sqlite3's: `trace(sql)` before each statement (as the ledger wrote it, untranslated)."""
        self._trace = trace

    @property
    def lost(self) -> bool:
        """Is the session gone (the server went away, or the connection was closed)?"""
        return bool(self._raw.closed or self._raw.broken)

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection (for COPY), made again first if it was lost."""
        self._ready("")
        return self._raw

    def _ready(self, q: str) -> bool:
        """Is the session there for statement q? Makes a lost one again outside a transaction; False for a
        ROLLBACK of a transaction that died with its connection."""
        if not (self._raw.closed or self._raw.broken):
            return True
        if self._in_txn:
            if q == "ROLLBACK":
                self._in_txn = False
                return False
            raise sqlite3.OperationalError("PostgreSQL: the connection was lost in the middle of a transaction; "
                                           "nothing of it was committed")
        self._raw = self._connect()
        return True

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        import psycopg

        q = translate(sql)
        if self._trace is not None:
            self._trace(sql)
        if not self._ready(q):
            return _Empty()
        try:
            cur = self._raw.execute(q, parameters)
        except psycopg.Error as e:
            if q in ("COMMIT", "ROLLBACK"):
                self._in_txn = False
            if not (self.readonly and not self._in_txn and self._raw.broken):
                raise _as_sqlite_error(e) from e
            # a reader's session died (a server restart, a failover): a read is safe to send again, once
            self._raw = self._connect()
            try:
                cur = self._raw.execute(q, parameters)
            except psycopg.Error as e2:
                raise _as_sqlite_error(e2) from e2
        if q.startswith("BEGIN"):
            self._in_txn = True
        elif q in ("COMMIT", "ROLLBACK"):
            self._in_txn = False
        return cur

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        import psycopg

        q = translate(sql)
        if self._trace is not None:
            self._trace(sql)
        self._ready(q)
        cur = self._raw.cursor()
        try:
            cur.executemany(q, parameters)
        except psycopg.Error as e:
            raise _as_sqlite_error(e) from e
        return cur

    def stream(self, sql: str, parameters: Sequence[Any] = (), /) -> Iterator[Any]:
        """The rows of a query, fetched STREAM_ROWS at a time through a server-side cursor (inside a
        transaction: the audit's snapshot), so that a table as large as the log is never held whole; outside
        a transaction, as `execute`. Other statements may run on the session between two rows."""
        import psycopg

        if not self._in_txn:
            yield from self.execute(sql, parameters)
            return
        q = translate(sql)
        if self._trace is not None:
            self._trace(sql)
        self._ready(q)
        try:
            with self._raw.cursor(name=f"ledger_stream_{next(_cursor_names)}") as cur:
                cur.itersize = STREAM_ROWS
                cur.execute(q, parameters)
                yield from cur
        except psycopg.Error as e:
            raise _as_sqlite_error(e) from e

    def executescript(self, script: str) -> None:
        """Run DDL as it is (no placeholders, no translation), in one round trip."""
        import psycopg

        self._ready("")
        try:
            self._raw.execute(script.encode())
        except psycopg.Error as e:
            raise _as_sqlite_error(e) from e

    def close(self) -> None:
        self._raw.close()



class _Rows:
    """A statement's result, read whole while its session was borrowed (the session went back at once)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _PooledSession(PgConnection):
    """A session borrowed from a `ReadPool` (`ReadPool.session`) for one request or one transaction. One the
    server dropped is replaced by another of the pool's, outside a transaction (a read is sent again once);
    inside one, it fails, as `PgConnection`'s does."""

    def __init__(self, pool: ReadPool, raw: psycopg.Connection[Any]) -> None:
        self.url, self._password, self.readonly, self.role = pool.url, None, True, pool.role
        self._connect_timeout = 0
        self._in_txn = False
        self._trace = pool._trace
        self._pool = pool
        self._raw = raw

    def _connect(self) -> psycopg.Connection[Any]:
        broken, self._raw = self._raw, None  # type: ignore[assignment]
        self._pool._give_back(broken, dropped=True)
        return self._pool._borrow()

    def close(self) -> None:
        pass  # the pool's, given back by `ReadPool.session`


# how long a read waits for a session when all are busy or the server cannot be reached (then: 503)
POOL_WAIT_S = 5.0


class ReadPool:
    """Read-only sessions of one PostgreSQL database, shared by all of a process's threads (psycopg_pool),
    with the API of an autocommit `sqlite3.Connection`.

    Each statement borrows a session for itself and gives it back with its rows read whole: the portal's
    worker threads (however many) hold at most `size` sessions on the server, and a session is busy only
    while a statement runs. `session()` lends one for a request's reads (which then pay the pool once), or
    a transaction (a page read from one snapshot of a replica). A session the server dropped (a restart, a failover) is found when a statement fails on
    it: every idle one is checked then, the broken ones are made again, and the read is sent again once
    (a read is safe to repeat). Nothing is connected before the first read, and at most `size` sessions
    at once; a read waits `POOL_WAIT_S` for one, then fails as the database being unavailable.

    Args:
        url: postgresql://user@host[:port]/dbname (no password: see `check_url`).
        password: from the environment variable `database_password_env` names, if any.
        size: the most sessions held at once.
        role: shown by pg_stat_activity as ledger-<role>.
    """

    engine = POSTGRESQL
    in_transaction = False  # each statement is its own transaction; transactions are `session()`'s
    readonly = True

    def __init__(self, url: str, *, password: str | None = None, size: int = 10, role: str = "reader",
                 connect_timeout: int = 10, wait_s: float = POOL_WAIT_S) -> None:
        from psycopg_pool import ConnectionPool

        self.url, self.role, self.wait_s = url, role, wait_s
        self._trace: Callable[[str], object] | None = None
        self._pool = ConnectionPool(url, min_size=0, max_size=size, open=False, name=f"ledger-{role}",
                                    kwargs=_connect_kwargs(password, role, connect_timeout),
                                    configure=lambda raw: _set_up(raw, True), timeout=wait_s,
                                    max_idle=300.0, reconnect_timeout=60.0)
        self._pool.open(wait=False)

    @property
    def size(self) -> int:
        return int(self._pool.max_size)

    def resize(self, size: int) -> None:
        self._pool.resize(0, size)

    def counts(self) -> dict[str, int]:
        """How the sessions are used, as /healthz shows it: the most (`max`), those made (`open`), those free
        (`idle`), and the reads waiting for one (`waiting`)."""
        st = self._pool.get_stats()
        return {"max": self.size, "open": st.get("pool_size", 0), "idle": st.get("pool_available", 0),
                "waiting": st.get("requests_waiting", 0)}

    def set_trace_callback(self, trace: Callable[[str], object] | None) -> None:
        self._trace = trace

    def _borrow(self) -> psycopg.Connection[Any]:
        from psycopg_pool import PoolClosed, PoolTimeout

        try:
            return self._pool.getconn()
        except PoolTimeout as e:
            raise sqlite3.OperationalError(
                f"PostgreSQL: no session to {redact(self.url)} within {self.wait_s:g} s (the server cannot be "
                f"reached, or all {self.size} of this host's read sessions are busy)") from e
        except PoolClosed as e:
            raise sqlite3.OperationalError("PostgreSQL: the ledger was closed") from e

    def _give_back(self, raw: psycopg.Connection[Any], *, dropped: bool = False) -> None:
        """Return a session (the pool replaces a broken one); `dropped`: the server dropped it, so the others
        idle may be gone too (a restart): each is checked now, and the broken ones made again."""
        from psycopg_pool import PoolClosed

        try:
            self._pool.putconn(raw)
            if dropped:
                self._pool.check()
        except PoolClosed:
            raw.close()

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        import psycopg

        q = translate(sql)
        if self._trace is not None:
            self._trace(sql)
        for attempt in (1, 2):
            raw = self._borrow()
            try:
                cur = raw.execute(q, parameters)
                rows = _Rows(cur.fetchall() if cur.description is not None else [], cur.rowcount)
            except psycopg.Error as e:
                self._give_back(raw, dropped=raw.broken)
                if attempt == 2 or not raw.broken:
                    raise _as_sqlite_error(e) from e
                continue  # the server dropped it: once more, on a session the pool checked
            self._give_back(raw)
            return rows
        raise AssertionError("unreachable")

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        raise sqlite3.OperationalError("a read pool runs no executemany (its sessions are read-only)")

    @contextmanager
    def session(self) -> Iterator[PgConnection]:
        """A session of the pool's for a request's reads, or a transaction (BEGIN ... ROLLBACK), given back when
        the block ends (rolled back by the pool, should the block leave it in a transaction)."""
        session = _PooledSession(self, self._borrow())
        try:
            yield session
        finally:
            if session._raw is not None:
                self._give_back(session._raw)

    def close(self) -> None:
        self._pool.close(timeout=5.0)
