"""Background WAL checkpoints, so that the one writer never pays for copying the WAL into the database.

SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold: that commit then
copies tens of megabytes and fsyncs the database file, and its callers wait. Here the writer's
connection has automatic checkpoints off, and a thread with its own connection runs PASSIVE
checkpoints (which never block the writer) whenever the WAL has grown past a threshold, and a
TRUNCATE checkpoint when the log closes. Durability is unchanged: every COMMIT still fsyncs the WAL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("ledger.storage.checkpointer")

WAL_THRESHOLD = 64 << 20


class Checkpointer:
    def __init__(self, db: Path, *, threshold: int | None = None, interval_s: float = 0.5) -> None:
        self.db, self.wal = db, Path(str(db) + "-wal")
        self.threshold, self.interval = threshold or WAL_THRESHOLD, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            while not self._stop.wait(self.interval):
                try:
                    if self.wal.stat().st_size > self.threshold:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except (OSError, sqlite3.Error) as e:  # retried at the next tick; the WAL keeps everything
                    log.warning("WAL checkpoint failed: %s", e)
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
