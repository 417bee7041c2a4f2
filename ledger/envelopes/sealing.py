"""The platform's e-seal on an envelope's documents and on its evidence reports: the latest version
sealed (PAdES B-LT by default: a signature time-stamp, the seal's certificates and its CA's CRL
embedded), stored, and registered in the log as a version of the document (`document.sealed`, naming
the seal certificate's SHA-256).

Whose key: the `[seal]` table of config.toml (`ledger.config.SealConfig`). By default the ledger's own
seal (`<home>/seal`, made by `ledger init` under the local seal CA, labelled "not accredited", like the
local TSA; a ledger made before it gets one at its first seal); else a PKCS#12 file, or a key in a
PKCS#11 token that signs without the key leaving it. Which TSA: the local one (answered in-process),
or a `[[tsa]]` table's, over HTTP. The appearance shows the registered image (`[seal] image`) or a
drawn round red seal with the organisation's name.

What it does not do: decide when to seal (the API seals on request, and when an envelope completes),
or seal with a tenant's own registered seals (those are the tenants', `ledger.envelopes.seals`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ledger.config import LOCAL_TSA_NAME, SealConfig, read_cert
from ledger.documents.seal import Level, LocalTsaTimeStamper, Sealer, ValidationData, seal_pdf
from ledger.documents.sealca import create_seal_ca, issue_crl, load_seal
from ledger.documents.sealstamp import MAX_IMAGE_BYTES, SealAppearance
from ledger.envelopes.core import SEAL_DIR, SEALED, Ledger
from ledger.envelopes.events import InputEvent
from ledger.envelopes.printing import document_of, latest_version
from ledger.errors import LedgerError, RefusedError
from verifier._cms import quiet_pyhanko

with quiet_pyhanko():
    from pyhanko.sign.timestamps.api import TimeStamper


def seal_dir(led: Ledger) -> Path:
    """The ledger's seal, made now if this ledger has none yet."""
    directory = led.home / SEAL_DIR
    if not (directory / "seal.pem").exists():
        create_seal_ca(directory, organisation=led.config.organisation, now=led.clock(),
                       crl_base_url=led.config.public_url.rstrip("/") + "/seal-ca/")
    return directory


@dataclass(frozen=True)
class PlatformSeal:
    """What sealing needs, resolved from `[seal]`: the key, the TSA, the level and its validation data."""

    sealer: Sealer
    timestamper: TimeStamper
    level: Level
    validation_data: ValidationData | None
    appearance: SealAppearance

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.sealer.cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _path(led: Ledger, name: str) -> Path:
    return Path(name) if Path(name).is_absolute() else led.home / name


def _read(led: Ledger, name: str, what: str) -> bytes:
    try:
        return _path(led, name).read_bytes()
    except OSError as e:
        raise LedgerError(f"[seal]: cannot read {what} {_path(led, name)}: {e}", code="bad_config") from None


def _certs(led: Ledger, names: tuple[str, ...], what: str) -> list[x509.Certificate]:
    out = []
    for name in names:
        data = _read(led, name, what)
        try:
            out += x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
        except ValueError as e:
            raise LedgerError(f"[seal]: {_path(led, name)} is no certificate ({e})", code="bad_config") from None
    return out


def _crl_der(led: Ledger, name: str) -> bytes:
    data = _read(led, name, "a CRL")
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except ValueError as e:
        raise LedgerError(f"[seal]: {_path(led, name)} is no CRL ({e})", code="bad_config") from None
    return crl.public_bytes(serialization.Encoding.DER)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _timestamper(led: Ledger, conf: SealConfig) -> tuple[TimeStamper, list[bytes]]:
    """The TSA of the seal's time-stamp, and its roots (DER) for B-LT validation data."""
    if conf.tsa == LOCAL_TSA_NAME:
        if led.local_tsa is None:
            raise RefusedError("sealing with the local TSA needs local_tsa = true (or name a [[tsa]] in [seal] tsa)",
                               code="no_tsa", status=409)
        return LocalTsaTimeStamper(led.local_tsa), [led.local_tsa.root_der]
    (tsa,) = [t for t in led.config.tsa if t.name == conf.tsa]
    from pyhanko.sign.timestamps import HTTPTimeStamper

    auth = (tsa.username, tsa.password_value()) if tsa.username else None
    roots = [_der(c) for name in tsa.roots
             for c in x509.load_pem_x509_certificates(read_cert(led.home, name, tsa.name))]
    return HTTPTimeStamper(tsa.url, timeout=tsa.timeout_s, auth=auth, headers=dict(tsa.headers) or None), roots


