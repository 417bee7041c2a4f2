"""`ledger audit` covers every table a page shows, a proof relies on or an access decision reads.

With the triggers dropped (anyone who can write the database file can; on PostgreSQL a superuser's
session that skips them, `tests.storage.test_tamper.raw`), one row of each table is changed or deleted in
turn; audit must fail and name the table and row. On both engines. The ledger is a real one: the
demo envelopes in every state (documents, parties, copies, an access code), a notary's cosignatures
and anchors by the local TSA.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger import cli
from ledger.audit.run import audit_home
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import create_demo, demo_notary
from ledger.errors import IntegrityError
from tests.browser_util import free_port
from tests.cli.test_cli import BIN
from tests.conftest import ROOT, copy_home, new_ledger
from tests.envelopes.test_lifecycle import completed
from tests.storage.test_tamper import connect, raw

Mutation = Callable[[Any], None]  # on a `raw` connection: sqlite3's, or test_tamper.PgRaw


def run(home: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["--home", str(home), *args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Path:
    home = tmp_path_factory.mktemp("audit") / "home"
    led = new_ledger(home, engine)
    create_demo(led)
    demo_notary(led)
    led.close()
    assert run(home, "anchor")[0] == 0
    led = Ledger.open(home)
    for k in range(30):  # past one full tile of 256 entries
        led.append("other", completed(f"O{k}"))
    demo_notary(led)
    led.close()
    assert run(home, "anchor")[0] == 0
    assert run(home, "keys", "create", "--tenant", "demo", "--scopes", "read")[0] == 0
    assert run(home, "keys", "create", "--tenant", "demo", "--scopes", "append")[0] == 0
    kid = run(home, "keys", "list")[1].split()[0]
    assert run(home, "keys", "revoke", kid)[0] == 0
    rep = audit_home(home)
    assert rep.ok, rep.problems
    assert rep.api_keys == 2 and rep.anchors >= 2 and rep.cosignatures >= 2 and rep.records >= 3 and rep.unbound == 0, rep
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    return copy_home(template, tmp_path / "home")


def one(c: Any, sql: str) -> tuple:  # type: ignore[type-arg]
    row = c.execute(sql).fetchone()
    assert row is not None, sql
    return tuple(row)


def flip(c: Any, table: str, col: str, where: str, offset: int = -1) -> None:
    (blob,) = one(c, f"SELECT {col} FROM {table} WHERE {where}")
    b = bytearray(blob if isinstance(blob, bytes) else blob.encode())
    b[offset] ^= 0x01
    value: bytes | str = bytes(b) if isinstance(blob, bytes) else b.decode()
    c.execute(f"UPDATE {table} SET {col} = ? WHERE {where}", (value,))


def middle_checkpoint(c: Any) -> int:
    sizes = [s for (s,) in c.execute("SELECT size FROM checkpoints ORDER BY size")]
    return int(sizes[len(sizes) // 2])


def swap_ordinals(c: Any) -> None:
    env, a, b = one(c, "SELECT x.env, x.ref, y.ref FROM refs x JOIN refs y ON x.env = y.env AND x.kind = y.kind "
                       "AND x.kind = 'party' AND x.ordinal = 1 AND y.ordinal = 2")
    c.execute("UPDATE refs SET ref = '#' WHERE env = ? AND kind = 'party' AND ref = ?", (env, a))
    c.execute("UPDATE refs SET ref = ? WHERE env = ? AND kind = 'party' AND ref = ?", (a, env, b))
    c.execute("UPDATE refs SET ref = ? WHERE env = ? AND kind = 'party' AND ref = '#'", (b, env))


def move_to_other_tenant(c: Any) -> None:
    c.execute("UPDATE envelopes SET tenant = 'other' WHERE ref = 'DEMO-COMPLETED'")


def change_opening_value(c: Any) -> None:
    env, commitment, value = one(c, "SELECT env, commitment, value FROM openings WHERE value LIKE '{\"title\"%'")
    c.execute("UPDATE openings SET value = ? WHERE env = ? AND commitment = ?",
              (json.dumps({"title": "Another contract"}), env, commitment))


def new_access_code(c: Any) -> None:
    c.execute("UPDATE access_codes SET code_sha256 = ?", (hashlib.sha256(b"AMINE").hexdigest(),))


# (mutation, what audit must name): one row of each table, changed or deleted
CASES: dict[str, tuple[Mutation, str]] = {
    "entry_chunks: a byte of an entry": (lambda c: flip(c, "entry_chunks", "data", "start = 0", 40), "entry 0:"),
    "tiles: a leaf hash": (lambda c: flip(c, "tiles", "hashes", "level = 0 AND idx = 0", 5), "tiles row level=0 idx=0"),
    "tile_edge: a hash": (lambda c: flip(c, "tile_edge", "hashes", "level = 0", 3), "tile_edge row level=0"),
    "checkpoints: a middle row deleted": (
        lambda c: c.execute(f"DELETE FROM checkpoints WHERE size = {middle_checkpoint(c)}"), "is missing"),
    "checkpoints: created changed": (
        lambda c: c.execute(f"UPDATE checkpoints SET created = '2020-01-01T00:00:00.000+00:00' "
                            f"WHERE size = {middle_checkpoint(c)}"), "created is 2020-01-01"),
    "checkpoints: a byte of a note": (lambda c: flip(c, "checkpoints", "note", f"size = {middle_checkpoint(c)}", 3),
                                      "checkpoints row size="),
    "checkpoint_records: a row deleted": (
        lambda c: c.execute(f"DELETE FROM checkpoint_records WHERE size = {middle_checkpoint(c)}"),
        "checkpoint_records: no record of the checkpoint of size"),
    "checkpoint_records: a byte of a note": (
        lambda c: flip(c, "checkpoint_records", "note", f"size = {middle_checkpoint(c)}", 60),
        "checkpoint_records row size="),
    "anchors: a byte of a token": (lambda c: flip(c, "anchors", "token", "id = 1", 80), "anchors row id=1"),
    "anchors: gen_time changed": (
        lambda c: c.execute("UPDATE anchors SET gen_time = '2020-01-01T00:00:00.000Z' WHERE id = 1"),
        "anchors row id=1 (TSA local"),
    "anchors: size changed": (
        lambda c: c.execute("UPDATE anchors SET size = (SELECT min(size) FROM checkpoints WHERE size > 0) "
                            "WHERE id = 1"), "anchors row id=1"),
    "anchors: a row deleted": (lambda c: c.execute("DELETE FROM anchors WHERE id = 1"), "anchors: id 1 missing"),
    "anchors: the newest row deleted": (
        lambda c: c.execute("DELETE FROM anchors WHERE id = (SELECT max(id) FROM anchors WHERE renews IS NULL)"),
        "no anchor of it is stored"),
    "cosignatures: a byte of a signature": (lambda c: _flip_cosignature(c), "cosignatures row size="),
    "cosignatures: time changed": (
        lambda c: c.execute("UPDATE cosignatures SET time = 1577836800"), "time is 1577836800"),
    "envelopes: tenant changed": (move_to_other_tenant, "tenant 'other'"),
    "envelopes: ref changed": (lambda c: c.execute("UPDATE envelopes SET ref = 'RENAMED' WHERE ref = 'DEMO-VOID'"),
                               "reference 'RENAMED'"),
    "envelopes: created changed": (
        lambda c: c.execute("UPDATE envelopes SET created = '2020-01-01T00:00:00.000Z' WHERE ref = 'DEMO-VOID'"),
        "created 2020-01-01"),
    "envelope_entries: a row deleted": (
        lambda c: c.execute("DELETE FROM envelope_entries WHERE idx = 3"), "envelope_entries"),
    "refs: two ordinals swapped": (swap_ordinals, "refs row env="),
    "refs: a reference renamed": (
        lambda c: c.execute("UPDATE refs SET ref = 'renamed' WHERE (env, kind, ref) = "
                            "(SELECT env, kind, ref FROM refs ORDER BY env, kind, ref LIMIT 1)"), "refs row env="),
    "openings: a value changed": (change_opening_value, "openings row env="),
    "openings: a salt changed": (lambda c: flip(c, "openings", "salt", "commitment = (SELECT min(commitment) "
                                                "FROM openings)", 3), "no longer open the commitment"),
    "openings: a row deleted": (
        lambda c: c.execute("DELETE FROM openings WHERE commitment = (SELECT min(commitment) FROM openings)"),
        "has no opening"),
    "documents: a hash changed": (lambda c: flip(c, "documents", "sha256", "idx = (SELECT min(idx) FROM documents)", 0),
                                  "documents row env="),
    "copies: a copy number changed": (lambda c: c.execute("UPDATE copies SET copy = copy + 1"), "copies row code="),
    "versions: a signed version's hash changed": (
        lambda c: c.execute(f"UPDATE versions SET sha256 = '{hashlib.sha256(b'other').hexdigest()}' "
                            "WHERE idx = (SELECT min(idx) FROM versions)"), "versions row idx="),
    "versions: a row deleted": (lambda c: c.execute("DELETE FROM versions WHERE idx = (SELECT max(idx) FROM versions)"),
                                "versions table holds"),
    "seal_uses: a use moved to another seal": (lambda c: c.execute(
        f"UPDATE seal_uses SET seal = '{hashlib.sha256(b'other').hexdigest()}'"), "seal_uses row idx="),
    "seal_uses: a row deleted": (lambda c: c.execute("DELETE FROM seal_uses"), "seal_uses table holds"),
    "seals: another party allowed": (lambda c: c.execute("UPDATE seals SET parties = '[\"lessor\", \"lessee\"]'"),
                                     "seals row tenant=demo"),
    "seals: a registration deleted": (lambda c: c.execute("DELETE FROM seals"), "which is not in tenant 'demo'"),
    "seals: the impression's scan replaced": (lambda c: c.execute(
        f"UPDATE seals SET image_sha256 = '{hashlib.sha256(b'other').hexdigest()}'"), "seals row tenant=demo"),
    "holdings: another envelope's file": (lambda c: c.execute(
        "UPDATE holdings SET sha256 = (SELECT sha256 FROM documents d WHERE d.env != holdings.env LIMIT 1) "
        "WHERE idx = (SELECT min(idx) FROM holdings)"), "holdings row env="),
    "access_codes: another code's hash": (new_access_code, "access_codes row env="),
    "access_codes: a row deleted": (lambda c: c.execute("DELETE FROM access_codes"), "has no access code row"),
    "api_keys: moved to another tenant": (lambda c: c.execute("UPDATE api_keys SET tenant = 'other'"),
                                          "api_keys row id="),
    "api_keys: a revocation taken back": (lambda c: c.execute("UPDATE api_keys SET revoked = NULL"),
                                          "api_keys row id="),
    "api_keys: a key added": (lambda c: c.execute(
        "INSERT INTO api_keys(id, tenant, scopes, secret_sha256, created) VALUES "
        f"('0123456789abcdef', 'demo', 'admin', '{hashlib.sha256(b'x').hexdigest()}', '2026-01-01T00:00:00+00:00')"),
        "api_keys row id=0123456789abcdef: it has no seal"),
}


def _flip_cosignature(c: Any) -> None:
    (line,) = one(c, "SELECT line FROM cosignatures ORDER BY size LIMIT 1")
    head, sig = line.rsplit(" ", 1)
    b = bytearray(base64.b64decode(sig))
    b[-3] ^= 1
    c.execute("UPDATE cosignatures SET line = ? WHERE line = ?", (f"{head} {base64.b64encode(bytes(b)).decode()}", line))


@pytest.mark.parametrize("case", sorted(CASES))
def test_audit_names_each_changed_row(home: Path, case: str) -> None:
    mutate, named = CASES[case]
    c = raw(home)
    before = c.total_changes
    mutate(c)
    assert c.total_changes > before, f"{case}: the mutation changed nothing"
    c.close()
    rep = audit_home(home)
    assert not rep.ok, f"{case}: audit passed"
    assert any(named in p for p in rep.problems), (case, rep.problems)
    code, out = run(home, "audit")
    assert code == 1 and named in out and "audit FAILED" in out, out


def _tables(home: Path) -> set[str]:
    c = connect(home)
    sql = ("SELECT name FROM sqlite_master WHERE type = 'table'" if isinstance(c, sqlite3.Connection) else
           "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    tables = {n for (n,) in c.execute(sql)}
    c.close()
    return tables


# PostgreSQL's tables more: the head row every writer extends (on SQLite the write lock is the turn), and
# the documents' bytes (on SQLite, files whose names are their hashes: test_tamper's originals).
HEAD_CASES: dict[str, tuple[Mutation, str]] = {
    "log_head: set back to an earlier checkpoint": (lambda c: c.execute(
        "UPDATE log_head SET size = c.size, root = c.root FROM checkpoints c WHERE c.size = "
        f"{middle_checkpoint(c)}"), "log_head row: tree size"),
    "log_head: a byte of the root": (lambda c: flip(c, "log_head", "root", "id = 1", 0), "log_head row: tree size"),
    "log_head: the row deleted": (lambda c: c.execute("DELETE FROM log_head"), "log_head: the row is missing"),
    # and the documents' bytes, which the database keeps for every host (`ledger.documents.blobs`)
    "blob_chunks: a byte of a document": (lambda c: c.execute(
        "UPDATE blob_chunks SET data = overlay(data PLACING '\\x58'::bytea FROM 200) WHERE seq = 0 AND sha256 = "
        "(SELECT sha256 FROM documents ORDER BY idx LIMIT 1)"), "its copy in the ledger's database"),
    "blobs: a row deleted": (lambda c: c.execute(
        "DELETE FROM blobs WHERE sha256 = (SELECT sha256 FROM documents ORDER BY idx LIMIT 1)"),
        "its copy in the ledger's database"),
}


def test_audit_names_a_changed_head_row(template: Path, tmp_path: Path, engine: str) -> None:
    if engine == "sqlite":
        assert "log_head" not in _tables(template)
        return
    for k, case in enumerate(sorted(HEAD_CASES)):
        mutate, named = HEAD_CASES[case]
        home = copy_home(template, tmp_path / f"home{k}")
        c = raw(home)
        mutate(c)
        assert c.total_changes > 0, f"{case}: the mutation changed nothing"
        c.close()
        rep = audit_home(home)
        assert not rep.ok and any(named in p for p in rep.problems), (case, rep.problems)
        if not case.startswith("log_head"):
            continue
        led = Ledger.open(home)
        try:  # as the audit says: no writer extends it
            with pytest.raises(IntegrityError, match="log_head|head row") as info:
                led.append("other", completed("AFTER"))
            assert info.value.code == "damaged"
        finally:
            led.close()


def test_every_table_is_in_the_matrix(template: Path) -> None:
    """A table added later must join the matrix (or be named here as one that holds no evidence)."""
    tables = _tables(template)
    covered = {case.split(":")[0] for case in [*CASES, *HEAD_CASES]}
    # meta: the schema's own notes; tsa_status: the anchoring loop's health (a projection, never shown as
    # evidence); idempotency: the first answers to retried API requests, a cache of acknowledgements a
    # platform can check against the log (its proofs), never shown or trusted by the ledger; tsa_serial
    # (PostgreSQL): the local TSA's next serial number, a counter that may only grow
    assert tables - covered == {"meta", "tsa_status", "idempotency"} | ({"tsa_serial"} & tables)


def test_a_truncated_log_is_named_against_a_checkpoint_held_outside(home: Path, tmp_path: Path) -> None:
    """A log cut back to an earlier state with its own ledger.checkpoint (a restored backup, or rows
    deleted by someone who rewrote the file too) is self-consistent, so audit alone passes; a checkpoint a
    notary kept (`--checkpoint FILE`) shows that published entries are gone."""
    earlier = copy_home(home, tmp_path / "earlier")  # the state the log is cut back to
    led = Ledger.open(home)
    led.append("other", completed("LATER"))
    size = led.log.size
    led.close()
    kept = tmp_path / "notary.checkpoint"
    kept.write_text((home / "ledger.checkpoint").read_text())
    assert audit_home(earlier).ok, "the cut-back log is self-consistent"
    rep = audit_home(earlier, [kept])
    assert any(f"fewer than the checkpoint of size {size} in {kept}" in p for p in rep.problems), rep.problems
    code, out = run(earlier, "audit", "--checkpoint", str(kept))
    assert code == 1 and "cut back" in out
    assert audit_home(home, [kept]).ok, "the log that holds it passes"


def test_a_forked_log_is_named_against_a_checkpoint_held_outside(home: Path, tmp_path: Path) -> None:
    """A checkpoint of the same size with another root (signed by the log key): the log forked."""
    led = Ledger.open(home)
    size = led.log.size
    signer = led.log.signer
    led.close()
    body = f"{signer.name}\n{size}\n{base64.b64encode(b'x' * 32).decode()}\n"
    fork = tmp_path / "fork.checkpoint"
    fork.write_text(body + "\n" + signer.sign(body).line())
    rep = audit_home(home, [fork])
    assert any(f"differs from the checkpoint in {fork}" in p for p in rep.problems), rep.problems
    stranger = tmp_path / "stranger.checkpoint"
    stranger.write_text("example.com/log\n1\n" + "A" * 43 + "=\n\n— example.com/log AAAA\n")
    assert any(str(stranger) in p and "not a checkpoint signed" in p for p in audit_home(home, [stranger]).problems)
    code, _ = run(home, "audit", "--checkpoint", str(tmp_path / "missing"))
    assert code == 2



def _newest_entry_changed(home: Path) -> int:
    """Flip a byte inside the newest entry (the tiles keep its old leaf hash); returns its index."""
    c = raw(home)
    start, count, data = one(c, "SELECT start, count, data FROM entry_chunks ORDER BY start DESC LIMIT 1")
    b = bytearray(data)
    b[-10] ^= 0x01  # inside the last entry's JSON
    c.execute("UPDATE entry_chunks SET data = ? WHERE start = ?", (bytes(b), start))
    c.close()
    return int(start + count - 1)


def test_a_writer_refuses_to_sign_over_a_damaged_newest_tile(home: Path) -> None:
    """Before anything is signed over the tree, the newest tile's entries are checked against their stored
    leaf hashes: a changed entry stops `ledger serve` (and every writer) with its index, and audit, which
    opens the database for reading only, still reports it."""
    index = _newest_entry_changed(home)
    with pytest.raises(IntegrityError, match=f"entry {index} no longer hashes to its leaf hash"):
        Ledger.open(home)
    rep = audit_home(home)
    assert any(p.startswith(f"entry {index}:") for p in rep.problems), rep.problems


def test_ledger_serve_refuses_to_start_on_a_damaged_newest_tile(home: Path) -> None:
    index = _newest_entry_changed(home)
    before = (home / "ledger.checkpoint").read_text()
    proc = subprocess.run([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"entry {index} no longer hashes to its leaf hash" in proc.stderr and "ledger audit" in proc.stderr
    assert (home / "ledger.checkpoint").read_text() == before, "nothing was signed"


def test_a_damaged_tile_edge_is_named_and_the_audit_goes_on(home: Path) -> None:
    """A damaged edge no longer stops audit at open ("the tiles hold a tree of size N but the last
    checkpoint is for size N"): the row is named, and the rest of the ledger is still checked."""
    c = raw(home)
    flip(c, "tile_edge", "hashes", "level = 0", 3)
    change_opening_value(c)
    c.close()
    rep = audit_home(home)
    assert any(p.startswith("tile_edge row level=0: its hashes differ") for p in rep.problems), rep.problems
    assert any(p.startswith("openings row env=") for p in rep.problems), "the audit went on past the edge"
    assert rep.envelopes > 0 and rep.anchors > 0


def test_audit_names_any_changed_byte_of_the_first_bundle_and_never_fails_itself(home: Path, engine: str) -> None:
    """Whatever byte of the entries is changed (a digit of a commitment, a bracket, a length), audit
    reports it as a problem of the log and goes on: it never stops on the data it checks."""
    c = raw(home)
    (data,) = one(c, "SELECT data FROM entry_chunks WHERE start = 0")
    c.close()
    original = bytes(data)
    offsets = range(0, len(original), 7)
    if engine == "postgresql":
        # a representative tenth of the offsets (the first length prefix among them): the audit reads the same
        # rows on both engines, and every offset on PostgreSQL too would add a minute to the suite
        offsets = offsets[::10]
    for offset in offsets:
        b = bytearray(original)
        b[offset] ^= 0x04
        c = raw(home)
        c.execute("UPDATE entry_chunks SET data = ? WHERE start = 0", (bytes(b),))
        c.close()
        rep = audit_home(home)
        assert not rep.ok and any(p.startswith(("entry 0", "entry_chunks row start=0", "entry ")) for p in rep.problems), \
            (offset, rep.problems[:3])
    c = raw(home)
    c.execute("UPDATE entry_chunks SET data = ? WHERE start = 0", (original,))
    c.close()
    assert audit_home(home).ok


def test_the_audit_of_a_ledger_in_use_judges_one_snapshot(tmp_path: Path, engine: str) -> None:
    """`ledger audit` while another process's writer appends whole envelopes (entries, envelope rows,
    versions, holdings, checkpoints, each batch committed at once): every run is green, and sees one
    moment of the ledger (without the snapshot, tables read a moment apart disagree)."""
    home = tmp_path / "home"
    new_ledger(home, engine).close()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(home)], stdout=subprocess.PIPE, cwd=ROOT,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        runs = 0
        while runs < 6:
            rep = audit_home(home)
            assert rep.ok, rep.problems
            runs += 1
        assert writer.poll() is None, writer.communicate()  # it wrote the whole time
    finally:
        writer.terminate()
        out, err = writer.communicate(timeout=30)
    assert writer.returncode in (0, -15), err


_WRITER = """
import sys
from pathlib import Path
from ledger.envelopes.core import Ledger
from tests.envelopes.test_lifecycle import T, completed, ev
led = Ledger.open(Path(sys.argv[1]))
print("writing", flush=True)
for k in range(100_000):
    led.append(T, completed(f"S{k}") + [ev("copy.printed", f"S{k}", document="d")])
"""
