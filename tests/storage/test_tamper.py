"""Tampering with storage is caught: triggers refuse edits, and `ledger audit` names what is wrong.

On both engines. The tampering bypasses the triggers as anyone who can write the database can: on SQLite
by dropping them from the file, on PostgreSQL as a superuser whose session skips them
(`session_replication_role = replica`); `raw(home)` gives that connection, with sqlite3's API on both.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ledger.audit.run import audit
from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.errors import IntegrityError
from ledger.storage.engine import PgConnection
from ledger.storage.schema import DB_NAME
from tests.conftest import copy_home, new_ledger
from tests.envelopes.test_lifecycle import T, completed, ev
from tests.pg import cluster, copy_database

H = hashlib.sha256(b"x").hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Path:
    path = tmp_path_factory.mktemp("template") / "home"
    led = new_ledger(path, engine)
    led.append(T, completed("E1") + [ev("copy.printed", "E1", document="d")])
    for k in range(130):  # enough entries for a full tile
        led.append(T, [ev("envelope.created", f"X{k}", title="t"),
                       ev("document.added", f"X{k}", document="d", sha256=H, size=1, name="n")])
    led.append(T, completed("E2"))
    assert led.log.size > 256
    rep = audit(led.log)
    assert rep.ok, rep.problems
    led.close()
    return path


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    return copy_home(template, tmp_path / "home")


class PgRaw:
    """A superuser's session on a ledger's PostgreSQL database, with sqlite3's API (`?` placeholders, and
    `total_changes`); `triggers=False`: a session that skips every trigger, as SQLite's dropped ones."""

    def __init__(self, url: str, *, triggers: bool = True) -> None:
        self.conn = PgConnection(url, role="tamper")
        if not triggers:
            self.conn.execute("SET session_replication_role = replica")
        self.total_changes = 0

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        cur = self.conn.execute(sql, parameters)
        if not sql.lstrip().upper().startswith("SELECT") and cur.rowcount > 0:
            self.total_changes += cur.rowcount
        return cur

    def close(self) -> None:
        self.conn.close()


def connect(home: Path) -> Any:
    """A connection to the ledger's database as it is (its triggers on), with sqlite3's API."""
    url = load_config(home).database
    return PgRaw(url) if url else sqlite3.connect(home / DB_NAME, isolation_level=None)


def raw(home: Path) -> Any:
    """A connection to the ledger's database that no trigger stops (see the module's docstring)."""
    url = load_config(home).database
    if url:
        return PgRaw(url, triggers=False)
    c = sqlite3.connect(home / DB_NAME, isolation_level=None)
    for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        c.execute(f"DROP TRIGGER {name}")
    return c


def backup(home: Path, to: Path) -> None:
    """Copy the (closed) ledger's database aside: its files, or on PostgreSQL a copy of the database."""
    url = load_config(home).database
    to.mkdir()
    if url:
        (to / "database").write_text(copy_database(url))
        return
    for f in home.glob(f"{DB_NAME}*"):
        shutil.copy(f, to / f.name)


def restore(home: Path, backup: Path) -> None:
    """Put the database copied by `backup` back in place of the ledger's (closed) one."""
    url = load_config(home).database
    if url:
        name, copy = url.rsplit("/", 1)[1], (backup / "database").read_text().rsplit("/", 1)[1]
        # renamed, not dropped and copied again: DROP DATABASE waits for a checkpoint
        cluster().sql("postgres", f"ALTER DATABASE {name} RENAME TO {name}_replaced",
                      f"ALTER DATABASE {copy} RENAME TO {name}")
        return
    for f in home.glob(f"{DB_NAME}*"):
        f.unlink()
    for f in backup.iterdir():
        shutil.copy(f, home / f.name)


def audit_problems(home: Path) -> list[str]:
    led = Ledger.open(home)
    try:
        return audit(led.log).problems
    finally:
        led.close()


@pytest.mark.parametrize("sql", [
    "UPDATE entry_chunks SET data = x'00' WHERE start = 0",
    "DELETE FROM entry_chunks",
    "UPDATE tiles SET hashes = zeroblob(8192)",
    "DELETE FROM checkpoints",
    "UPDATE checkpoints SET note = 'x'",
    "DELETE FROM tile_edge",
    "UPDATE tile_edge SET hashes = x'00' WHERE level = 0",
])
def test_log_tables_refuse_update_and_delete(home: Path, sql: str) -> None:
    c = connect(home)
    if isinstance(c, PgRaw):  # PostgreSQL's forms of SQLite's blob literals
        sql = sql.replace("x'00'", "'\\x00'::bytea").replace("zeroblob(8192)", "decode(repeat('00', 8192), 'hex')")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only|may only grow"):
            c.execute(sql)
    finally:
        c.close()


def _flip_blob(c: sqlite3.Connection, table: str, col: str, where: str, offset: int) -> None:
    (blob,) = c.execute(f"SELECT {col} FROM {table} WHERE {where}").fetchone()
    b = bytearray(blob)
    b[offset] ^= 0x01
    c.execute(f"UPDATE {table} SET {col} = ? WHERE {where}", (bytes(b),))


def test_one_byte_of_an_entry(home: Path) -> None:
    c = raw(home)
    (start, data) = c.execute("SELECT start, data FROM entry_chunks ORDER BY start LIMIT 1 OFFSET 3").fetchone()
    _flip_blob(c, "entry_chunks", "data", f"start = {start}", 40)
    problems = audit_problems(home)
    assert problems[0] == (f"entry {start}: its bytes do not hash to the leaf hash stored in tile 0/0 "
                           "(the entry or the tile was changed)")


