"""Content-addressed document store: files named by their SHA-256, streamed in, never overwritten.

An upload is written to a temporary file in the store and linked under its hash once whole and
fsynced. Whatever fails on the way (a full disk, an I/O error) is a `StorageError` and leaves
nothing behind: neither the temporary file nor a part of the document.

On a PostgreSQL ledger the documents' bytes are kept in the database too, so that every host serves
every document: an upload is stored there, in one transaction committed before it is finished. The
folder is then this host's cache of the database: a document it has not got is fetched into it when
first asked for, and served only once what was fetched hashes to its name.

Not here: which envelope may serve which bytes (`holdings`, `ledger.envelopes.printing.held_by`), and
the database's side (`ledger.documents._blobdb`). A SQLite ledger keeps the folder alone, and never
loads psycopg.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ledger.documents._blobdb import PgBlobs
from ledger.errors import NotFoundError, RefusedError, StorageError
from ledger.storage.engine import is_postgresql
from ledger.storage.files import fsync_dir

_HEX = re.compile(r"[0-9a-f]{64}")
_log = logging.getLogger("ledger.documents.blobs")


class Upload:
    """One document being streamed in: `write()` chunks, then `finish()` (or `abort()`)."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        try:
            store.root.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(dir=store.root, prefix=".upload-")
        except OSError as e:
            raise _failed(e) from e
        self.f = os.fdopen(fd, "wb")
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.store.max_size:
            self.abort()
            raise RefusedError(f"document is larger than the limit of {self.store.max_size} bytes",
                               code="too_large", status=413)
        self.h.update(chunk)
        try:
            self.f.write(chunk)
        except OSError as e:
            self.abort()
            raise _failed(e) from e

    def flush(self) -> None:
        """Put what was written so far into the temporary file (`tmp`), to be read before `finish()`."""
        try:
            self.f.flush()
        except OSError as e:
            self.abort()
            raise _failed(e) from e

    def finish(self) -> tuple[str, int]:
        """Make the document durable under its hash; returns (sha256 hex, size). On a PostgreSQL ledger it
        is then stored in the database, committed before this returns.

        Raises:
            StorageError: the disk or the database failed; nothing was acknowledged, and the same upload
                sent again is stored (the file this one left in the folder is only a cache).
        """
        src: IO[bytes] | None = None
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            digest = self.h.hexdigest()
            dest = self.store.local(digest)
            dest.parent.mkdir(exist_ok=True)
            try:
                os.link(self.tmp, dest)  # fails rather than replaces: a stored document is never overwritten
            except FileExistsError:
                pass
            if self.store.db is not None:  # the bytes sent, whatever file was under their hash already
                src = open(self.tmp, "rb")  # noqa: SIM115 (closed below, once stored in the database)
            os.unlink(self.tmp)
            fsync_dir(dest.parent)
        except OSError as e:
            if src is not None:
                src.close()
            self.abort()
            raise _failed(e) from e
        if src is not None and self.store.db is not None:
            with src:
                self.store.db.store(digest, self.size, src)
        return digest, self.size

    def abort(self) -> None:
        """Drop the temporary file. Never raises, and may be called again: closing flushes what is still
        buffered, which fails again on a full disk, and the file goes all the same."""
        try:
            self.f.close()
        except OSError:
            pass  # the buffered bytes are dropped with the file
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass
        except OSError as e:  # the store's folder itself fails: nothing more can be done here
            _log.error("could not remove the temporary upload %s: %s", self.tmp, e)


def _failed(e: OSError) -> StorageError:
    return StorageError(f"could not store the document ({e.strerror or e}); nothing was stored; send it "
                        "again later")


