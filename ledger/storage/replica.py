"""A PostgreSQL streaming replica to read from (`read_database`): is it fit to read now, and how far behind.

A portal host may send its pages' reads to a hot standby of the ledger's database, so that the primary
takes the writes and the replicas the reads. A replica holds what the primary committed, a moment later:
a page read from it shows an older checkpoint, still one checkpoint's whole view (`TileLog.reading`). How
much older is bounded: the lag is measured, and while it is over `replica_max_lag_s`, or the replica
cannot be reached, reads go to the primary.

The lag, in seconds: 0 while the replica holds the primary's log head (its size, read on the primary
first) and has replayed all the WAL it received; else the time since it last replayed a transaction
(`now() - pg_last_xact_replay_timestamp()` on the replica), which is never less than how long it has held
back what the primary committed since (an over-estimate errs towards the primary, which is never
behind). A lag over the bound is looked at again after CONFIRM_S, so that a replica found in the
milliseconds between a commit and its replay is not taken for one that lags.

The lag is measured at most every CHECK_S seconds (every RETRY_S while the replica cannot be reached), by
the first read that finds the last measure old; the others go on with that one meanwhile, so a replica
that hangs holds up one request at a time, for CONNECT_TIMEOUT_S at most.

Not here: which reads go where (`TileLog.reading`); `/healthz`, which shows `ReplicaStatus.to_json()`.
Neither the URL's user nor a password is ever shown: a status names the replica by host and port.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ledger.storage.engine import PgConnection, ReadPool

CHECK_S = 1.0  # a measure of the lag is used for this long
RETRY_S = 5.0  # ... and this long when the replica could not be reached
CONFIRM_S = 0.05
CONNECT_TIMEOUT_S = 2


@dataclass(frozen=True)
class ReplicaStatus:
    """One measure: the replica (by host), its lag (None when unknown), whether reads go to it, and why."""

    url_host: str
    lag_s: float | None
    used: bool
    why: str
    checked: float  # time.monotonic() of the measure

    def to_json(self) -> dict[str, Any]:
        return {"url_host": self.url_host, "lag_s": None if self.lag_s is None else round(self.lag_s, 1),
                "used": self.used, "why": self.why}


def url_host(url: str) -> str:
    """host[:port] of a postgresql:// URL: how a status names the replica (no user, no database, no query)."""
    u = urlsplit(url)
    host = u.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{u.port}" if u.port else host


def _first_line(error: Exception) -> str:
    """The error's first line, as /healthz may show it: without the user name libpq puts in some."""
    line = str(error).strip().split("\n", 1)[0].removeprefix("PostgreSQL: ")
    return re.sub(r'\buser "[^"]*"', 'user "..."', line)


