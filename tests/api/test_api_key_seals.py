"""API keys are sealed by the log key: a row changed by someone who can write the database file (another
tenant, wider scopes, a revocation taken back, a key added) is refused at the API, and keys made before
seals existed are sealed once when the ledger is opened."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ledger.access.apikeys import create_key, revoke_key
from ledger.envelopes.core import Ledger
from ledger.storage.schema import DB_NAME
from portal.app import create_app
from tests.storage.test_tamper import connect

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def _raw(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / DB_NAME, isolation_level=None)


def _change(home: Path, sql: str) -> None:
    """Change the database as someone who can write it (no trigger guards api_keys), on either engine."""
    c = connect(home)
    try:
        c.execute(sql)
    finally:
        c.close()


async def _status(client: TestClient[Any, Any], key: str, ref: str = "E1") -> int:
    r = await client.get(f"/api/v1/envelopes/{ref}", headers={"Authorization": f"Bearer {key}"})
    return r.status


@pytest.mark.parametrize("change", [
    "UPDATE api_keys SET tenant = 'tenant-b'",
    "UPDATE api_keys SET scopes = 'admin'",
    "UPDATE api_keys SET created = '2020-01-01T00:00:00+00:00'",
    "UPDATE api_keys SET seal = NULL",
])
async def test_a_changed_key_row_is_refused(aiohttp_client: Client, ledger: Ledger, change: str) -> None:
    key = create_key(ledger.log, "tenant-a", ["read"])
    ledger.append("tenant-b", [{"type": "envelope.created", "envelope": "E1", "title": "t"}])
    client = await aiohttp_client(create_app(ledger))
    assert await _status(client, key) == 404  # tenant-a has no E1: the key works, and sees its own tenant
    _change(ledger.home, change)
    other = await aiohttp_client(create_app(ledger))  # a fresh key cache
    assert await _status(other, key) == 401


async def test_a_revocation_taken_back_is_refused(aiohttp_client: Client, ledger: Ledger) -> None:
    key = create_key(ledger.log, "tenant-a", ["read"])
    revoke_key(ledger.log, key.split("_")[1])
    _change(ledger.home, "UPDATE api_keys SET revoked = NULL")
    client = await aiohttp_client(create_app(ledger))
    assert await _status(client, key) == 401


async def test_keys_made_before_seals_are_sealed_once_at_open(aiohttp_client: Client, tmp_path: Path) -> None:
    # SQLite only: keys made before seals exist only in SQLite ledgers (PostgreSQL ledgers began sealed)
    home = tmp_path / "home"
    led = Ledger.init(home)
    key = create_key(led.log, "tenant-a", ["read"])
    led.close()
    # the database as an older version left it: no seal column
    c = _raw(home)
    c.execute("ALTER TABLE api_keys DROP COLUMN seal")
    c.close()
    led = Ledger.open(home)
    try:
        client = await aiohttp_client(create_app(led))
        assert await _status(client, key) == 404, "an older key still works"
        # a row added after the upgrade, unsealed, is not sealed by a later open
        _raw(home).execute("INSERT INTO api_keys(id, tenant, scopes, secret_sha256, created) "
                           "SELECT '0123456789abcdef', 'tenant-b', 'admin', secret_sha256, created FROM api_keys")
    finally:
        led.close()
    led = Ledger.open(home)
    try:
        (n,) = led.log.conn.execute("SELECT count(*) FROM api_keys WHERE seal IS NULL").fetchone()
        assert n == 1
    finally:
        led.close()