class BlobStore:
    """The documents' bytes: the folder `root`, and on a PostgreSQL ledger the database (see the module's
    docstring).

    Args:
        root: the folder (`blobs/` in the ledger folder).
        max_size: the largest document accepted, in bytes.
        database: config.toml's `database`: "" (SQLite: the folder alone), or the PostgreSQL URL.
        password: the PostgreSQL password, if one is needed (never shown in a message).
    """

    def __init__(self, root: Path, max_size: int, *, database: str = "", password: str | None = None) -> None:
        self.root = root
        self.max_size = max_size
        self.db = PgBlobs(database, password) if database and is_postgresql(database) else None
        # where the record of the documents is, for the audit's messages
        self.kept_in = str(root) if self.db is None else f"the ledger's database (nor in {root})"

    def local(self, sha256: str) -> Path:
        """Where the document's file is, or would be, in this host's folder (nothing is fetched)."""
        if not _HEX.fullmatch(sha256):
            raise RefusedError("a document hash is 64 lowercase hex characters", code="bad_hash")
        return self.root / sha256[:2] / sha256

    def path(self, sha256: str) -> Path:
        """The document's file on this host. On a PostgreSQL ledger, one this host has not got yet is fetched
        from the database first (so that whoever reads the file finds it there); a document stored in neither
        is a path where no file is.

        Raises:
            IntegrityError: what the database holds under this hash does not hash to it (it is not served).
            StorageError: the database or the disk failed.
        """
        p = self.local(sha256)
        if self.db is not None and not p.exists():
            self.db.fetch(sha256, p)
        return p

    def upload(self) -> Upload:
        return Upload(self)

    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        up = self.upload()
        try:
            for chunk in chunks:
                up.write(chunk)
        except BaseException:
            up.abort()
            raise
        return up.finish()

    def put(self, data: bytes) -> tuple[str, int]:
        return self.put_stream([data])

    def open(self, sha256: str) -> Path:
        """The document's file on this host (fetched from the database first if need be, see `path`)."""
        p = self.path(sha256)
        if not p.exists():
            raise NotFoundError(f"document {sha256} is not stored here", code="unknown_document")
        return p

    def has(self, sha256: str) -> bool:
        return self.local(sha256).exists() or (self.db is not None and self.db.has(sha256))

    def digest(self, sha256: str) -> str | None:
        """SHA-256 of the document stored under `sha256` as it is now (None if there is none): differs
        from its name when it was damaged. On a PostgreSQL ledger, of the database's copy, the record (""
        if its row and chunks disagree); of this host's file only for a document the database holds no
        part of (one stored before the ledger kept documents there, as on the SQLite ledger it was
        migrated from)."""
        if self.db is not None and (digest := self.db.digest(sha256)) is not None:
            return digest
        try:
            with open(self.local(sha256), "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def copy_of(self, sha256: str) -> str:
        """The copy `digest` hashes, for a message: the file's path, or the database's copy."""
        if self.db is not None and self.db.holds(sha256):
            return "its copy in the ledger's database (tables blobs, blob_chunks)"
        return str(self.local(sha256))

    def damaged_cache(self, sha256: str) -> Path | None:
        """On a PostgreSQL ledger, this host's cached file of a document the database holds, if that file
        no longer hashes to its name (this host would serve it as it is): delete it, and it is fetched
        again. None otherwise, and always on SQLite (where the file is the record, which `digest` checks)."""
        p = self.local(sha256)
        if self.db is None or not p.is_file():
            return None
        with open(p, "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() == sha256:
                return None
        return p if self.db.holds(sha256) else None  # else `digest` hashed this file, and it is named as the record

    def stored(self) -> Iterator[str]:
        """The hashes of every document stored: the files in the folder; on a PostgreSQL ledger, the
        database's documents and any file of this host's it does not hold, each once."""
        if self.db is None:
            if self.root.is_dir():
                yield from (p.name for p in self.root.glob("??/*") if p.is_file() and _HEX.fullmatch(p.name))
            return
        last = None
        for sha in heapq.merge(self.db.hashes(), self._local_sorted()):
            if sha != last:
                yield sha
                last = sha

    def push_local(self) -> int:
        """Store in the database every document of this host's folder it does not hold yet (a ledger migrated
        from SQLite, or one whose documents were stored before PostgreSQL ledgers kept them); the number
        stored. Each file is checked against its name first: a damaged one is logged and left out."""
        if self.db is None:
            return 0
        pushed = 0
        for sha in self._local_sorted():
            if self.db.has(sha):
                continue
            try:
                with open(self.local(sha), "rb") as f:
                    ok = hashlib.file_digest(f, "sha256").hexdigest() == sha
                    size = os.fstat(f.fileno()).st_size
                    if ok:
                        self.db.store(sha, size, f)
                        pushed += 1
            except OSError as e:
                raise StorageError(f"could not read {self.local(sha)}: {e.strerror or e}") from e
            if not ok:
                _log.error("%s no longer hashes to its name: it is damaged, and was not stored in the database",
                           self.local(sha))
        return pushed

    def _local_sorted(self) -> Iterator[str]:
        """The hashes of the files in the folder, in order, one subfolder listed at a time."""
        if not self.root.is_dir():
            return
        for d in sorted(p for p in self.root.glob("??") if p.is_dir()):
            yield from sorted(p.name for p in d.iterdir() if _HEX.fullmatch(p.name) and p.is_file())
