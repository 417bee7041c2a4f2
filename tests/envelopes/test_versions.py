"""Document versions: a party's signed PDF and a scan of a paper copy are versions of the document the
log registers; `/d/<sha256>` says which version a file is, and the projection is audited and filled in
for a ledger made before it existed."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from ledger.audit.run import audit
from ledger.envelopes.core import Ledger
from ledger.storage.schema import DB_NAME
from portal.app import create_app
from tests.envelopes.test_lifecycle import T, completed, ev

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def _lifecycle(env: str = "E1") -> list[dict[str, Any]]:
    """A completed envelope whose parties' signed PDFs are files of their own."""
    events = completed(env)
    for e in events:
        if e["type"] == "party.signed":
            e["signed_sha256"] = hashlib.sha256(f"signed by {e['party']}".encode()).hexdigest()
    return events


def _signed_sha(led: Ledger, party: int) -> str:
    (sha,) = led.log.conn.execute("SELECT sha256 FROM versions WHERE kind = 'signed' AND party = ?",
                                  (party,)).fetchone()
    return str(sha)


async def test_the_file_check_says_which_version_a_file_is(aiohttp_client: Client, ledger: Ledger) -> None:
    ledger.append(T, _lifecycle() + [ev("copy.printed", "E1", document="d")])
    scan = hashlib.sha256(b"a scan of copy 1").hexdigest()
    ledger.append(T, [ev("paper.scanned", "E1", document="d", sha256=scan, copy=1)])
    client = await aiohttp_client(create_app(ledger, anchor=False))
    (original,) = ledger.log.conn.execute("SELECT sha256 FROM documents").fetchone()
    answers = {}
    for name, sha in (("original", original), ("signed", _signed_sha(ledger, 1)), ("scan", scan),
                      ("none", hashlib.sha256(b"x").hexdigest())):
        r = await client.get(f"/d/{sha}")
        answers[name] = await r.json()
    assert answers["original"]["versions"] == [{"kind": "original", "document": 1}]
    assert answers["signed"]["registered"] and answers["signed"]["versions"] == [
        {"kind": "signed", "document": 1, "party": 1}]
    assert answers["scan"]["versions"] == [{"kind": "scan", "document": 1, "copy": 1}]
    assert answers["none"] == {"sha256": hashlib.sha256(b"x").hexdigest(), "registered": False, "versions": []}


def test_a_ledger_made_before_versions_gets_them_once(tmp_path: Path) -> None:
    # SQLite only: ledgers older than the versions table exist only on SQLite (PostgreSQL ledgers began
    # with every table: `schema.ensure_pg` has nothing to fill)
    home = tmp_path / "home"
    led = Ledger.init(home)
    led.append(T, _lifecycle())
    before = led.log.conn.execute("SELECT * FROM versions ORDER BY idx").fetchall()
    assert len(before) == 2  # both parties' signed PDFs
    led.close()
    c = sqlite3.connect(home / DB_NAME)
    c.execute("DROP TABLE versions")  # as an older version of the ledger left it
    c.close()
    led = Ledger.open(home)
    try:
        assert led.log.conn.execute("SELECT * FROM versions ORDER BY idx").fetchall() == before
        rep = audit(led.log)
        assert rep.ok, rep.problems
    finally:
        led.close()
