"""Content-addressed document store: files named by their SHA-256, streamed in, never overwritten.

An upload is written to a temporary file in the store and linked under its hash once whole and
fsynced. Whatever fails on the way (a full disk, an I/O error) is a `StorageError` and leaves
nothing behind: neither the temporary file nor a part of the document.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ledger.errors import NotFoundError, RefusedError, StorageError

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
        """Make the document durable under its hash; returns (sha256 hex, size)."""
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            digest = self.h.hexdigest()
            dest = self.store.path(digest)
            dest.parent.mkdir(exist_ok=True)
            try:
                os.link(self.tmp, dest)  # fails rather than replaces: a stored document is never overwritten
            except FileExistsError:
                pass
            os.unlink(self.tmp)
            dfd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            return digest, self.size
        except OSError as e:
            self.abort()
            raise _failed(e) from e

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
    def __init__(self, root: Path, max_size: int) -> None:
        self.root = root
        self.max_size = max_size

    def path(self, sha256: str) -> Path:
        if not _HEX.fullmatch(sha256):
            raise RefusedError("a document hash is 64 lowercase hex characters", code="bad_hash")
        return self.root / sha256[:2] / sha256

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
        p = self.path(sha256)
        if not p.exists():
            raise NotFoundError(f"document {sha256} is not stored here", code="unknown_document")
        return p

    def has(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def digest(self, sha256: str) -> str | None:
        """SHA-256 of the file stored under `sha256` as it is now (None if there is none): differs
        from its name when the file was damaged."""
        try:
            with open(self.path(sha256), "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def stored(self) -> Iterator[str]:
        """The hashes of every file in the store."""
        if self.root.is_dir():
            yield from (p.name for p in self.root.glob("??/*") if p.is_file() and _HEX.fullmatch(p.name))
