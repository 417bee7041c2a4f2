"""The seal registry: each tenant's electronic seals (a certificate, an optional image of the seal) and
physical seals (a scan of the impression), with the parties and roles that may use them.

A seal is known by its fingerprint, the SHA-256 of its certificate (DER) for an electronic seal and
of the impression's scan for a physical one: the `seal` field of a `seal.used` entry. So the log names
which seal was used, and the registry row is checkable against it: the certificate or the scan hashes
to the fingerprint (the scan lives in the blob store). A `seal.used` is accepted only for a seal of the
envelope's tenant that is registered and not retired, of the kind it says, by a party the seal names
(its reference) or whose role it names (`check_use`, called by the ledger as it stages the event).

Each row is sealed like an API key: `seal` is a note signed by the log key over the row (first line
`evidence-ledger/seal/v1`), made when the seal is registered or retired. A row that does not match its
note is refused at use and named by `ledger audit`, so writing the database file without the log key
cannot register a seal, widen who may use one, or take back a retirement.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ledger.access.rownotes import signed, stated
from ledger.documents.blobs import BlobStore
from ledger.documents.sealstamp import registered_image
from ledger.envelopes.events import REF, control_character
from ledger.errors import RefusedError
from ledger.storage.engine import Connection
from ledger.storage.log import TileLog
from verifier.lifecycle import ROLES, SEAL_KINDS
from verifier.note import Ed25519Signer, Ed25519Verifier

SEAL_HEADER = "evidence-ledger/seal/v1"
COLUMNS = "tenant, fingerprint, kind, name, image_sha256, parties, roles, created, retired, seal, certificate"
MAX_NAME = 100
MAX_CERTIFICATE_BYTES = 64 * 1024
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]{64}")


def _statement(origin: str, row: Sequence[Any]) -> str:
    tenant, fingerprint, kind, name, image, parties, roles, created, retired = row[:9]
    return (f"{SEAL_HEADER}\n{origin}\n{tenant}\n{fingerprint}\n{kind}\n{json.dumps(name)}\n{image or '-'}\n"
            f"{parties}\n{roles}\n{created}\n{retired or 'active'}\n")


def _sign(signer: Ed25519Signer, row: Sequence[Any]) -> str:
    return signed(signer, _statement(signer.name, row))


def row_problem(verifier: Ed25519Verifier, row: Sequence[Any]) -> str | None:
    """What is wrong with a registry row (`COLUMNS`' columns), or None: its note is signed by the log key and
    states the row, and the certificate of an electronic seal hashes to its fingerprint."""
    statement = stated(verifier, row[9])
    if statement is None:
        return "its note is not signed by the log key"
    if statement != _statement(verifier.name, row):
        return "the row differs from what its note states (kind, name, image, parties, roles, dates)"
    certificate = row[10]
    if row[2] == "electronic" and (certificate is None or hashlib.sha256(certificate).hexdigest() != row[1]):
        return "its certificate does not hash to its fingerprint"
    return None


def _certificate_der(data: bytes) -> tuple[bytes, x509.Certificate]:
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise RefusedError(f"the seal certificate has {len(data)} bytes; at most {MAX_CERTIFICATE_BYTES}",
                           code="seal_bad_certificate", status=422)
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise RefusedError(f"the seal certificate cannot be read ({e}); give one X.509 certificate, PEM or DER",
                           code="seal_bad_certificate", status=422) from None
    return cert.public_bytes(Encoding.DER), cert


def register(log: TileLog, blobs: BlobStore, tenant: str, *, kind: str, name: str, certificate: bytes | None = None,
             image: bytes | None = None, parties: Sequence[str] = (), roles: Sequence[str] = ()) -> dict[str, Any]:
    """Register a seal of `tenant` and return it as `list_seals` shows it.

    An electronic seal needs its certificate (its fingerprint is the certificate's SHA-256), and may have
    an image (PNG or JPEG) of its appearance; a physical seal needs the scan of its impression (its
    fingerprint is the scan's SHA-256). At least one party reference or role must be allowed to use it.

    Raises:
        RefusedError: what is wrong with the input, or the seal is registered already (409).
    """
    if not _TENANT.fullmatch(tenant):
        raise RefusedError("a tenant is 1-64 letters, digits, '.', '_' or '-'", code="bad_tenant", status=422)
    if kind not in SEAL_KINDS:
        raise RefusedError(f"kind must be one of {', '.join(SEAL_KINDS)}", code="seal_bad_kind", status=422)
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME or (why := control_character(name, one_line=True)):
        raise RefusedError(f"a seal's name is 1-{MAX_NAME} characters on one line"
                           + (f" ({why})" if len(name) <= MAX_NAME and name else ""), code="seal_bad_name", status=422)
    bad = [p for p in parties if not REF.fullmatch(p)]
    if bad:
        raise RefusedError(f"party references are 1-64 of A-Z a-z 0-9 . _ : - (not {bad[0]!r})",
                           code="seal_bad_party", status=422)
    if set(roles) - set(ROLES):
        raise RefusedError(f"roles must be some of {', '.join(ROLES)}", code="seal_bad_role", status=422)
    if not parties and not roles:
        raise RefusedError("name who may use the seal: party references, roles (signer), or both",
                           code="seal_no_users", status=422)
    der: bytes | None = None
    if kind == "electronic":
        if certificate is None:
            raise RefusedError("an electronic seal is registered with its certificate", code="seal_bad_certificate",
                               status=422)
        der, _ = _certificate_der(certificate)
        fingerprint = hashlib.sha256(der).hexdigest()
    elif certificate is not None:
        raise RefusedError("a physical seal has no certificate; give the scan of its impression",
                           code="seal_bad_certificate", status=422)
    if kind == "physical" and image is None:
        raise RefusedError("a physical seal is registered with a scan (PNG or JPEG) of its impression",
                           code="seal_bad_image", status=422)
    image_sha = None
    if image is not None:
        try:
            registered_image(image)
        except RefusedError as e:
            raise RefusedError(str(e), code=e.code, status=422) from None
        image_sha, _ = blobs.put(image)
    if kind == "physical":
        assert image_sha is not None
        fingerprint = image_sha
    row = (tenant, fingerprint, kind, name, image_sha, json.dumps(sorted(set(parties))), json.dumps(sorted(set(roles))),
           datetime.now(UTC).isoformat(timespec="seconds"), None)
    try:
        log.conn.execute(f"INSERT INTO seals({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (*row, _sign(log.signer, row), der))
    except sqlite3.IntegrityError:
        raise RefusedError(f"tenant {tenant!r} has registered this seal already ({fingerprint[:16]}…)",
                           code="seal_exists", status=409) from None
    return _shown((*row, None, der))


def retire(log: TileLog, tenant: str, fingerprint: str) -> None:
    """Retire a seal (lost, replaced): it may not be used from now on; its uses stay."""
    found = log.conn.execute(f"SELECT {COLUMNS} FROM seals WHERE tenant = ? AND fingerprint = ? AND retired IS NULL",
                             (tenant, fingerprint)).fetchone()
    if found is None:
        raise RefusedError(f"tenant {tenant!r} has no seal {fingerprint} in use", code="unknown_seal", status=404)
    row = (*found[:8], datetime.now(UTC).isoformat(timespec="seconds"))
    log.conn.execute("UPDATE seals SET retired = ?, seal = ? WHERE tenant = ? AND fingerprint = ? AND retired IS NULL",
                     (row[8], _sign(log.signer, row), tenant, fingerprint))


def check_use(conn: Connection, verifier: Ed25519Verifier, tenant: str, fingerprint: str, kind: str,
              party_ref: str, role: str) -> None:
    """Refuse a `seal.used` whose seal the tenant has not registered (or retired, or of another kind), or
    that names a party the seal is not for.

    Raises:
        RefusedError: 409, saying which.
    """
    row = conn.execute(f"SELECT {COLUMNS} FROM seals WHERE tenant = ? AND fingerprint = ?",
                       (tenant, fingerprint.lower())).fetchone()
    if row is None:
        raise RefusedError(f"seal {fingerprint[:16]}… is not registered for this tenant (ledger seals add)",
                           code="unknown_seal", status=409)
    problem = row_problem(verifier, row)
    if problem:
        raise RefusedError(f"seal {fingerprint[:16]}…: its registry row is not to be trusted: {problem}",
                           code="seal_row_tampered", status=409)
    if row[8] is not None:
        raise RefusedError(f"seal {row[3]!r} was retired on {row[8]}", code="seal_retired", status=409)
    if row[2] != kind:
        raise RefusedError(f"seal {row[3]!r} is a {row[2]} seal, not a {kind} one", code="seal_wrong_kind", status=409)
    if party_ref not in json.loads(row[5]) and role not in json.loads(row[6]):
        raise RefusedError(f"party {party_ref!r} may not use seal {row[3]!r}", code="seal_not_allowed", status=409)


def _shown(row: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"fingerprint": row[1], "kind": row[2], "name": row[3], "image_sha256": row[4],
                           "parties": json.loads(row[5]), "roles": json.loads(row[6]), "registered": row[7],
                           "retired": row[8]}
    if row[10] is not None:
        cert = x509.load_der_x509_certificate(row[10])
        out["certificate"] = {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
                              "serial": format(cert.serial_number, "x"),
                              "not_after": cert.not_valid_after_utc.isoformat().replace("+00:00", "Z")}
    return out


def list_seals(conn: Connection, tenant: str, *, uses: bool = True, limit: int = 1000) -> list[dict[str, Any]]:
    """The tenant's seals, each with its uses (newest first, at most `limit` each): the envelope's
    reference, the party's reference, the log index and time."""
    seals = [_shown(r) for r in conn.execute(f"SELECT {COLUMNS} FROM seals WHERE tenant = ? ORDER BY created, "
                                             "fingerprint", (tenant,))]
    if uses:
        for s in seals:
            s["uses"] = [{"envelope": ref, "party": party, "index": idx, "time": time}
                         for idx, ref, party, time in conn.execute(
                             "SELECT u.idx, e.ref, r.ref, u.time FROM seal_uses u JOIN envelopes e ON e.env = u.env"
                             " LEFT JOIN refs r ON r.env = u.env AND r.kind = 'party' AND r.ordinal = u.party"
                             " WHERE u.seal = ? AND e.tenant = ? ORDER BY u.idx DESC LIMIT ?",
                             (s["fingerprint"], tenant, limit))]
    return seals


def seal_of(conn: Connection, tenant: str, fingerprint: str) -> dict[str, Any] | None:
    """One registered seal, as `list_seals` shows it (without its uses), or None."""
    row = conn.execute(f"SELECT {COLUMNS} FROM seals WHERE tenant = ? AND fingerprint = ?",
                       (tenant, fingerprint)).fetchone()
    return None if row is None else _shown(row)


def is_fingerprint(text: str) -> bool:
    return bool(_HEX.fullmatch(text))
