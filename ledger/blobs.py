"""Content-addressed document store: files named by their SHA-256, streamed in, never overwritten."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ledger.errors import NotFoundError, RefusedError, StorageError

_HEX = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: Path, max_size: int) -> None:
        self.root = root
        self.max_size = max_size

    def path(self, sha256: str) -> Path:
        if not _HEX.fullmatch(sha256):
            raise RefusedError("a document hash is 64 lowercase hex characters", code="bad_hash")
        return self.root / sha256[:2] / sha256

    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a stream; returns (sha256 hex, size). Refuses more than max_size bytes."""
        self.root.mkdir(parents=True, exist_ok=True)
        h, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_size:
                        raise RefusedError(f"document is larger than the limit of {self.max_size} bytes",
                                           code="too_large", status=413)
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = h.hexdigest()
            dest = self.path(digest)
            dest.parent.mkdir(exist_ok=True)
            if dest.exists():
                os.unlink(tmp)  # same bytes already stored: never overwrite
            else:
                os.link(tmp, dest)  # fails rather than replaces if it appeared meanwhile
                os.unlink(tmp)
                dfd = os.open(dest.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            return digest, size
        except FileExistsError:
            os.unlink(tmp)
            return h.hexdigest(), size
        except OSError as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise StorageError(f"could not store the document: {e}") from e
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put(self, data: bytes) -> tuple[str, int]:
        return self.put_stream([data])

    def open(self, sha256: str) -> Path:
        p = self.path(sha256)
        if not p.exists():
            raise NotFoundError(f"document {sha256} is not stored here", code="unknown_document")
        return p

    def has(self, sha256: str) -> bool:
        return self.path(sha256).exists()
