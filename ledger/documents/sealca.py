"""The local seal CA: the certificates behind the platform's PAdES e-seal (ETSI EN 319 142-1).

What it does: create, once, in a directory, a self-signed root whose subject says "not accredited",
an organisation's seal certificate under it (key usage digitalSignature + nonRepudiation, critical;
the organisation's name in Chinese or Latin script as O and CN; a CRL distribution point, RFC 5280
§4.2.1.13, under a configurable base URL), keys of mode 0600, and the CRL the CA publishes
(RFC 5280 §5, with a CRL number and an authority key identifier). It can also certify a public key
whose private key never leaves a token (PKCS#11), and revoke a certificate it issued.

What it does not do: serve the CRL (the file is there to be served at the URL the certificates name),
accredited trust (production seals come from an accredited CA), OCSP, or PDF signing (`seal`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ledger.errors import RefusedError, StorageError
from ledger.storage.files import write_durably

ROOT_CERT_FILE = "seal-root.pem"
ROOT_KEY_FILE = "seal-root.key"
SEAL_CERT_FILE = "seal.pem"
SEAL_KEY_FILE = "seal.key"
CRL_FILE = "seal-ca.crl"
CRL_URL_FILE = "crl-url"
REVOKED_FILE = "revoked"
CRL_NUMBER_FILE = "crl-number"
DEFAULT_CRL_BASE_URL = "http://127.0.0.1:8080/seal-ca/"
ROOT_ORGANISATION = "Evidence Ledger local seal CA (not accredited)"
CRL_VALIDITY = timedelta(days=7)
_MAX_NAME = 64  # ub-organization-name, RFC 5280 Appendix A.1

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class SealCaError(StorageError):
    """The seal CA's directory is missing, incomplete or corrupt: nothing was issued."""

    code = "seal_ca_unavailable"


@dataclass(frozen=True)
class LocalSeal:
    """An organisation's seal as `load_seal` reads it: key, certificate, root and the latest CRL."""

    directory: Path
    key: PrivateKey
    cert: x509.Certificate
    root: x509.Certificate
    crl: x509.CertificateRevocationList

    @property
    def organisation(self) -> str:
        return organisation_of(self.cert)

    @property
    def key_path(self) -> Path:
        return self.directory / SEAL_KEY_FILE

    @property
    def cert_path(self) -> Path:
        return self.directory / SEAL_CERT_FILE

    @property
    def root_path(self) -> Path:
        return self.directory / ROOT_CERT_FILE

    @property
    def crl_der(self) -> bytes:
        return self.crl.public_bytes(serialization.Encoding.DER)


def organisation_of(cert: x509.Certificate) -> str:
    """The organisation (O, else CN) a certificate names; "" if it names neither."""
    for oid in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        attrs = cert.subject.get_attributes_for_oid(oid)
        if attrs:
            return str(attrs[0].value)
    return ""


def check_organisation(organisation: str) -> str:
    """The organisation's name, stripped; refused if empty, too long or holding control characters."""
    name = unicodedata.normalize("NFC", organisation.strip())
    if not name:
        raise RefusedError(
            "the organisation's name is empty; give the name the seal shows", code="seal_bad_name"
        )
    if len(name) > _MAX_NAME:
        raise RefusedError(
            f"the organisation's name has {len(name)} characters; a certificate holds at most {_MAX_NAME}",
            code="seal_bad_name",
        )
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise RefusedError(
            "the organisation's name holds control or unassigned characters; remove them",
            code="seal_bad_name",
        )
    return name


def create_seal_ca(
    directory: Path,
    *,
    organisation: str,
    now: datetime,
    crl_base_url: str = DEFAULT_CRL_BASE_URL,
    key_type: str = "ec",
) -> LocalSeal:
    """Create the root, the organisation's seal certificate and key, and a first CRL in `directory`.

    Args:
        directory: created (mode 0700) if missing; must not already hold a seal CA.
        organisation: the name the seal certificate (and the seal's appearance) shows, e.g. "某某科技有限公司".
        now: start of validity; the root is valid 20 years, the seal 3 years, each CRL 7 days.
        crl_base_url: where `CRL_FILE` will be served; the certificates' CRL distribution point is
            this URL joined with `CRL_FILE`.
        key_type: "ec" (ECDSA P-256) or "rsa" (RSA-3072), for both keys.

    Raises:
        RefusedError: a bad name, URL, time or key type, or a seal CA is already there (never replaced).
    """
    name = check_organisation(organisation)
    now = _aware(now)
    if not crl_base_url.startswith(("http://", "https://")):
        raise RefusedError(f"CRL base URL {crl_base_url!r} must be http:// or https://", code="seal_bad_url")
    crl_url = crl_base_url.rstrip("/") + "/" + CRL_FILE
    directory = Path(directory)
    if (directory / ROOT_KEY_FILE).exists() or (directory / SEAL_KEY_FILE).exists():
        raise RefusedError(
            f"{directory} already holds a seal CA; it is never replaced (use another directory)",
            code="seal_ca_exists",
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    root_key = _new_key(key_type)
    seal_key = _new_key(key_type)
    start = now - timedelta(minutes=5)  # tolerate validators whose clocks run slightly behind
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ROOT_ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, "Evidence Ledger Seal Root (not accredited)"),
        ]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=20 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    write_durably(directory / ROOT_KEY_FILE, _key_pem(root_key), mode=0o600)
    write_durably(directory / ROOT_CERT_FILE, root.public_bytes(serialization.Encoding.PEM))
    write_durably(directory / CRL_URL_FILE, crl_url.encode() + b"\n")
    write_durably(directory / REVOKED_FILE, b"")
    write_durably(directory / CRL_NUMBER_FILE, b"1\n")
    cert = _issue(root, root_key, seal_key.public_key(), name, crl_url, start)
    write_durably(directory / SEAL_KEY_FILE, _key_pem(seal_key), mode=0o600)
    write_durably(directory / SEAL_CERT_FILE, cert.public_bytes(serialization.Encoding.PEM))
    issue_crl(directory, now)
    return load_seal(directory)


