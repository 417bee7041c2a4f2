"""The local TSA on PostgreSQL: its serial numbers come from the database, so that every host may anchor
and answer `POST /tsa` with it (`ledger.anchoring.tsa_serial`).

Two hosts (copies of one ledger folder: the same TSA key) issuing tokens from several threads each give
each serial once, and OpenSSL verifies the tokens; a ledger moved from SQLite by `ledger migrate` goes on
above every serial its counter file gave, and no host goes back below the database's; while PostgreSQL is
down the TSA refuses with a clear error, and issues nothing twice when it is back.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import TestClient
from asn1crypto import tsp

from ledger.anchoring.anchor import Anchorer, clients_for
from ledger.anchoring.tsa import LocalTsa, LocalTsaError, build_request
from ledger.config import load_config
from ledger.envelopes.core import Ledger
from portal.app import create_app
from tests.anchoring.test_tsa_openssl import openssl_verify, write
from tests.cli.test_cli import run
from tests.envelopes.test_lifecycle import T, completed
from tests.pg import cluster

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
THREADS, TOKENS = 4, 6  # per host


def _serial(reply: bytes) -> int:
    token = tsp.TimeStampResp.load(reply)["time_stamp_token"]
    return int(token["content"]["encap_content_info"]["content"].parsed["serial_number"].native)


def _counter(home: Path) -> int:
    return int((home / "tsa" / "tsa-serial").read_text())


def _tsa(led: Ledger) -> LocalTsa:
    assert led.local_tsa is not None, led.local_tsa_error
    return led.local_tsa


def _anchor(led: Ledger) -> list[int]:
    """Append a contract, anchor the new checkpoint with the local TSA; the serials of the ledger's anchors."""
    led.append(T, completed(f"A{led.home.name}{led.log.size}"))

    async def once() -> None:
        async with aiohttp.ClientSession() as session:
            (outcome,) = await Anchorer(led, clients_for(led, session)).anchor_now()
            assert outcome.ok, outcome.detail

    asyncio.run(once())
    return [int(s) for (s,) in led.log.conn.execute("SELECT serial FROM anchors WHERE tsa = 'local' ORDER BY id")]


@pytest.fixture
def hosts(tmp_path: Path, pg_database: str) -> Iterator[list[Ledger]]:
    """Two hosts of one PostgreSQL ledger: a ledger folder and a copy of it (the same TSA key)."""
    first, second = tmp_path / "host0", tmp_path / "host1"
    led = Ledger.init(first, database=pg_database)
    led.append(T, completed("E1"))
    led.close()
    shutil.copytree(first, second)
    leds = [Ledger.open(first), Ledger.open(second)]
    yield leds
    for led in leds:
        led.close()


def test_two_hosts_issue_each_serial_once_and_openssl_verifies_every_token(hosts: list[Ledger],
                                                                           tmp_path: Path) -> None:
    issued: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def issue(tsa: LocalTsa, name: str) -> None:
        try:
            for k in range(TOKENS):
                data = f"{name}-{k}\n".encode()
                reply = tsa.issue_token(data, nonce=k + 1)
                with lock:
                    issued.append((data, reply))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=issue, args=(_tsa(led), f"h{h}t{t}")) for h, led in enumerate(hosts)
               for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    serials = [_serial(reply) for _, reply in issued]
    assert len(serials) == len(set(serials)) == 2 * THREADS * TOKENS
    assert min(serials) == 1  # the row was made at first use, from the folders' counter (1: nothing issued)
    root = hosts[0].home / "tsa" / "tsa-root.pem"
    for k, (data, reply) in enumerate(issued):
        directory = tmp_path / f"token{k}"
        directory.mkdir()
        write(directory, **{"data.txt": data, "resp.tsr": reply})
        assert "Verification: OK" in openssl_verify(directory, "-CAfile", str(root)), k
    # both hosts anchor with it too; each anchor's serial is a new one
    anchored = [_anchor(led) for led in hosts][-1]  # each host appends first: it anchors a checkpoint of its own
    assert len(anchored) == 2 and not set(anchored) & set(serials) and min(anchored) > max(serials)
    assert [_counter(led.home) for led in hosts] == [1, 1]  # the folders' counter files are not used


def test_the_serial_row_may_only_grow(hosts: list[Ledger]) -> None:
    _tsa(hosts[0]).issue_token(b"x")
    with psycopg.connect(hosts[0].config.database, autocommit=True) as c:
        for sql in ("UPDATE tsa_serial SET next = 1", "DELETE FROM tsa_serial", "TRUNCATE tsa_serial"):
            with pytest.raises(psycopg.errors.RaiseException, match="tsa_serial may only grow"):
                c.execute(sql.encode())
        assert c.execute(b"SELECT next FROM tsa_serial").fetchone() == (2,)


def test_after_migrate_serials_go_on_above_the_sqlite_counter(tmp_path: Path, pg_database: str) -> None:
    home = tmp_path / "home"
    led = Ledger.init(home)  # SQLite: the counter file, as ever
    led.append(T, completed("E1"))
    old = [_serial(_tsa(led).issue_token(f"{k}".encode())) for k in range(3)] + _anchor(led)
    led.close()
    assert old == [1, 2, 3, 4] and _counter(home) == 5
    r = run(home, "migrate", "--to", pg_database)
    assert r.returncode == 0, r.stdout + r.stderr
    assert load_config(home).database == pg_database
    led = Ledger.open(home)
    try:
        assert led.log.postgresql
        assert _serial(_tsa(led).issue_token(b"after")) == 5
        assert _anchor(led) == [4, 6]  # the anchor made on SQLite came along; the new one goes on above
    finally:
        led.close()
    assert _counter(home) == 5
    # a host whose file is behind the database never goes back; one whose file is ahead raises the row
    behind, ahead = tmp_path / "behind", tmp_path / "ahead"
    for copy, value in ((behind, 1), (ahead, 100)):
        shutil.copytree(home, copy)
        (copy / "tsa" / "tsa-serial").write_text(f"{value}\n")
    serials = []
    for folder in (behind, ahead, behind, home):
        led = Ledger.open(folder)
        try:
            serials.append(_serial(_tsa(led).issue_token(folder.name.encode())))
        finally:
            led.close()
    assert serials == [7, 100, 101, 102]


async def test_the_database_down_fails_the_tsa_clearly_and_nothing_is_issued_twice(
        hosts: list[Ledger], aiohttp_client: Client) -> None:
    led = hosts[0]
    client = await aiohttp_client(create_app(led, anchor=False, lookup_rate=0))
    before = [_serial(_tsa(h).issue_token(b"before")) for h in hosts]
    query = {"Content-Type": "application/timestamp-query"}
    pg = cluster()
    pg.stop_server()
    try:
        for h in hosts:
            with pytest.raises(LocalTsaError, match="could not take a serial number from the database") as info:
                _tsa(h).issue_token(b"down")
            assert info.value.status == 503 and "no time-stamp was issued" in str(info.value)
        resp = await client.post("/tsa", data=build_request(b"down", nonce=1), headers=query)
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "local_tsa_unavailable"
    finally:
        pg.start_server()
    resp = await client.post("/tsa", data=build_request(b"up", nonce=2), headers=query)
    assert resp.status == 200
    after = [_serial(await resp.read())] + [_serial(_tsa(h).issue_token(b"after")) for h in hosts]
    assert len(set(before + after)) == 5 and min(after) > max(before)