@contextmanager
def platform_seal(led: Ledger) -> Iterator[PlatformSeal]:
    """The platform's seal as `[seal]` configures it; a PKCS#11 session stays open inside the `with`."""
    conf = led.config.seal
    timestamper, tsa_roots = _timestamper(led, conf)
    image = _read(led, conf.image, "the seal image") if conf.image else None
    if image is not None and len(image) > MAX_IMAGE_BYTES:
        raise LedgerError(f"[seal]: the seal image is larger than {MAX_IMAGE_BYTES} bytes", code="bad_config")
    appearance = SealAppearance(image=image)
    level: Level = "B-LT" if conf.effective_level == "B-LT" else "B-T"
    chain = _certs(led, conf.chain, "a chain certificate")
    own_roots = [_der(c) for c in _certs(led, conf.roots, "a root")]
    crls = [_crl_der(led, n) for n in conf.crls]

    def data(seal_roots: tuple[bytes, ...] = (), seal_crls: tuple[bytes, ...] = ()) -> ValidationData:
        return ValidationData(trust_roots=(*seal_roots, *own_roots, *tsa_roots), crls=(*seal_crls, *crls),
                              certs=tuple(_der(c) for c in chain))

    if conf.key == "local":
        directory = seal_dir(led)
        seal = load_seal(directory)
        if seal.crl.next_update_utc is None or seal.crl.next_update_utc < led.clock() + timedelta(days=1):
            issue_crl(directory, led.clock())
            seal = load_seal(directory)
        yield PlatformSeal(Sealer.from_local_seal(seal), timestamper, level,
                           data((_der(seal.root),), (seal.crl_der,)), appearance)
        return
    if conf.key == "pkcs12":
        passphrase = conf.secret(conf.passphrase_env, "the PKCS#12 passphrase").encode() if conf.passphrase_env else None
        sealer = Sealer.from_pkcs12(_path(led, conf.pkcs12), passphrase=passphrase,
                                    chain=[_path(led, n) for n in conf.chain])
        yield PlatformSeal(sealer, timestamper, level, data(), appearance)
        return
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import open_pkcs11_session

    cert = _certs(led, (conf.cert,), "the token key's certificate")[0]
    pin = conf.secret(conf.pin_env, "the token's user PIN")
    try:
        session = open_pkcs11_session(conf.pkcs11_module, token_criteria=TokenCriteria(label=conf.pkcs11_token),
                                      user_pin=pin)
    except Exception as e:  # the PKCS#11 library's own errors: no such module, token or PIN
        raise LedgerError(f"[seal]: cannot open PKCS#11 token {conf.pkcs11_token!r} with {conf.pkcs11_module}: "
                          f"{type(e).__name__} {e}".rstrip(), code="seal_token") from None
    try:
        sealer = Sealer.from_pkcs11(session, cert=cert, key_label=conf.pkcs11_key, chain=chain)
        yield PlatformSeal(sealer, timestamper, level, data(), appearance)
    finally:
        session.close()


def seal_bytes(led: Ledger, pdf: bytes, *, visible: bool = True) -> tuple[bytes, str]:
    """`pdf` sealed with the platform's seal; returns the sealed PDF and the seal certificate's SHA-256."""
    with platform_seal(led) as ps:
        out = seal_pdf(pdf, ps.sealer, timestamper=ps.timestamper, level=ps.level,
                       validation_data=ps.validation_data if ps.level == "B-LT" else None,
                       appearance=ps.appearance if visible else None, now=led.clock())
        return out, ps.certificate_sha256


def seal_report(led: Ledger, pdf: bytes) -> bytes:
    """An evidence report sealed with the platform's seal (shown in the corner of its last page)."""
    return seal_bytes(led, pdf)[0]


def sealed_version(led: Ledger, tenant: str, ref: str, document_ref: str) -> tuple[InputEvent, bytes]:
    """Seal the document's latest version; returns the `document.sealed` event to append and the sealed
    PDF (already in the blob store)."""
    source = latest_version(led, *document_of(led, tenant, ref, document_ref))
    pdf, certificate = seal_bytes(led, source.pdf)
    sha, _ = led.blobs.put(pdf)
    event = InputEvent("document.sealed", ref, {"document": document_ref, "sha256": sha, "certificate": certificate,
                                                SEALED: True})
    return event, pdf


def with_seal(ack: dict[str, Any], pdf: bytes) -> dict[str, Any]:
    return {**ack, "sha256": hashlib.sha256(pdf).hexdigest(), "size": len(pdf)}
