"""API keys of the signing platforms: created once, shown once, stored only as SHA-256.

A key is `el_<id>_<secret>`: the id finds the row, the 256-bit secret is checked against its hash
in constant time. Keys carry a tenant and scopes (append, read, export, admin). This module never
logs a key; `describe()` shows the id only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.errors import LedgerError, RefusedError

SCOPES = ("append", "read", "export", "admin")
_KEY = re.compile(r"el_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
# How long a running portal may still accept a key after it was revoked: it caches the keys it has
# checked (portal.api.routes), so that a request does not read the database for its key each time.
KEY_CACHE_S = 5.0
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")



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


def create_key(conn: sqlite3.Connection, tenant: str, scopes: list[str], label: str = "") -> str:
    """Create a key and return it; it is never shown again."""
    if not _TENANT.fullmatch(tenant):
        raise RefusedError("a tenant is 1-64 letters, digits, '.', '_' or '-'", code="bad_tenant")
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise RefusedError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(bad) or 'none'})",
                           code="bad_scope")
    kid, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    conn.execute("INSERT INTO api_keys(id, tenant, scopes, secret_sha256, label, created) VALUES (?, ?, ?, ?, ?, ?)",
                 (kid, tenant, ",".join(sorted(set(scopes))), _hash(secret), label,
                  datetime.now(UTC).isoformat(timespec="seconds")))
    return f"el_{kid}_{secret}"


def revoke_key(conn: sqlite3.Connection, kid: str) -> None:
    cur = conn.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                       (datetime.now(UTC).isoformat(timespec="seconds"), kid))
    if cur.rowcount != 1:
        raise RefusedError(f"no active API key with id {kid}", code="unknown_key", status=404)


def list_keys(conn: sqlite3.Connection) -> list[dict[str, str | None]]:
    rows = conn.execute("SELECT id, tenant, scopes, label, created, revoked FROM api_keys ORDER BY created").fetchall()
    return [dict(zip(("id", "tenant", "scopes", "label", "created", "revoked"), r, strict=True)) for r in rows]


def authenticate(conn: sqlite3.Connection, header: str | None) -> ApiKey:
    """Check an `Authorization: Bearer el_...` header; raise AuthError with a reason otherwise."""
    if not header:
        raise AuthError("an API key is required: send `Authorization: Bearer <key>`")
    scheme, _, token = header.partition(" ")
    m = _KEY.fullmatch(token.strip()) if scheme.lower() == "bearer" else None
    if m is None:
        raise AuthError("the Authorization header is not `Bearer <key>` with a well-formed key")
    row = conn.execute("SELECT tenant, scopes, secret_sha256, revoked FROM api_keys WHERE id = ?",
                       (m.group(1),)).fetchone()
    # compare even when the id is unknown, so timing does not tell which ids exist
    stored = row[2] if row else "0" * 64
    ok = hmac.compare_digest(stored, _hash(m.group(2)))
    if row is None or not ok or row[3] is not None:
        raise AuthError("the API key is unknown, wrong or revoked")
    return ApiKey(m.group(1), row[0], frozenset(row[1].split(",")))
