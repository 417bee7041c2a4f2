"""The documents' bytes in a PostgreSQL ledger's database, for `ledger.documents.blobs.BlobStore`.

Each document is stored in chunks of `CHUNK` bytes (table `blob_chunks`), then its row in `blobs` (size and
number of chunks), in one transaction: a `blobs` row means the whole document is there. Both tables are
append-only (`ledger.storage.schema.PG_BLOBS`). Reads go one chunk at a time, so a document is never held
whole in memory. Database failures are raised as `StorageError` (never naming the password); bytes that do
not hash to their name, as `IntegrityError`.

psycopg is loaded by the first operation (`ledger.storage.schema.connect_pg`), never by importing this.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from ledger.errors import IntegrityError, StorageError
from ledger.storage.files import fsync_dir

if TYPE_CHECKING:
    from ledger.storage.engine import PgConnection

CHUNK = 1 << 20  # bytes of a document in each blob_chunks row
_T = TypeVar("_T")


class PgBlobs:
    """The documents in the ledger's PostgreSQL database. Any thread may use it: each operation runs on a
    session of its own, closed when it ends, so that nothing stays connected once the ledger is closed
    (a database with sessions on it cannot be copied, renamed or dropped)."""

    def __init__(self, url: str, password: str | None) -> None:
        self.url, self._password = url, password

    def _run(self, op: Callable[[PgConnection], _T], failed: Callable[[str], StorageError]) -> _T:
        """`op` on a new session; a database failure raised as `failed(why)`."""
        from ledger.storage.schema import connect_pg

        conn: PgConnection | None = None
        try:
            conn = connect_pg(self.url, password=self._password, role="blobs")
            return op(conn)
        except sqlite3.Error as e:
            raise failed(self._why(e)) from e
        finally:
            if conn is not None:
                _close(conn)

    def _why(self, e: sqlite3.Error) -> str:
        why = str(e) or type(e).__name__
        return why.replace(self._password, "***") if self._password else why

    def store(self, sha256: str, size: int, src: IO[bytes]) -> None:
        """Store the document read from `src` (`size` bytes, hashing to `sha256`) in one transaction:
        its chunks, then its `blobs` row; nothing if the database holds it already."""

        def op(c: PgConnection) -> None:
            if c.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha256,)).fetchone() is not None:
                return
            src.seek(0)
            h, total, seq = hashlib.sha256(), 0, 0
            c.execute("BEGIN")
            try:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    total += len(chunk)
                    c.execute("INSERT OR IGNORE INTO blob_chunks (sha256, seq, data) VALUES (?, ?, ?)",
                              (sha256, seq, chunk))
                    seq += 1
                if h.hexdigest() != sha256 or total != size:
                    raise StorageError(f"document {sha256} changed on this host's disk while it was stored in the "
                                       "database; nothing was acknowledged: send it again")
                c.execute("INSERT OR IGNORE INTO blobs (sha256, size, chunks) VALUES (?, ?, ?)", (sha256, size, seq))
                c.execute("COMMIT")
            except BaseException:
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the session is gone, and its transaction with it
                raise

        try:
            self._run(op, lambda why: StorageError(
                f"could not store the document in the ledger's database ({why}); nothing was acknowledged: "
                "send it again"))
        except OSError as e:
            raise StorageError(f"could not read the document back from this host's disk ({e.strerror or e}); "
                               "nothing was acknowledged: send it again") from e

    def has(self, sha256: str) -> bool:
        return self._run(lambda c: c.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
                         is not None, _unreadable)

    def _chunks(self, c: PgConnection, sha256: str, count: int) -> Iterator[bytes | None]:
        """The document's chunks in order, one query each (so one chunk at a time in memory); None for
        a chunk that is not there."""
        for seq in range(count):
            row = c.execute("SELECT data FROM blob_chunks WHERE sha256 = ? AND seq = ?", (sha256, seq)).fetchone()
            yield None if row is None else bytes(row[0])

    def holds(self, sha256: str) -> bool:
        """Does the database hold any part of the document (its `blobs` row, or a chunk)?"""
        return self._run(lambda c: c.execute(
            "SELECT EXISTS (SELECT 1 FROM blobs WHERE sha256 = ?) OR EXISTS (SELECT 1 FROM blob_chunks WHERE sha256 = ?)",
            (sha256, sha256)).fetchone()[0] is True, _unreadable)

    def digest(self, sha256: str) -> str | None:
        """SHA-256 of the database's copy of the document, as a fetch would serve it; None if the database
        holds no part of it. A copy whose `blobs` row does not match its chunks (the row or a chunk missing,
        another size, a chunk too many) would not be served: its digest is "" then."""

        def op(c: PgConnection) -> str | None:
            row = c.execute("SELECT size, chunks FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
            (count,) = c.execute("SELECT count(*) FROM blob_chunks WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                return None if count == 0 else ""
            if count != int(row[1]):
                return ""
            h, total = hashlib.sha256(), 0
            for data in self._chunks(c, sha256, int(row[1])):
                if data is None:
                    return ""
                h.update(data)
                total += len(data)
            return h.hexdigest() if total == int(row[0]) else ""

        return self._run(op, _unreadable)

    def fetch(self, sha256: str, dest: Path) -> None:
        """Copy the document from the database into the file `dest` (a temporary file in the store's folder,
        checked against the hash, fsynced, then linked, as an upload is); nothing if the database has none.

        Raises:
            IntegrityError: the database's copy does not hash to its name (nothing is written).
            StorageError: the database or the disk failed.
        """

        def op(c: PgConnection) -> None:
            row = c.execute("SELECT size, chunks FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                return
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent.parent, prefix=".fetch-")
            try:
                with os.fdopen(fd, "wb") as f:
                    h, total, whole = hashlib.sha256(), 0, True
                    for data in self._chunks(c, sha256, int(row[1])):
                        if data is None:
                            whole = False
                            break
                        h.update(data)
                        total += len(data)
                        f.write(data)
                    if not whole or total != int(row[0]) or h.hexdigest() != sha256:
                        raise IntegrityError(
                            f"document {sha256} in the ledger's database (tables blobs, blob_chunks) no longer "
                            "hashes to its name: that copy is damaged, and is not served; restore it from a "
                            "backup (`ledger audit` names every damaged document)", code="damaged_document")
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    pass  # fetched by another thread meanwhile: the same bytes
                fsync_dir(dest.parent)
            finally:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass

        try:
            self._run(op, lambda why: StorageError(
                f"could not read document {sha256} from the ledger's database ({why}); try again later"))
        except OSError as e:
            raise StorageError(f"could not write document {sha256} into {dest.parent} ({e.strerror or e}); "
                               "try again later") from e

    def hashes(self) -> Iterator[str]:
        """The hashes of the database's documents, in order, a thousand at a time."""
        after = ""
        while True:
            rows = self._run(functools.partial(_page, after=after), _unreadable)
            yield from (str(r[0]) for r in rows)
            if len(rows) < 1000:
                return
            after = str(rows[-1][0])


def _page(c: PgConnection, after: str) -> list[tuple[str]]:
    return list(c.execute("SELECT sha256 FROM blobs WHERE sha256 > ? ORDER BY sha256 LIMIT 1000", (after,)))


def _unreadable(why: str) -> StorageError:
    return StorageError(f"could not read the documents in the ledger's database ({why}); try again later")


def _close(conn: PgConnection) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 (a session already gone: nothing to close, nothing to tell)
        pass
