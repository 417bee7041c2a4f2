"""Reads from a streaming replica (`read_database`): a primary and a hot standby in temporary folders
(initdb, pg_basebackup -R, `tests.pg.replicated`), both stopped at the end.

Pages read the replica while it lags at most `replica_max_lag_s`, and each shows one checkpoint's view
(every entry of a copy's JSON verifies against the one checkpoint it carries); a replica paused beyond
the bound, or stopped, is named in /healthz and the pages read the primary; resumed, the replica again.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.errors import LedgerError
from ledger.storage.replica import Replica, url_host
from portal.app import create_app
from tests.envelopes.test_lifecycle import T, ev, sent, sign
from tests.pg import Replicated, replicated
from verifier.checkpoint import verify_checkpoint
from verifier.head import verify_head
from verifier.merkle import leaf_hash, verify_inclusion
from verifier.note import Ed25519Verifier

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
BOUND_S = 1.0


@pytest.fixture
def pair() -> Iterator[Replicated]:
    with replicated() as r:
        yield r


@pytest.fixture
def led(tmp_path: Path, pair: Replicated) -> Iterator[Ledger]:
    home = tmp_path / "home"
    Ledger.init(home, database=pair.primary_dsn).close()
    config = load_config(home).replace(read_database=pair.replica_dsn, replica_max_lag_s=BOUND_S)
    (home / "config.toml").write_text(config.to_toml())
    ledger = Ledger.open(home)
    assert ledger.log.replica is not None and ledger.log.replica.max_lag_s == BOUND_S
    yield ledger
    ledger.close()


def one_checkpoint(v: dict[str, Any]) -> int:
    """The view's entries all verify against the one checkpoint it shows, as does its envelope head;
    returns that checkpoint's size."""
    key = Ed25519Verifier.from_string(v["log"]["verifier_key"])
    cp = verify_checkpoint(v["log"]["checkpoint"], key).checkpoint
    assert v["log"]["size"] == cp.size
    assert v["proofs"] and [p["index"] for p in v["proofs"]] == [t["index"] for t in v["timeline"]]
    for p in v["proofs"]:
        verify_inclusion(p["index"], cp.size, leaf_hash(base64.b64decode(p["entry"])),
                         [base64.b64decode(h) for h in p["proof"]], cp.root)
    head = verify_head(v["log"]["head"], key, now=datetime.now(UTC), max_age=timedelta(minutes=1), size=cp.size)
    assert (head.events, head.last_index) == (len(v["proofs"]), v["proofs"][-1]["index"])
    return cp.size


async def view(client: TestClient[Any, Any], code: str) -> dict[str, Any]:
    r = await client.get(f"/v/{code}.json")
    assert r.status == 200, await r.text()
    v: dict[str, Any] = await r.json()
    one_checkpoint(v)
    return v


async def healthz(client: TestClient[Any, Any]) -> dict[str, Any]:
    body: dict[str, Any] = await (await client.get("/healthz")).json()
    replica: dict[str, Any] = body["replica"]
    return replica


async def until(what: str, check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.1)


def on_replica(pair: Replicated, sql: str) -> None:
    with psycopg.connect(pair.replica_dsn, autocommit=True) as c:
        c.execute(sql.encode())