def certify_seal_key(
    directory: Path, public_key: PublicKey, *, organisation: str, now: datetime
) -> x509.Certificate:
    """A seal certificate from the CA in `directory` for a key held elsewhere (a PKCS#11 token).

    The certificate is returned, not written: the token's owner keeps it beside the token.
    """
    name = check_organisation(organisation)
    root, root_key = _load_root(directory)
    crl_url = _read(directory / CRL_URL_FILE).decode().strip()
    return _issue(root, root_key, public_key, name, crl_url, _aware(now) - timedelta(minutes=5))


def load_seal(directory: Path) -> LocalSeal:
    """The seal made by `create_seal_ca` in `directory`, with the CA's latest CRL."""
    directory = Path(directory)
    root, _ = _load_root(directory)
    try:
        key = serialization.load_pem_private_key(_read(directory / SEAL_KEY_FILE), password=None)
        cert = x509.load_pem_x509_certificate(_read(directory / SEAL_CERT_FILE))
        crl = x509.load_der_x509_crl(_read(directory / CRL_FILE))
    except ValueError as exc:
        raise SealCaError(f"{directory} holds a damaged seal file ({exc}); create a new seal CA") from exc
    if not isinstance(key, PrivateKey):
        raise SealCaError(f"{directory / SEAL_KEY_FILE} holds a {type(key).__name__}; expected EC or RSA")
    return LocalSeal(directory=directory, key=key, cert=cert, root=root, crl=crl)


def revoke(directory: Path, serial: int, *, now: datetime) -> x509.CertificateRevocationList:
    """Add certificate `serial` to the revoked list and publish a new CRL (see `issue_crl`)."""
    path = Path(directory) / REVOKED_FILE
    lines = _read(path).decode().splitlines()
    if any(line.split()[0] == str(serial) for line in lines if line.strip()):
        raise RefusedError(f"certificate serial {serial} is already revoked", code="seal_already_revoked")
    lines.append(f"{serial} {_aware(now).isoformat()}")
    write_durably(path, ("\n".join(lines) + "\n").encode())
    return issue_crl(directory, now)


def issue_crl(directory: Path, now: datetime) -> x509.CertificateRevocationList:
    """Sign and write a new CRL (`CRL_FILE`, DER), valid from `now` for `CRL_VALIDITY`.

    Each CRL has the next CRL number (RFC 5280 §5.2.3); call this again before `next_update`, or
    validators that check revocation will refuse the seal.
    """
    directory = Path(directory)
    now = _aware(now)
    root, root_key = _load_root(directory)
    number = int(_read(directory / CRL_NUMBER_FILE).decode().strip() or "0")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
    )
    for line in _read(directory / REVOKED_FILE).decode().splitlines():
        if not line.strip():
            continue
        serial, when = line.split()
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial))
            .revocation_date(datetime.fromisoformat(when))
            .build()
        )
    crl = builder.sign(root_key, hashes.SHA256())
    write_durably(directory / CRL_FILE, crl.public_bytes(serialization.Encoding.DER))
    write_durably(directory / CRL_NUMBER_FILE, f"{number + 1}\n".encode())
    return crl


def _issue(
    root: x509.Certificate,
    root_key: PrivateKey,
    public_key: PublicKey,
    organisation: str,
    crl_url: str,
    start: datetime,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, organisation),
        ]
    )
    dp = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None, reasons=None, crl_issuer=None
    )
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3 * 365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.CRLDistributionPoints([dp]), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,  # nonRepudiation: the organisation stands behind what it seals
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise RefusedError(f"key type must be 'ec' or 'rsa', not {key_type!r}", code="seal_bad_key_type")


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _aware(now: datetime) -> datetime:
    if now.utcoffset() is None:
        raise RefusedError("the time must be timezone-aware (e.g. datetime.now(UTC))", code="seal_bad_time")
    return now.astimezone(UTC)


def _load_root(directory: Path) -> tuple[x509.Certificate, PrivateKey]:
    directory = Path(directory)
    try:
        root = x509.load_pem_x509_certificate(_read(directory / ROOT_CERT_FILE))
        key = serialization.load_pem_private_key(_read(directory / ROOT_KEY_FILE), password=None)
    except ValueError as exc:
        raise SealCaError(f"{directory} holds a damaged seal CA root ({exc}); create a new seal CA") from exc
    if not isinstance(key, PrivateKey):
        raise SealCaError(f"{directory / ROOT_KEY_FILE} holds a {type(key).__name__}; expected EC or RSA")
    return root, key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SealCaError(
            f"{path} cannot be read ({exc.strerror}); is {path.parent} a seal CA made by create_seal_ca?"
        ) from exc
