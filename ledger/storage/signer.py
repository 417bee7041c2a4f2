"""The log's Ed25519 signing key: generated once by `ledger init`, kept in a 0600 file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import LedgerError
from verifier.note import Ed25519Signer, Ed25519Verifier


class LogSigner(Ed25519Signer):
    """Signs checkpoints under the log's origin (the key name is the origin)."""

    @classmethod
    def generate(cls, origin: str) -> LogSigner:
        return cls(origin, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path, origin: str) -> LogSigner:
        try:
            mode = path.stat().st_mode & 0o777
            key = _load_pem(path.read_bytes())
        except FileNotFoundError:
            raise LedgerError(f"log key {path} not found; run `ledger init` first", code="no_key") from None
        except ValueError as e:
            raise LedgerError(f"log key {path} is not a PEM private key: {e}", code="bad_key") from None
        if mode & 0o077:
            raise LedgerError(
                f"log key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`", code="bad_key"
            )
        if not isinstance(key, Ed25519PrivateKey):
            raise LedgerError(f"log key {path} is not an Ed25519 key", code="bad_key")
        return cls(origin, key)

    def save(self, path: Path) -> None:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())

    @property
    def verifier_key(self) -> str:
        return self.verifier.to_string()


_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")


def _load_pem(pem: bytes) -> object:
    """Load a private key; an unencrypted PKCS#8 Ed25519 PEM (what `save` writes) without the slow path."""
    lines = pem.strip().splitlines()
    if len(lines) == 3 and lines[0] == b"-----BEGIN PRIVATE KEY-----" and lines[2] == b"-----END PRIVATE KEY-----":
        try:
            der = base64.b64decode(lines[1], validate=True)
        except ValueError:
            der = b""
        if len(der) == 48 and der.startswith(_PKCS8_ED25519):
            return Ed25519PrivateKey.from_private_bytes(der[16:])
    return serialization.load_pem_private_key(pem, password=None)


__all__ = ["LogSigner", "Ed25519Verifier"]