async def test_pages_read_the_replica_within_its_lag_else_the_primary(led: Ledger, pair: Replicated,
                                                                     aiohttp_client: Client) -> None:
    client = await aiohttp_client(create_app(led, anchor=False, lookup_rate=0))
    acks = led.append(T, sent("E1") + [ev("copy.printed", "E1", document="d")])
    code = next(a["code"] for a in acks if "code" in a)
    replica_host = pair.replica_dsn.split("@", 1)[1].split("/", 1)[0]

    async def caught_up() -> bool:  # a new replica is used once it has replayed the ledger's tables
        return bool((await healthz(client))["used"]) and (await view(client, code))["log"]["size"] == led.log.size

    # (1) the replica has the appends: pages from it, /healthz says so (and names no user or password)
    await until("the replica shows the copy", caught_up)
    status = await healthz(client)
    assert status["used"] and status["url_host"] == replica_host and status["lag_s"] <= BOUND_S, status
    assert "ledger@" not in str(status)

    # (2) replay paused, within a (large) bound: a page shows the replica's older checkpoint, whole
    on_replica(pair, "SELECT pg_wal_replay_pause()")
    before = led.log.size
    led.append(T, sent("E2"))  # another envelope: E1's page is still true of the replica's tree
    assert led.log.size > before
    assert led.log.replica is not None
    led.log.replica.max_lag_s = 3600.0
    v = await view(client, code)
    assert v["log"]["size"] == before < led.log.size, "read from the replica, as of its checkpoint"
    # a tile the replica does not hold yet is read from the primary, not refused
    r = await client.get(f"/tile/0/000.p/{led.log.size}")
    assert r.status == 200 and len(await r.read()) == 32 * led.log.size
    r = await client.get(f"/tile/entries/000.p/{led.log.size}")
    assert r.status == 200

    # (3) over the bound: /healthz says it lags, and pages read the primary (they show the new events)
    led.append(T, sign("a", "E1"))
    led.log.replica.max_lag_s = BOUND_S

    async def lags() -> bool:
        s = await healthz(client)
        return not s["used"] and s["lag_s"] is not None and s["lag_s"] > BOUND_S

    await until("the replica is found lagging", lags)
    status = await healthz(client)
    assert status["why"] == f"lags {status['lag_s']:.1f} s > 1 s", status
    v = await view(client, code)
    assert v["log"]["size"] == led.log.size
    assert [t["type"] for t in v["timeline"]][-2:] == ["party.authenticated", "party.signed"]
    assert (await client.get(f"/v/{code}")).status == 200

    # (4) replay resumed: back on the replica, which shows the same, whole
    on_replica(pair, "SELECT pg_wal_replay_resume()")

    async def used() -> bool:
        return bool((await healthz(client))["used"])

    await until("the replica is used again", used)
    assert (await view(client, code))["log"]["size"] == led.log.size

    # (5) the replica stopped: pages from the primary, /healthz names the replica that is gone
    pair.replica.stop_server()
    led.append(T, sign("b", "E1"))
    v = await view(client, code)
    assert v["log"]["size"] == led.log.size and v["timeline"][-1]["type"] == "party.signed"
    status = await healthz(client)
    assert not status["used"] and status["url_host"] == replica_host and status["why"].startswith("unreachable")
    assert (await client.get(f"/v/{code}")).status == 200


@pytest.mark.parametrize("lines, refusal", [
    ('read_database = "postgresql://ledger@db2/evidence"', "set database"),
    ('database = "postgresql://ledger@db/evidence"\nread_database = "postgresql://ledger:pw@db2/evidence"',
     "holds a password"),
    ('database = "postgresql://ledger@db/evidence"\nread_database = "mysql://db2/evidence"', "postgresql://"),
    ("replica_max_lag_s = 0", "out of range"),
])
def test_read_database_is_checked(tmp_path: Path, lines: str, refusal: str) -> None:
    (tmp_path / "config.toml").write_text(lines + "\n")
    with pytest.raises(LedgerError, match=refusal):
        load_config(tmp_path)


def test_a_status_names_the_replica_by_host_only() -> None:
    assert url_host("postgresql://ledger@db2.example:5433/evidence?sslmode=require") == "db2.example:5433"
    assert url_host("postgresql://ledger@[::1]/evidence") == "[::1]"
    replica = Replica("postgresql://ledger@127.0.0.1:1/evidence", "postgresql://ledger@127.0.0.1:1/evidence",
                      "secret", 5.0)
    replica.failed(sqlite3.OperationalError('PostgreSQL: connection failed: FATAL:  password authentication '
                                            'failed for user "ledger"'))
    status = replica.status()  # measured again only after a while: a replica that went away is not asked
    assert status.to_json() == {"url_host": "127.0.0.1:1", "lag_s": None, "used": False, "why":
                                'unreachable: connection failed: FATAL:  password authentication failed for user "..."'}
