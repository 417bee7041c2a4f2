"""The readers' pool on PostgreSQL (`engine.ReadPool`): a process's threads share at most `database_pool`
sessions, sessions the server dropped are made again without a failed read, a server that cannot be
reached fails a read in bounded time, and closing the log ends every session."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.errors import LedgerError
from ledger.storage.engine import ReadPool
from portal.app import create_app
from tests.envelopes.test_lifecycle import T, completed
from tests.pg import cluster

pytestmark = pytest.mark.usefixtures("pg_database")


def _sessions(url: str, name: str = "ledger-reader") -> list[int]:
    """The pids of the sessions on the database of `url` that are named `name`."""
    db = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster().url("postgres"), autocommit=True) as c:
        return [pid for (pid,) in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s"
                                            " AND application_name = %s", (db, name))]


@pytest.fixture
def led(tmp_path: Path, pg_database: str) -> Ledger:
    ledger = Ledger.init(tmp_path / "home", database=pg_database)
    ledger.append(T, completed("E1"))
    return ledger


def test_many_threads_share_at_most_pool_size_sessions(led: Ledger) -> None:
    led.log.pool_size = 3
    size, url = led.log.size, led.config.database
    seen: list[int] = []
    errors: list[BaseException] = []
    most = 0
    stop = threading.Event()

    def read() -> None:
        try:
            for _ in range(40):
                (n,) = led.log._reader().execute("SELECT count(*) FROM envelope_entries WHERE env IS NOT NULL"
                                                 " AND pg_sleep(0.001) IS NOT NULL").fetchone()
                seen.append(n)
                assert led.envelope(T, "E1")["status"] == "completed"
        except BaseException as e:
            errors.append(e)

    def watch() -> None:
        nonlocal most
        while not stop.is_set():
            most = max(most, len(_sessions(url)))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=read) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    try:
        assert not errors, errors[0]
        assert len(seen) == 24 * 40 and len(set(seen)) == 1 and seen[0] > 0
        assert 1 <= most <= 3, most  # 24 threads, never more than the pool's 3 sessions on the server
        assert led.log.size == size
    finally:
        led.close()
    assert _sessions(url) == []  # closing the log ended them


def test_sessions_the_server_dropped_are_made_again_without_a_failed_read(led: Ledger) -> None:
    led.log.pool_size = 4
    url = led.config.database
    barrier = threading.Barrier(4)

    def hold() -> None:  # four reads at once: four sessions in the pool
        barrier.wait()
        led.log._reader().execute("SELECT pg_sleep(0.2)").fetchone()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    before = _sessions(url)
    assert len(before) == 4
    with psycopg.connect(cluster().url("postgres"), autocommit=True) as c:
        for pid in before:
            c.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    try:
        for _ in range(6):  # every idle session is dead: the first read finds one, the pool checks the rest
            assert led.envelope(T, "E1")["status"] == "completed"
        after = _sessions(url)
        assert after and not set(after) & set(before)
    finally:
        led.close()


def test_a_server_that_cannot_be_reached_fails_a_read_in_bounded_time() -> None:
    from bench.scale.servers import free_port

    pool = ReadPool(f"postgresql://ledger@127.0.0.1:{free_port()}/nothing", size=2, connect_timeout=2, wait_s=0.5)
    try:
        t0 = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match=r"no session to postgresql://ledger@127\.0\.0\.1:\d+/nothing "
                           r"within 0\.5 s \(the server cannot be reached"):
            pool.execute("SELECT 1")
        assert time.monotonic() - t0 < 3
    finally:
        pool.close()


def test_a_read_session_refuses_writes(led: Ledger) -> None:
    try:
        with pytest.raises(sqlite3.Error, match="read-only transaction"):
            led.log._reader().execute("CREATE TABLE x (a int)")
    finally:
        led.close()


def test_database_pool_is_read_from_config_and_checked(tmp_path: Path, pg_database: str) -> None:
    home = tmp_path / "home"
    Ledger.init(home, database=pg_database).close()
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace("database_pool = 10\n", "database_pool = 2\n"))
    led = Ledger.open(home)
    try:
        assert led.log.pool_size == 2
        reader = led.log._reader()
        assert isinstance(reader, ReadPool) and reader.size == 2
    finally:
        led.close()
    cfg.write_text(cfg.read_text().replace("database_pool = 2\n", "database_pool = 0\n"))
    with pytest.raises(LedgerError, match="database_pool.*from 1 to 1000 sessions"):
        load_config(home)


async def test_healthz_shows_the_readers_sessions(led: Ledger, aiohttp_client: Any) -> None:
    led.log.pool_size = 4
    client = await aiohttp_client(create_app(led, anchor=False, lookup_rate=0))
    body = await (await client.get("/healthz")).json()
    assert body["ok"] and set(body["sessions"]) == {"primary"}, body
    await asyncio.gather(*(asyncio.to_thread(led.envelope, T, "E1") for _ in range(8)))  # reads, from threads
    sessions = (await (await client.get("/healthz")).json())["sessions"]["primary"]
    assert sessions["max"] == 4 and 1 <= sessions["open"] <= 4 and 0 <= sessions["idle"] <= sessions["open"]
    assert sessions["waiting"] == 0
    led.close()


def test_a_request_reads_through_one_session_which_a_dropped_one_is_replaced_by(led: Ledger) -> None:
    led.log.pool_size = 2
    url = led.config.database
    try:
        with led.log.reading():
            first = led.log._reader()
            assert not isinstance(first, ReadPool)  # the request's own session: the pool is paid once
            assert led.envelope(T, "E1")["status"] == "completed"
            assert led.log._reader() is first and len(_sessions(url)) == 1
            with psycopg.connect(cluster().url("postgres"), autocommit=True) as c:
                for pid in _sessions(url):
                    c.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            # the server dropped it mid-request: the read is sent again on another of the pool's
            assert led.envelope(T, "E1")["status"] == "completed"
        assert 1 <= len(_sessions(url)) <= 2
        counts = led.log.sessions()
        assert counts is not None and counts["primary"] is not None and counts["primary"]["idle"] >= 1
    finally:
        led.close()
