"""Proofs computed from tile storage equal the naive RFC 6962 reference; mutated proofs never verify.

On both engines (SQLite and PostgreSQL): the same entries give the same tiles, roots and proofs."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import StorageError
from ledger.storage.log import TileLog
from ledger.storage.signer import LogSigner
from tests.naive_merkle import consistency, mth, path
from tests.pg import ENGINES, database_for
from verifier.errors import VerificationError
from verifier.merkle import leaf_hash, verify_consistency, verify_inclusion

N = 3000


@pytest.fixture(scope="module", params=ENGINES)
def big(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[TileLog, list[bytes]]:
    rng = random.Random(7)
    log = TileLog.create(tmp_path_factory.mktemp("log") / "l.db", LogSigner.generate("test.example/log"),
                         database=database_for(request.param))
    entries: list[bytes] = []
    while len(entries) < N:
        batch = [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.choice([1, 2, 7, 255, 256, 257, 600]))]
        log.append_batch(batch)
        entries += batch
    return log, entries


@given(st.data())
def test_inclusion_equals_reference(big: tuple[TileLog, list[bytes]], data: st.DataObject) -> None:
    log, entries = big
    size = data.draw(st.integers(1, log.size))
    index = data.draw(st.integers(0, size - 1))
    proof = log.inclusion_proof(index, size)
    assert proof == path(index, entries[:size])
    root = log.root_at(size)
    assert root == mth(entries[:size])
    verify_inclusion(index, size, leaf_hash(entries[index]), proof, root)


@given(st.data())
def test_consistency_equals_reference(big: tuple[TileLog, list[bytes]], data: st.DataObject) -> None:
    log, entries = big
    size2 = data.draw(st.integers(1, log.size))
    size1 = data.draw(st.integers(1, size2))
    proof = log.consistency_proof(size1, size2)
    assert proof == consistency(size1, entries[:size2])
    verify_consistency(size1, size2, log.root_at(size1), log.root_at(size2), proof)


# Size changes are covered by the public vectors: a different size can share the same path shape.
MUTATIONS = ["flip", "drop", "extra", "swap", "index+1"]


@given(st.data(), st.sampled_from(MUTATIONS))
def test_mutated_inclusion_proofs_fail(big: tuple[TileLog, list[bytes]], data: st.DataObject, how: str) -> None:
    log, entries = big
    size = data.draw(st.integers(2, log.size))
    index = data.draw(st.integers(0, size - 1))
    proof = log.inclusion_proof(index, size)
    root = log.root_at(size)
    leaf = leaf_hash(entries[index])
    if how == "flip":
        k = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        h = bytearray(proof[k])
        h[bit // 8] ^= 1 << (bit % 8)
        proof[k] = bytes(h)
    elif how == "drop":
        proof.pop(data.draw(st.integers(0, len(proof) - 1)))
    elif how == "extra":
        proof.insert(data.draw(st.integers(0, len(proof))), os.urandom(32))
    elif how == "swap":
        if len(proof) < 2 or proof[0] == proof[1]:
            return
        proof[0], proof[1] = proof[1], proof[0]
    elif how == "index+1":
        index = (index + 1) % size
        if entries[index] == entries[(index - 1) % size]:
            return  # identical leaves: the proof is legitimately ambiguous
    with pytest.raises(VerificationError):
        verify_inclusion(index, size, leaf, proof, root)


@given(st.data())
def test_mutated_consistency_proofs_fail(big: tuple[TileLog, list[bytes]], data: st.DataObject) -> None:
    log, entries = big
    size2 = data.draw(st.integers(2, log.size))
    size1 = data.draw(st.integers(1, size2 - 1))
    proof = log.consistency_proof(size1, size2)
    r1, r2 = log.root_at(size1), log.root_at(size2)
    k = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    h = bytearray(proof[k])
    h[bit // 8] ^= 1 << (bit % 8)
    bad = proof[:k] + [bytes(h)] + proof[k + 1 :]
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, r1, r2, bad)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, r1, r2, proof[:-1])
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, r1, r2, proof + [os.urandom(32)])


@pytest.mark.parametrize("engine", ENGINES)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=8))
def test_any_batching_gives_the_same_tree(tmp_path_factory: pytest.TempPathFactory, engine: str,
                                          batches: list[int]) -> None:
    """However entries are split into commits, the tiles, roots and reopened state agree with the reference."""
    path_ = tmp_path_factory.mktemp("b") / "l.db"
    signer = LogSigner.generate("test.example/log")
    database = database_for(engine)
    log = TileLog.create(path_, signer, database=database)
    entries: list[bytes] = []
    for n in batches:
        batch = [os.urandom(8) for _ in range(n)]
        res = log.append_batch(batch)
        entries += batch
        assert res.root == mth(entries)
    log.close()
    log = TileLog.open(path_, signer, database=database)
    assert log.size == len(entries) and log.root_at(len(entries)) == mth(entries)
    more = [b"after reopen"]
    assert log.append_batch(more).root == mth(entries + more)
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 70)), min_size=1, max_size=10))
def test_deferred_and_staged_entries_keep_their_order(tmp_path_factory: pytest.TempPathFactory, engine: str,
                                                      runs: list[tuple[bool, int]]) -> None:
    """Entries sequenced with defer() (hashed at commit) and stage() (hashed now), mixed in one
    transaction, get consecutive indexes in call order and give the reference tree."""
    log = TileLog.create(tmp_path_factory.mktemp("d") / "l.db", LogSigner.generate("test.example/log"),
                         database=database_for(engine))
    entries: list[bytes] = []
    log.begin()
    for deferred, n in runs:
        run = [os.urandom(6) for _ in range(n)]
        first = log.defer(run) if deferred else log.stage(run)[0]
        assert first == len(entries) == log.pending_size - n
        entries += run
    res = log.commit()
    assert res.size == len(entries) and res.root == mth(entries)
    assert [log.entry(i) for i in range(len(entries))] == entries
    log.close()


def test_commit_hooks_run_once_inside_the_transaction_and_rollback_forgets(tmp_path: Path, database: str) -> None:
    log = TileLog.create(tmp_path / "l.db", LogSigner.generate("test.example/log"), database=database)
    log.conn.execute("CREATE TABLE side (n INTEGER)")
    calls: list[int] = []

    def hook(conn: object) -> None:
        calls.append(log.size)
        log.conn.execute("INSERT INTO side VALUES (1)")

    log.begin()
    log.defer([b"a", b"b"])
    log.before_commit(hook)
    log.rollback()  # nothing deferred survives, no hook runs
    assert log.size == 0 and calls == [] and log.pending_size == 0
    log.begin()
    log.defer([b"c"])
    log.before_commit(hook)
    assert log.commit().size == 1
    assert calls == [0] and log.conn.execute("SELECT count(*) FROM side").fetchone() == (1,)
    log.begin()
    assert log.commit().size == 1 and calls == [0]  # hooks belong to one transaction

    def failing(conn: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    log.begin()
    log.defer([b"d"])
    log.before_commit(failing)
    with pytest.raises(StorageError, match="nothing was acknowledged"):
        log.commit()
    assert log.size == 1 and log.entry(0) == b"c"
    log.close()


def test_proofs_beyond_published_size_are_refused(big: tuple[TileLog, list[bytes]]) -> None:
    log, _ = big
    from ledger.errors import LedgerError

    with pytest.raises(LedgerError):
        log.inclusion_proof(0, log.size + 1)
    with pytest.raises(LedgerError):
        log.inclusion_proof(log.size, log.size)
    with pytest.raises(LedgerError):
        log.consistency_proof(0, 5)


def test_opening_reads_only_the_newest_bundle(tmp_path: Path) -> None:
    """Opening reads the edge tiles, the last checkpoint, O(log n) tiles (to check the outside checkpoint)
    and the newest bundle's entries (to check them against their leaf hashes before signing over them):
    never the rest of the log."""
    signer = LogSigner.generate("test.example/log")
    log = TileLog.create(tmp_path / "l.db", signer)
    log.append_batch([b"x"] * 5000)
    log.close()
    import sqlite3

    statements: list[str] = []
    orig = sqlite3.connect

    def tracing_connect(*a, **k):  # type: ignore[no-untyped-def]
        c = orig(*a, **k)
        c.set_trace_callback(statements.append)
        return c

    sqlite3.connect = tracing_connect  # type: ignore[assignment]
    try:
        TileLog.open(tmp_path / "l.db", signer).close()
    finally:
        sqlite3.connect = orig  # type: ignore[assignment]
    touched = " ".join(statements)
    assert "FROM tile_edge" in touched and "FROM checkpoints" in touched
    chunks = [st for st in statements if "FROM entry_chunks" in st]
    assert len(chunks) == 1 and f"start >= {(5000 // 256) * 256}" in chunks[0], chunks
    assert sum("FROM tiles " in st for st in statements) <= 8


def test_a_reader_serves_what_the_writer_publishes(tmp_path: Path, database: str) -> None:
    """A read-only process needs no key, refuses writes, and follows the writer with refresh()."""
    from ledger.errors import StorageError

    signer = LogSigner.generate("test.example/log")
    writer = TileLog.create(tmp_path / "l.db", signer, database=database)
    entries = [os.urandom(10) for _ in range(300)]
    writer.append_batch(entries)
    reader = TileLog.open_reader(tmp_path / "l.db", database=database)
    assert reader.size == 300 and reader.origin == "test.example/log"
    assert reader.inclusion_proof(5, 300) == path(5, entries)
    with pytest.raises(StorageError, match="reading only"):
        reader.append_batch([b"x"])
    more = [os.urandom(10) for _ in range(20)]
    writer.append_batch(more)
    assert reader.size == 300
    reader.refresh()
    assert reader.size == 320
    assert reader.latest_checkpoint == writer.latest_checkpoint
    assert reader.root_at(320) == mth(entries + more)
    reader.close()
    writer.close()


@given(st.lists(st.binary(max_size=300), max_size=40))
def test_c_hashing_equals_the_python_fallback(entries: list[bytes]) -> None:
    """The C extension (when built) and the pure-Python fallback compute the same RFC 9162 hashes."""
    from ledger.storage import log as L

    assert L._leaf_hashes(entries) == L._leaf_hashes_py(entries) == [leaf_hash(e) for e in entries]
    leaves = L._leaf_hashes_py(entries)
    assert L._pair_hashes(leaves) == L._pair_hashes_py(leaves)
    assert L._bundle(entries) == L._bundle_py(entries)


def test_the_c_extension_is_built_here() -> None:
    """CI builds the extension (gcc and OpenSSL headers are on the machine): the fast path is tested."""
    from ledger.storage import log as L

    assert L._leaf_hashes is not L._leaf_hashes_py, "ledger.storage._hashing was not built; see setup.py"


def test_pure_python_integration_gives_the_same_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    database: str) -> None:
    from ledger.storage import log as L

    monkeypatch.setattr(L, "_leaf_hashes", L._leaf_hashes_py)
    monkeypatch.setattr(L, "_pair_hashes", L._pair_hashes_py)
    log = TileLog.create(tmp_path / "l.db", LogSigner.generate("test.example/log"), database=database)
    entries = [os.urandom(5) for _ in range(700)]
    log.append_batch(entries[:300])
    log.append_batch(entries[300:])
    assert log.root_at(700) == mth(entries)
    log.close()