class Replica:
    """The replica `read_database` names, measured against the primary `database`.

    Args:
        url: the replica, postgresql://user@host[:port]/dbname (no password).
        primary: the primary's URL (`database`).
        password: for both (the replica is a copy of the primary's cluster: the same roles).
        max_lag_s: reads go to the primary while the replica lags more than this.
    """

    def __init__(self, url: str, primary: str, password: str | None, max_lag_s: float, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url, self.primary, self._password, self.max_lag_s = url, primary, password, max_lag_s
        self.host = url_host(url)
        self._monotonic = monotonic
        self._lock = threading.Lock()  # held while measuring (the two connections below are its own)
        self._status: ReplicaStatus | None = None
        self._fresh_until = 0.0  # time.monotonic() until which `_status` is used as it is
        self._on_primary: PgConnection | None = None
        self._on_replica: PgConnection | None = None
        self._pool: ReadPool | None = None
        self._pool_lock = threading.Lock()

    def connect(self, role: str = "replica-reader") -> PgConnection:
        """A new read-only session on the replica (raises sqlite3.OperationalError if it cannot be reached)."""
        return PgConnection(self.url, password=self._password, readonly=True, role=role,
                            connect_timeout=CONNECT_TIMEOUT_S)

    def pool(self, size: int) -> ReadPool:
        """The pool the pages' reads borrow their sessions on the replica from (made at the first read; a read
        waits CONNECT_TIMEOUT_S for one, then the page reads the primary)."""
        pool = self._pool
        if pool is not None and pool.size == size:
            return pool  # every page asks: no lock once it is made
        with self._pool_lock:
            if self._pool is None:
                self._pool = ReadPool(self.url, password=self._password, size=size, role="replica-reader",
                                      connect_timeout=CONNECT_TIMEOUT_S, wait_s=CONNECT_TIMEOUT_S)
            elif self._pool.size != size:
                self._pool.resize(size)
            return self._pool

    def status(self) -> ReplicaStatus:
        """The latest measure, measured again first if it is old (unless another thread is measuring)."""
        s = self._status
        if s is not None and self._monotonic() < self._fresh_until:
            return s
        if not self._lock.acquire(blocking=s is None):
            assert s is not None
            return s  # another thread is measuring: the last measure meanwhile
        try:
            s, reached = self._measure()
            self._keep(s, CHECK_S if reached else RETRY_S)
        finally:
            self._lock.release()
        return s

    def counts(self) -> dict[str, int] | None:
        """The sessions of the pages' pool on the replica (`ReadPool.counts`); None before the first read."""
        pool = self._pool
        return None if pool is None else pool.counts()

    def _keep(self, s: ReplicaStatus, for_s: float) -> None:
        self._status, self._fresh_until = s, s.checked + for_s

    def usable(self) -> bool:
        return self.status().used

    def failed(self, error: Exception) -> None:
        """A read found the replica gone: reads go to the primary until it is measured again."""
        self._keep(self._unreachable(error), RETRY_S)

    def _unreachable(self, error: Exception) -> ReplicaStatus:
        return ReplicaStatus(self.host, None, False, f"unreachable: {_first_line(error)}", self._monotonic())

    def _measure(self) -> tuple[ReplicaStatus, bool]:
        """A new measure, and whether the replica answered."""
        try:
            if self._on_primary is None:
                self._on_primary = PgConnection(self.primary, password=self._password, readonly=True,
                                                role="replica-monitor", connect_timeout=CONNECT_TIMEOUT_S)
            row = self._on_primary.execute("SELECT size FROM log_head WHERE id = 1").fetchone()
            head: int | None = int(row[0]) if row else None
        except sqlite3.Error:
            head = None  # the primary is down: measured on the replica alone (pages fail on the primary anyway)
        try:
            if self._on_replica is None:
                self._on_replica = self.connect("replica-monitor")
        except sqlite3.Error as e:
            return self._unreachable(e), False
        try:
            lag = self._lag(self._on_replica, head)
            if lag is not None and lag > self.max_lag_s:
                time.sleep(CONFIRM_S)
                lag = self._lag(self._on_replica, head)
        except sqlite3.Error as e:
            lost = self._on_replica.lost
            if lost:
                self._on_replica.close()
                self._on_replica = None
                return self._unreachable(e), False
            # it answers, but not as a copy of the ledger's database (yet: a new replica still replaying)
            return ReplicaStatus(self.host, None, False, f"cannot be read: {_first_line(e)}",
                                 self._monotonic()), True
        now = self._monotonic()
        if lag is None:
            return ReplicaStatus(self.host, None, False, "behind the primary, and it has replayed no transaction "
                                 "since it started: its lag is unknown", now), True
        if lag > self.max_lag_s:
            return ReplicaStatus(self.host, lag, False, f"lags {lag:.1f} s > {self.max_lag_s:g} s", now), True
        return ReplicaStatus(self.host, lag, True, f"lags {lag:.1f} s <= {self.max_lag_s:g} s", now), True

    @staticmethod
    def _lag(conn: PgConnection, head: int | None) -> float | None:
        """The replica's lag behind the primary's head `head` (None: the primary could not be read)."""
        size, replayed_all, since_replay = conn.execute(
            "SELECT (SELECT size FROM log_head WHERE id = 1), pg_last_wal_receive_lsn() IS NULL"
            " OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(),"
            " extract(epoch FROM now() - pg_last_xact_replay_timestamp())").fetchone()
        if replayed_all and (head is None or (size is not None and size >= head)):
            return 0.0
        return None if since_replay is None else max(0.0, float(since_replay))

    def close(self) -> None:
        with self._lock, self._pool_lock:
            for conn in (self._on_primary, self._on_replica, self._pool):
                if conn is not None:
                    conn.close()
            self._on_primary = self._on_replica = self._pool = None
