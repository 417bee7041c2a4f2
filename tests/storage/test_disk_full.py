"""A full disk fails the writes in flight, acknowledges none of them, and loses nothing acknowledged."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.audit.run import audit
from ledger.envelopes.core import Ledger
from ledger.errors import StorageError
from tests.envelopes.test_lifecycle import T, completed


def test_full_database_refuses_then_recovers(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "home")
    acked = led.append(T, completed("BEFORE"))
    size = led.log.size
    (pages,) = led.log.conn.execute("PRAGMA page_count").fetchone()
    led.log.conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # the disk is now full
    big = [e for k in range(40) for e in completed(f"FULL-{k}")]
    with pytest.raises(StorageError, match="full") as info:
        led.append(T, big)
    assert info.value.status == 503 and "nothing was acknowledged" in str(info.value)
    assert led.log.size == size, "a failed commit must not move the published tree"
    with pytest.raises(StorageError):
        led.append(T, completed("STILL-FULL"))
    led.log.conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    again = led.append(T, big)
    assert again[0]["index"] == size, "the next write reuses the indexes the failed one never published"
    assert led.envelope(T, "BEFORE")["status"] == "completed"
    rep = audit(led.log)
    assert rep.ok, rep.problems
    led.close()
    led = Ledger.open(tmp_path / "home")
    assert led.log.size == size + len(big)
    for a in acked:
        assert led.log.entry(a["index"]).hex() and led.prove(a["index"])
    assert audit(led.log).ok
    led.close()


def test_a_full_disk_fails_a_batch_committed_here_whole(tmp_path: Path) -> None:
    """The writer's own path (`commit_here`, the workers' requests): a full disk fails every request of
    the batch, acknowledges none, and the next batch goes through once there is space."""
    from ledger.envelopes.events import parse_events

    led = Ledger.init(tmp_path / "home")
    size = led.log.size
    (pages,) = led.log.conn.execute("PRAGMA page_count").fetchone()
    led.log.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    answers: list[tuple[bool, object]] = []
    requests = [(T, parse_events(completed(f"FULL-{k}")), lambda ok, v: answers.append((ok, v))) for k in range(30)]
    led.commit_here(requests)
    assert len(answers) == 30 and not any(ok for ok, _ in answers)
    assert all(isinstance(v, StorageError) and v.status == 503 for _, v in answers)
    assert led.log.size == size
    led.log.conn.execute("PRAGMA max_page_count = 1073741823")
    answers.clear()
    led.commit_here(requests)
    assert [ok for ok, _ in answers] == [True] * 30 and led.log.size > size
    assert audit(led.log).ok
    led.close()


def test_a_cancelled_caller_does_not_stop_the_writer(tmp_path: Path) -> None:
    """A thread caller that cancels its future before the writer resolves it leaves the writer running."""
    import threading

    from ledger.storage.log import TileLog
    from ledger.storage.sequencer import Sequencer
    from ledger.storage.signer import LogSigner

    log = TileLog.create(tmp_path / "l.db", LogSigner.generate("t.example/log"))
    seq = Sequencer(log)
    gate = threading.Event()

    class Slow:
        size = 1

        def stage(self, lg: TileLog):  # type: ignore[no-untyped-def]
            gate.wait(5)
            first, leaves = lg.stage([b"slow"])
            return lambda r: first

    slow = seq.submit(Slow())  # type: ignore[arg-type]
    cancelled = seq.submit(b"will be cancelled")
    assert cancelled.cancel() or cancelled.done()
    gate.set()
    assert slow.result(timeout=10) == 0
    assert seq.submit(b"after").result(timeout=10).index >= 1
    seq.close()
    log.close()


def test_wal_is_checkpointed_in_the_background_and_truncated_at_close(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os
    import time

    from ledger.storage import checkpointer
    from ledger.storage.log import TileLog
    from ledger.storage.signer import LogSigner

    monkeypatch.setattr(checkpointer, "WAL_THRESHOLD", 256 << 10)
    db = tmp_path / "l.db"
    signer = LogSigner.generate("t.example/log")
    log = TileLog.create(db, signer)
    for _ in range(20):
        log.append_batch([os.urandom(200) for _ in range(1000)])
    deadline = time.monotonic() + 10
    while db.stat().st_size < 2 << 20:  # the entries reach the database file without any commit waiting
        assert time.monotonic() < deadline, "no background checkpoint happened"
        time.sleep(0.1)
    log.close()
    assert not os.path.exists(str(db) + "-wal") or os.path.getsize(str(db) + "-wal") == 0
    log = TileLog.open(db, signer)
    assert log.size == 20_000
    log.close()
