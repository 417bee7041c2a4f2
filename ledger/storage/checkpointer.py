"""WAL checkpoints in a thread of their own: the WAL stays small, and the one writer rarely waits.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: that commit copies
the WAL into the database and fsyncs it while its callers wait. Here the writer's connection leaves
that to a thread with a connection of its own, which checkpoints

- by size: the writer calls `committed()` after each COMMIT (one stat of the WAL), which wakes the
  thread once the WAL is past `WAL_THRESHOLD`;
- by time: every `CHECKPOINT_INTERVAL_S` while the WAL holds anything, so a quiet ledger's WAL is
  empty (and its database file whole) within a second or so of its last commit;
- after a failed write (`failed()`), and again at every tick until the WAL is empty: a full disk may
  be full of WAL, and once space is back that checkpoint returns the WAL's space for good.

Each checkpoint is PASSIVE first (it copies what it can and never blocks the writer), then TRUNCATE,
which does not wait: if the writer is between two commits and no reader is in the way, it takes the
write lock, copies the few frames committed meanwhile and empties the WAL file; if not, it copies
what it can, like PASSIVE, and SQLite reuses the WAL from its start at the next commit, cutting the
file back to `WAL_THRESHOLD` bytes (`journal_size_limit`). (A TRUNCATE that waited for the writer
would hold the checkpoint lock meanwhile, and the WAL would grow the faster.) Should the thread fall
behind all the same (a writer far faster than its disk, a thread starved of the interpreter, a reader
holding an old snapshot), the writer's connection checkpoints inside the commit that takes the WAL
past `WAL_HARD_LIMIT` (`wal_autocheckpoint`, set in `ledger.storage.schema.connect`): the WAL is
bounded whatever happens.

Why these sizes: 4 MiB is SQLite's own default (1000 pages), a copy of a few milliseconds; a commit of
one event writes about 50 KB of WAL (a dozen pages: entries, edge tiles, checkpoint, envelope rows),
so it is reached every eighty or so such commits, or every few commits of a bulk import. At 64 MiB,
a 20 MiB volume filled with WAL alone. Durability is unchanged: every COMMIT still fsyncs the WAL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("ledger.storage.checkpointer")

WAL_THRESHOLD = 4 << 20  # bytes: the thread checkpoints a WAL past it; SQLite cuts the file back to it
WAL_HARD_LIMIT = 8 << 20  # bytes: the writer itself checkpoints within the commit that passes it
CHECKPOINT_INTERVAL_S = 1.0  # the thread checkpoints a WAL that holds anything at least this often


class Checkpointer:
    """The checkpoint thread of one database."""

    def __init__(self, db: Path, *, threshold: int | None = None, interval_s: float | None = None) -> None:
        self.db, self.wal = db, Path(str(db) + "-wal")
        self.threshold = threshold or WAL_THRESHOLD
        self.interval = CHECKPOINT_INTERVAL_S if interval_s is None else interval_s
        self._failing = False  # the last pass failed: say so once, and once when it works again
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-wal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """After each COMMIT (the writer's thread): wake the thread if the WAL is past the threshold."""
        try:
            if self.wal.stat().st_size > self.threshold:
                self._wake.set()
        except OSError:
            pass  # no WAL file: nothing to checkpoint

    def failed(self) -> None:
        """After a write that failed: checkpoint now, and at every tick until the WAL is empty."""
        self._wake.set()

    def _run(self) -> None:
        # no busy wait: a checkpoint never waits for the writer or a reader (see the module's docstring)
        conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    if self.wal.stat().st_size == 0:
                        continue
                except FileNotFoundError:
                    continue
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One pass: PASSIVE, then TRUNCATE if the writer leaves a gap. True if the WAL file was emptied."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as e:  # a full disk, an I/O error: retried at the next tick; the WAL keeps everything
            if not self._failing:
                log.warning("WAL checkpoint failed: %s; retried every %g s", e, self.interval)
            self._failing = True
            return False
        if self._failing:
            log.warning("WAL checkpoint works again")
            self._failing = False
        if busy:
            return False  # a commit or a reader was in the way: the passive pass copied what it could
        return True

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
