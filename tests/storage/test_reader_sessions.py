"""A log's readers end with it. On SQLite each thread that reads opens a connection of its own, closed when
the thread ends; on PostgreSQL the threads share a pool of server sessions (`engine.ReadPool`). `close()`
ends every one of them, while an executor's threads are still alive."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from ledger.envelopes.core import Ledger
from ledger.storage.schema import DB_NAME
from tests.conftest import new_ledger
from tests.envelopes.test_lifecycle import T, ev
from tests.pg import cluster


def connections(home: Path, database: str) -> int:
    """Open connections to the ledger's database: its PostgreSQL sessions, or this process's descriptors of
    the SQLite file."""
    if database:
        with psycopg.connect(cluster().url("postgres"), autocommit=True) as c:
            (n,) = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                             (database.rsplit("/", 1)[1],)).fetchone()
        return int(n)
    db = str(home / DB_NAME)
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == db
        except OSError:
            pass  # the descriptor listdir itself used, gone
    return n


def settles_at(home: Path, database: str, want: int) -> bool:
    """Do the connections come to `want`? (A closed session's server process ends a moment later.)"""
    deadline = time.monotonic() + 10
    while connections(home, database) != want:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_close_ends_the_readers_of_every_thread(tmp_path: Path, engine: str) -> None:
    led: Ledger = new_ledger(tmp_path / "home", engine)
    database = led.config.database
    led.append(T, [ev("envelope.created", "E1", title="t")])
    alone = connections(led.home, database)  # the writer's
    barrier = threading.Barrier(4)

    def read(_: int) -> bytes:
        barrier.wait(timeout=10)  # four threads at once: four readers
        return led.log.entry(0)

    pool = ThreadPoolExecutor(4)
    try:
        assert len(set(pool.map(read, range(4)))) == 1
        if database:  # the pool's sessions: one at least, never more than the threads that read at once
            assert alone < connections(led.home, database) <= alone + 4
        else:
            assert connections(led.home, database) == alone + 4
        led.close()  # the pool's threads are alive still
        assert settles_at(led.home, database, 0), connections(led.home, database)
    finally:
        pool.shutdown()


def test_short_lived_threads_share_the_pools_sessions(tmp_path: Path, pg_database: str) -> None:
    # PostgreSQL only: SQLite keeps a closed connection's descriptor of the file open while another connection
    # of the process holds a lock on it (POSIX locks are per process), so no count can tell there
    led = Ledger.init(tmp_path / "home", database=pg_database)
    try:
        led.append(T, [ev("envelope.created", "E1", title="t")])
        alone = connections(led.home, pg_database)
        for _ in range(20):  # threads that read once and end, as a server's short-lived ones
            t = threading.Thread(target=led.envelope, args=(T, "E1"))
            t.start()
            t.join()
        assert settles_at(led.home, pg_database, alone + 1), connections(led.home, pg_database)
    finally:
        led.close()
    assert settles_at(led.home, pg_database, 0), connections(led.home, pg_database)
