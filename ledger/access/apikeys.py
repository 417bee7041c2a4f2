"""API keys of the signing platforms: created once, shown once, stored only as SHA-256.

A key is `el_<id>_<secret>`: the id finds the row, the 256-bit secret is checked against its hash
in constant time. Keys carry a tenant and scopes (append, read, export, admin). This module never
logs a key; `describe()` shows the id only.

Each row is sealed: `seal` is a signed note by the log key over the row's id, tenant, scopes, secret
hash, creation and revocation (first line `evidence-ledger/api-key/v1`), made when the key is created
or revoked. A key whose row does not match its seal is refused, so someone who can write the database
file but does not hold the log key cannot add a key, move one to another tenant, widen its scopes or
take back a revocation (`ledger audit` names such rows).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.access.rownotes import signed, stated
from ledger.errors import LedgerError, RefusedError
from ledger.storage.engine import Connection
from ledger.storage.log import TileLog
from verifier.note import Ed25519Signer, Ed25519Verifier

SCOPES = ("append", "read", "export", "admin")
_KEY = re.compile(r"el_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
# How long a running portal may still accept a key after it was revoked: it caches the keys it has
# checked (portal.api.routes), so that a request does not read the database for its key each time.
KEY_CACHE_S = 5.0
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SEAL_HEADER = "evidence-ledger/api-key/v1"
log = logging.getLogger("ledger.access.apikeys")
KEY_COLUMNS = "id, tenant, scopes, secret_sha256, created, revoked, seal"  # what a seal covers, and the seal


class AuthError(LedgerError):
    code = "unauthorized"
    status = 401


class ForbiddenError(LedgerError):
    code = "forbidden"
    status = 403


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise ForbiddenError(f"this API key lacks the {scope!r} scope")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _statement(origin: str, row: Sequence[Any]) -> str:
    kid, tenant, scopes, secret_sha256, created, revoked = row
    return (f"{SEAL_HEADER}\n{origin}\n{kid}\n{tenant}\n{scopes}\n{secret_sha256}\n{created}\n"
            f"{revoked or 'active'}\n")


def _seal(signer: Ed25519Signer, row: Sequence[Any]) -> str:
    return signed(signer, _statement(signer.name, row))


def seal_problem(verifier: Ed25519Verifier, row: Sequence[Any]) -> str | None:
    """What is wrong with a key's row (`KEY_COLUMNS`' columns) against its seal (None: it matches, signed by the
    log key)."""
    fields, seal = row[:6], row[6]
    if not seal:
        return "it has no seal (the row was not made by `ledger keys`)"
    statement = stated(verifier, seal)
    if statement is None:
        return "its seal is not signed by the log key"
    if statement != _statement(verifier.name, fields):
        return "the row differs from what its seal states (tenant, scopes, secret, creation or revocation)"
    return None


def seal_unsealed(log: TileLog) -> int:
    """Seal the keys of a database made before seals (once: when the column is added); returns how many."""
    rows = log.conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE seal IS NULL").fetchall()
    for row in rows:
        log.conn.execute("UPDATE api_keys SET seal = ? WHERE id = ?", (_seal(log.signer, row[:6]), row[0]))
    return len(rows)


def create_key(log: TileLog, tenant: str, scopes: list[str], label: str = "") -> str:
    """Create a key (sealed with the log key) and return it; it is never shown again."""
    if not _TENANT.fullmatch(tenant):
        raise RefusedError("a tenant is 1-64 letters, digits, '.', '_' or '-'", code="bad_tenant")
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise RefusedError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(bad) or 'none'})",
                           code="bad_scope")
    kid, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    row = (kid, tenant, ",".join(sorted(set(scopes))), _hash(secret), datetime.now(UTC).isoformat(timespec="seconds"),
           None)
    log.conn.execute("INSERT INTO api_keys(id, tenant, scopes, secret_sha256, label, created, seal)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)", (*row[:4], label, row[4], _seal(log.signer, row)))
    return f"el_{kid}_{secret}"


def revoke_key(log: TileLog, kid: str) -> None:
    found = log.conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ? AND revoked IS NULL", (kid,)).fetchone()
    if found is None:
        raise RefusedError(f"no active API key with id {kid}", code="unknown_key", status=404)
    row = (*found[:5], datetime.now(UTC).isoformat(timespec="seconds"))
    log.conn.execute("UPDATE api_keys SET revoked = ?, seal = ? WHERE id = ? AND revoked IS NULL",
                     (row[5], _seal(log.signer, row), kid))


def list_keys(conn: Connection) -> list[dict[str, str | None]]:
    rows = conn.execute("SELECT id, tenant, scopes, label, created, revoked FROM api_keys ORDER BY created, id").fetchall()
    return [dict(zip(("id", "tenant", "scopes", "label", "created", "revoked"), r, strict=True)) for r in rows]


def authenticate(conn: Connection, header: str | None, verifier: Ed25519Verifier) -> ApiKey:
    """Check an `Authorization: Bearer el_...` header, and the key's row against its seal; raise AuthError
    with a reason otherwise."""
    if not header:
        raise AuthError("an API key is required: send `Authorization: Bearer <key>`")
    scheme, _, token = header.partition(" ")
    m = _KEY.fullmatch(token.strip()) if scheme.lower() == "bearer" else None
    if m is None:
        raise AuthError("the Authorization header is not `Bearer <key>` with a well-formed key")
    row = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?", (m.group(1),)).fetchone()
    # compare even when the id is unknown, so timing does not tell which ids exist
    stored = row[3] if row else "0" * 64
    ok = hmac.compare_digest(stored, _hash(m.group(2)))
    if row is None or not ok or row[5] is not None:
        raise AuthError("the API key is unknown, wrong or revoked")
    problem = seal_problem(verifier, row)
    if problem is not None:
        log.error("API key %s refused: %s; the database was changed (run `ledger audit`)", m.group(1), problem)
        raise AuthError("the API key is unknown, wrong or revoked")
    return ApiKey(m.group(1), row[1], frozenset(row[2].split(",")))
