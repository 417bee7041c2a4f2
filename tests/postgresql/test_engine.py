"""What only PostgreSQL does: its triggers, its URL and password settings, `ledger migrate`, and a server
that goes away and comes back while the ledger writes."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

from ledger.anchoring.anchor import Anchorer, clients_for
from ledger.audit.run import audit
from ledger.config import load_config
from ledger.documents.blobs import BlobStore
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import create_demo
from ledger.errors import LedgerError, RefusedError, StorageError
from ledger.storage.schema import DB_NAME
from tests.cli.test_cli import run
from tests.envelopes.test_lifecycle import T, completed, ev
from tests.pg import PASSWORD, PASSWORD_USER, cluster


@pytest.fixture
def led(tmp_path: Path, pg_database: str) -> Ledger:
    ledger = Ledger.init(tmp_path / "home", database=pg_database)
    ledger.append(T, completed("E1") + [ev("copy.printed", "E1", document="d")])
    for k in range(130):  # enough entries for a full tile
        ledger.append(T, [ev("envelope.created", f"X{k}", title="t"), ev("party.added", f"X{k}", party="p",
                                                                         role="cc", name="n")])
    assert ledger.log.size > 256
    return ledger


@pytest.mark.parametrize("sql", [
    "UPDATE entry_chunks SET data = '\\x00' WHERE start = 0",
    "DELETE FROM entry_chunks",
    "TRUNCATE entry_chunks",
    "UPDATE tiles SET hashes = '\\x00'",
    "DELETE FROM checkpoints",
    "UPDATE checkpoint_records SET note = 'x'",
    "DELETE FROM tile_edge",
    "UPDATE tile_edge SET hashes = '\\x00' WHERE level = 0",
    "UPDATE log_head SET size = 0",
    "DELETE FROM log_head",
])
def test_log_tables_refuse_update_and_delete(led: Ledger, sql: str) -> None:
    try:
        with psycopg.connect(led.config.database, autocommit=True) as c, \
                pytest.raises(psycopg.errors.RaiseException, match="append-only|may only grow"):
            c.execute(sql.encode())
    finally:
        led.close()


def test_the_audit_finds_what_was_changed_behind_the_triggers(led: Ledger) -> None:
    """A superuser can switch triggers off: the audit names the changed bytes, as on SQLite."""
    url = led.config.database
    led.close()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SET session_replication_role = replica")  # no triggers for this session
        start, data = c.execute("SELECT start, data FROM entry_chunks ORDER BY start LIMIT 1 OFFSET 3").fetchone()
        flipped = bytearray(data)
        flipped[40] ^= 1
        c.execute("UPDATE entry_chunks SET data = %s WHERE start = %s", (bytes(flipped), start))
        c.execute("UPDATE envelopes SET status = 'voided' WHERE ref = 'E1'")
    led = Ledger.open_reader(led.home)
    try:
        problems = audit(led.log, verifier=led.verifier).problems
    finally:
        led.close()
    assert problems[0] == (f"entry {start}: its bytes do not hash to the leaf hash stored in tile 0/0 "
                           "(the entry or the tile was changed)")
    assert any("stored projection differs from the log (status 'voided'" in p for p in problems), problems


def test_a_url_with_a_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match="holds a password.*database_password_env"):
        Ledger.init(tmp_path / "a", database="postgresql://ledger:secret@127.0.0.1/x")
    assert not (tmp_path / "a" / "log.key").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.toml").write_text('database = "postgresql://ledger:secret@127.0.0.1/x"\n')
    with pytest.raises(LedgerError, match="holds a password") as info:
        load_config(tmp_path / "b")
    assert info.value.code == "bad_config"
    r = run(tmp_path / "c", "init", "--database", "postgresql://ledger:secret@127.0.0.1/x")
    assert r.returncode == 2 and "password" in r.stderr and "secret" not in r.stderr, r.stderr


def test_the_password_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = cluster().fresh_database().replace("://ledger@", f"://{PASSWORD_USER}@")
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('database_password_env = "LEDGER_TEST_DB_PASSWORD"\n')
    monkeypatch.delenv("LEDGER_TEST_DB_PASSWORD", raising=False)
    with pytest.raises(LedgerError, match="LEDGER_TEST_DB_PASSWORD"):
        Ledger.init(home, database=url)
    monkeypatch.setenv("LEDGER_TEST_DB_PASSWORD", "wrong")
    with pytest.raises(StorageError, match="cannot connect"):
        Ledger.init(home, database=url)
    assert not (home / "log.key").exists(), "a refused init writes nothing"
    monkeypatch.setenv("LEDGER_TEST_DB_PASSWORD", PASSWORD)
    Ledger.init(home, database=url).close()
    text = (home / "config.toml").read_text()
    assert f"database = \"{url}\"" in text and PASSWORD not in text
    led = Ledger.open(home)
    try:
        assert led.append(T, [ev("envelope.created", "P1", title="t")])[0]["index"] == 0
    finally:
        led.close()
    # a second init on the same database is refused before anything is written
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.toml").write_text('database_password_env = "LEDGER_TEST_DB_PASSWORD"\n')
    with pytest.raises(RefusedError, match="already holds a ledger"):
        Ledger.init(tmp_path / "other", database=url)
    assert not (tmp_path / "other" / "log.key").exists()


def _rows(conn: object, table: str, columns: str) -> list[tuple[object, ...]]:
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2").fetchall()]  # type: ignore[attr-defined]


async def test_migrate_keeps_the_root_and_every_byte(tmp_path: Path, pg_database: str) -> None:
    home = tmp_path / "home"
    led = Ledger.init(home)
    create_demo(led)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        await Anchorer(led, clients_for(led, session)).anchor_now()  # anchors and tsa_status come along too
    for k in range(300):
        led.append(T, [ev("envelope.created", f"M{k}", title="t")])
    size, root = led.log.size, led.log.root_at(led.log.size)
    led.close()
    r = run(home, "migrate", "--to", pg_database)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "audit passed" in r.stdout and root.hex() in r.stderr, r.stdout + r.stderr
    assert load_config(home).database == pg_database
    lite = sqlite3.connect(home / DB_NAME)
    led = Ledger.open(home)  # now on PostgreSQL
    try:
        assert led.log.postgresql and led.log.size == size and led.log.root_at(size) == root
        for table, columns in [("entry_chunks", "start, count, data"), ("tiles", 'level, idx, hashes, "inner"'),
                               ("tile_edge", "level, idx, hashes"), ("checkpoints", "size, root, note, created"),
                               ("checkpoint_records", "size, note"), ("anchors", "id, size, token, gen_time"),
                               ("envelopes", "env, tenant, ref, state"), ("openings", "env, commitment, salt, value"),
                               ("seals", "tenant, fingerprint, seal, certificate"), ("api_keys", "id, seal")]:
            assert _rows(led.log.conn, table, columns) == _rows(lite, table, columns), table
        assert led.log.entry(5) == led.log.entries(0, 6)[5]
        # the documents' bytes came along: a host with an empty blobs/ serves them from the database
        stored = sorted(p.name for p in (home / "blobs").glob("??/*"))
        assert stored and f"stored {len(stored)} documents of blobs/ in the database" in r.stderr
        other = BlobStore(tmp_path / "other-blobs", max_size=1 << 30, database=pg_database)
        for sha in stored:
            assert other.path(sha).read_bytes() == (home / "blobs" / sha[:2] / sha).read_bytes()
        led.append(T, [ev("envelope.created", "AFTER", title="t")])
        assert led.log.consistency_proof(size, size + 1)
    finally:
        led.close()
        lite.close()
    r = run(home, "audit")
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr
    r = run(home, "migrate", "--to", pg_database)  # config.toml names PostgreSQL now
    assert r.returncode == 2 and "migrate copies a SQLite ledger" in r.stderr, r.stderr


def test_migrate_into_a_database_with_a_ledger_is_refused(tmp_path: Path, pg_database: str) -> None:
    Ledger.init(tmp_path / "pg", database=pg_database).close()
    home = tmp_path / "home"
    Ledger.init(home).close()
    r = run(home, "migrate", "--to", pg_database)
    assert r.returncode == 2 and "already holds a ledger" in r.stderr, r.stderr
    assert load_config(home).database == ""


def test_a_server_restart_fails_writes_with_503_and_loses_nothing(tmp_path: Path, pg_database: str) -> None:
    led = Ledger.init(tmp_path / "home", database=pg_database)
    pg = cluster()
    acked: list[int] = []
    try:
        acked += [a["index"] for a in led.append(T, completed("BEFORE"))]
        assert led.log.entry(0)  # a reader connection, too
        pg.stop_server()
        try:
            for _ in range(3):
                with pytest.raises(StorageError) as info:
                    led.append(T, [ev("envelope.created", "DOWN", title="t")])
                assert info.value.status == 503
        finally:
            pg.start_server()
        # the writer and the readers reconnect by themselves
        acked += [a["index"] for a in led.append(T, completed("AFTER"))]
        assert led.log.entry(acked[-1])
        assert led.envelope(T, "AFTER")["status"] == "completed"
        assert acked == list(range(len(acked))) == list(range(led.log.size))
        assert audit(led.log).ok
    finally:
        led.close()
    assert os.environ.get("PGPASSWORD") is None