def test_one_byte_of_a_full_tile(home: Path) -> None:
    c = raw(home)
    _flip_blob(c, "tiles", "hashes", "level = 0 AND idx = 0", 32 * 17 + 5)
    problems = audit_problems(home)
    assert problems[0].startswith("entry 17: its bytes do not hash to the leaf hash stored in tile 0/0")
    assert problems[1].startswith("tiles row level=0 idx=0: wrong hashes")


def test_one_byte_of_an_inner_node(home: Path) -> None:
    c = raw(home)
    _flip_blob(c, "tiles", '"inner"', "level = 0 AND idx = 0", 32 * 200 + 3)  # quoted: a keyword in PostgreSQL
    assert audit_problems(home)[0].startswith("tiles row level=0 idx=0")


def test_one_byte_of_a_checkpoint(home: Path) -> None:
    c = raw(home)
    (size,) = c.execute("SELECT size FROM checkpoints ORDER BY size LIMIT 1 OFFSET 2").fetchone()
    (note,) = c.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
    lines = note.split("\n")
    lines[2] = ("A" if lines[2][0] != "A" else "B") + lines[2][1:]
    c.execute("UPDATE checkpoints SET note = ? WHERE size = ?", ("\n".join(lines), size))
    problems = audit_problems(home)
    assert problems == [f"checkpoints row size={size}: signature or format invalid "
                        "(signature by localhost/evidence-ledger does not verify)"]


def test_a_checkpoint_root_column(home: Path) -> None:
    c = raw(home)
    (size,) = c.execute("SELECT size FROM checkpoints ORDER BY size LIMIT 1 OFFSET 4").fetchone()
    _flip_blob(c, "checkpoints", "root", f"size = {size}", 0)
    problems = audit_problems(home)
    assert problems[0].startswith(f"checkpoints row size={size}: the signed note does not match the row")


def test_a_projection_row(home: Path) -> None:
    c = raw(home)
    c.execute("UPDATE envelopes SET status = 'voided' WHERE ref = 'E1'")
    (env,) = c.execute("SELECT env FROM envelopes WHERE ref = 'E1'").fetchone()
    problems = audit_problems(home)
    assert problems == [f"envelopes row env={env}: stored projection differs from the log "
                        "(status 'voided', log says 'completed')"]


def test_a_copy_row(home: Path) -> None:
    c = raw(home)
    c.execute("UPDATE copies SET code = 'AAAAAAAAAAAAAAAAAAAA'")
    problems = audit_problems(home)
    assert len(problems) == 1 and problems[0].startswith("copies row code=AAAA")


def test_a_removed_index_row(home: Path) -> None:
    c = raw(home)
    c.execute("DELETE FROM envelope_entries WHERE idx = 5")
    assert audit_problems(home) == ["envelope_entries: row count differs from the number of entries in the log"]


def test_restored_backup_is_refused_at_open(home: Path, tmp_path: Path) -> None:
    backup(home, tmp_path / "backup")
    led = Ledger.open(home)
    led.append(T, completed("LATER"))
    led.close()
    restore(home, tmp_path / "backup")
    with pytest.raises(IntegrityError, match="restored from an old backup") as info:
        Ledger.open(home)
    assert info.value.code == "restored_backup"


def test_forked_database_is_refused_at_open(home: Path, tmp_path: Path) -> None:
    """A database that diverged from the published checkpoint (same size, other entries) is refused."""
    backup(home, tmp_path / "backup")
    led = Ledger.open(home)
    led.append(T, completed("ONE"))
    led.close()
    published = (home / "ledger.checkpoint").read_text()
    restore(home, tmp_path / "backup")
    (home / "ledger.checkpoint").unlink()
    led = Ledger.open(home)
    led.append(T, completed("TWO"))  # the same number of events, different content
    led.close()
    (home / "ledger.checkpoint").write_text(published)
    with pytest.raises(IntegrityError, match="forked") as info:
        Ledger.open(home)
    assert info.value.code == "forked"


def test_audit_finds_a_damaged_or_missing_original(tmp_path: Path, engine: str) -> None:
    """The originals the portal serves are checked against the SHA-256 their entries registered."""
    from ledger.envelopes.demo import create_demo

    led = new_ledger(tmp_path / "home", engine)
    try:
        create_demo(led)
        rep = audit(led.log, blobs=led.blobs)
        assert rep.ok and rep.documents >= 2 and rep.unreferenced == 0, rep.problems
        rows = led.log.conn.execute("SELECT sha256, idx FROM documents ORDER BY idx").fetchall()
        served = list(dict.fromkeys(sha for sha, idx in rows  # the ones that may be downloaded
                                    if json.loads(led.log.entry(idx))["data"]["download"] != "none"))
        assert len(served) >= 2, served
        damaged, missing = led.blobs.path(served[0]), led.blobs.path(served[1])
        damaged.chmod(0o600)
        damaged.write_bytes(damaged.read_bytes()[:-1] + b"X")
        missing.unlink()
        if load_config(tmp_path / "home").database:  # on PostgreSQL the database's copy is the record
            c = raw(tmp_path / "home")
            c.execute("DELETE FROM blob_chunks WHERE sha256 = ?", (served[1],))
            c.execute("DELETE FROM blobs WHERE sha256 = ?", (served[1],))
            c.close()
        stray = led.blobs.root / "ab" / ("ab" + "0" * 62)
        stray.parent.mkdir(exist_ok=True)
        stray.write_bytes(b"an upload refused after it was stored")
        rep = audit(led.log, blobs=led.blobs)
        assert any("is damaged" in p and served[0] in p for p in rep.problems), rep.problems
        assert any("is not in" in p and served[1] in p for p in rep.problems), rep.problems
        assert rep.unreferenced == 1 and rep.to_json()["unreferenced_files"] == 1
    finally:
        led.close()
