"""The local time-stamping authority: the embedded default anchor of DESIGN.md §5.

What it does: create a self-signed root and a TSA certificate (extended key usage timeStamping,
critical, RFC 3161 §2.3) in a directory, and answer DER TimeStampReq with DER TimeStampResp
(RFC 3161 §2.4.1, §2.4.2): TSTInfo signed as CMS SignedData (RFC 5652 §5) with the
content-type, signing-time, message-digest and signing-certificate-v2 (ESSCertIDv2, RFC 5816 §2.2.1)
signed attributes. Serial numbers come from a counter file, locked and fsynced, so they stay unique
across threads, processes and restarts; on a PostgreSQL ledger, whose hosts share one TSA key, from a row
of the database instead (`ledger.anchoring.tsa_serial`). Bad requests get a rejection with a PKIFailureInfo.

What it does not do: network I/O (the portal serves it at `POST /tsa`), accredited time (its
certificates say "not accredited"; production configures real TSAs), or revocation information.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.clock import Clock, utc_now
from ledger.config import DEFAULT_POLICY
from ledger.errors import StorageError
from ledger.storage.files import write_durably

MAX_REQUEST_BYTES = 64 * 1024
ROOT_CERT_FILE = "tsa-root.pem"
CERT_FILE = "tsa.pem"
KEY_FILE = "tsa.key"
SERIAL_FILE = "tsa-serial"
_ACCEPTED_IMPRINTS = {"sha256": 32, "sha384": 48, "sha512": 64}


class LocalTsaError(StorageError):
    """The local TSA's directory is missing, incomplete or corrupt: no time-stamp was issued."""

    code = "local_tsa_unavailable"


@dataclass(frozen=True)
class LocalTsaPaths:
    """Where a local TSA keeps its files."""

    directory: Path
    root_cert: Path
    cert: Path
    key: Path
    serial: Path

    @classmethod
    def of(cls, directory: Path) -> LocalTsaPaths:
        directory = Path(directory)
        return cls(
            directory=directory,
            root_cert=directory / ROOT_CERT_FILE,
            cert=directory / CERT_FILE,
            key=directory / KEY_FILE,
            serial=directory / SERIAL_FILE,
        )


def _new_key(key_type: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def create_local_tsa(
    directory: Path,
    *,
    name: str = "Evidence Ledger Local TSA",
    key_type: str = "ec",
    now: datetime | None = None,
) -> LocalTsaPaths:
    """Create the root certificate, TSA certificate, TSA key (mode 0600) and serial counter.

    Args:
        directory: created if missing; must not already hold a TSA key.
        name: the TSA's name; certificates say "<name> (not accredited)".
        key_type: "ec" (ECDSA P-256) or "rsa" (RSA-3072).
        now: start of validity (default: the current time); root valid 20 years, TSA 10 years.

    Raises:
        FileExistsError: a TSA key is already there (it is never overwritten).
    """
    paths = LocalTsaPaths.of(directory)
    paths.directory.mkdir(parents=True, exist_ok=True)
    if paths.key.exists():
        raise FileExistsError(f"{paths.key} exists; refusing to replace a TSA key")
    start = (now or utc_now()) - timedelta(minutes=5)  # tolerate clients whose clocks run slightly behind
    org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evidence Ledger")
    unit = x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Local TSA (not accredited)")
    root_name = x509.Name(
        [org, unit, x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Root (not accredited)")]
    )
    tsa_name = x509.Name([org, unit, x509.NameAttribute(NameOID.COMMON_NAME, f"{name} (not accredited)")])
    root_key, tsa_key = _new_key(key_type), _new_key(key_type)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=20 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    tsa = (
        x509.CertificateBuilder()
        .subject_name(tsa_name)
        .issuer_name(root_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    key_pem = tsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_durably(paths.key, key_pem, mode=0o600)
    write_durably(paths.root_cert, root.public_bytes(serialization.Encoding.PEM))
    write_durably(paths.cert, tsa.public_bytes(serialization.Encoding.PEM))
    write_durably(paths.serial, b"1\n")
    return paths


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )




def build_request(
    data: bytes, *, nonce: int | None, cert_req: bool = True, policy: str | None = None
) -> bytes:
    """A DER TimeStampReq (RFC 3161 §2.4.1) for SHA-256(data)."""
    request: dict[str, object] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": hashlib.sha256(data).digest(),
        },
        "cert_req": cert_req,
    }
    if policy is not None:
        request["req_policy"] = policy
    if nonce is not None:
        request["nonce"] = nonce
    return bytes(tsp.TimeStampReq(request).dump())


class _Rejected(Exception):
    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    # asn1crypto's TimeStampResp makes the token mandatory; a rejection has none (RFC 3161 §2.4.2).
    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def _rejection(fail_info: str, text: str) -> bytes:
    status = {"status": "rejection", "status_string": [text], "fail_info": tsp.PKIFailureInfo({fail_info})}
    return bytes(_TimeStampResp({"status": status}).dump())


class LocalTsa:
    """An RFC 3161 TSA signing with the key in a `create_local_tsa` directory. Safe to share between threads."""

    def __init__(
        self,
        paths: LocalTsaPaths,
        *,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        cert_der: bytes,
        root_der: bytes,
        policy_oid: str,
        clock: Clock,
        serials: Callable[[], int] | None = None,
    ) -> None:
        self.paths = paths
        self.policy_oid = policy_oid
        self.cert_der = cert_der
        self.root_der = root_der
        self._key = key
        self._cert = asn1_x509.Certificate.load(cert_der)
        self._ess_attr = self._signing_certificate_attr()
        self._clock = clock
        self._serial_lock = threading.Lock()
        self._serials = serials

    @classmethod
    def load(cls, directory: Path, *, policy_oid: str = DEFAULT_POLICY, clock: Clock = utc_now,
             serials: Callable[[], int] | None = None) -> LocalTsa:
        """Load a TSA made by `create_local_tsa`. `clock` returns an aware datetime (the genTime); `serials`,
        if given, allocates each token's serial number instead of the directory's counter file (it raises
        `LocalTsaError` when it cannot, and never returns a number twice)."""
        paths = LocalTsaPaths.of(directory)
        try:
            key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
            root = x509.load_pem_x509_certificate(paths.root_cert.read_bytes())
            int(paths.serial.read_text().strip())
        except (OSError, ValueError) as exc:
            raise LocalTsaError(
                f"{paths.directory} is not a usable local TSA ({exc}); see `create_local_tsa`"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise LocalTsaError(f"{paths.key} holds a {type(key).__name__}; expected an EC or RSA key")
        return cls(
            paths,
            key=key,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            root_der=root.public_bytes(serialization.Encoding.DER),
            policy_oid=policy_oid,
            clock=clock,
            serials=serials,
        )

    @property
    def name(self) -> str:
        return str(self._cert.subject.human_friendly)

    def issue_token(self, body: bytes, nonce: int | None = None, cert_req: bool = True) -> bytes:
        """The DER TimeStampResp for SHA-256(body)."""
        return self.respond(build_request(body, nonce=nonce, cert_req=cert_req))

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp: granted, or a rejection saying why."""
        try:
            request = self._check_request(request_der)
        except _Rejected as exc:
            return _rejection(exc.fail_info, exc.text)
        return self._grant(request)

    def _check_request(self, request_der: bytes) -> tsp.TimeStampReq:
        if len(request_der) > MAX_REQUEST_BYTES:
            raise _Rejected("bad_request", f"request larger than {MAX_REQUEST_BYTES} bytes")
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            _ = request.native  # parse every field now so malformed input is refused here
        except Exception as exc:  # asn1crypto raises many exception types on hostile input
            raise _Rejected("bad_request", f"not a DER TimeStampReq: {exc}") from exc
        if request["version"].native != "v1":
            raise _Rejected("bad_request", "TimeStampReq version must be 1")
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in _ACCEPTED_IMPRINTS:
            raise _Rejected(
                "bad_alg", f"message imprint algorithm {algorithm} not accepted; use SHA-256/384/512"
            )
        if len(imprint["hashed_message"].native) != _ACCEPTED_IMPRINTS[algorithm]:
            raise _Rejected("bad_data_format", f"message imprint is not a {algorithm} digest")
        policy = request["req_policy"]
        if policy.native is not None and policy.dotted != self.policy_oid:
            raise _Rejected(
                "unaccepted_policy", f"policy {policy.dotted} not offered; this TSA uses {self.policy_oid}"
            )
        if request["extensions"].native is not None:
            raise _Rejected("unaccepted_extensions", "request extensions are not supported")
        return request

    def _gen_time(self) -> datetime:
        now = self._clock()
        if now.utcoffset() is None:
            raise LocalTsaError("the TSA clock must return timezone-aware datetimes")
        now = now.astimezone(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _next_serial(self) -> int:
        """Allocate the next serial: from `serials` if given, else from the counter file (flock for other
        instances and processes, the lock for threads)."""
        if self._serials is not None:
            return self._serials()
        lock_path = self.paths.serial.with_name(self.paths.serial.name + ".lock")
        with self._serial_lock:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    serial = int(self.paths.serial.read_text().strip())
                except (OSError, ValueError) as exc:
                    raise LocalTsaError(f"serial counter {self.paths.serial} is unreadable: {exc}") from exc
                if serial < 1:
                    raise LocalTsaError(
                        f"serial counter {self.paths.serial} holds {serial}; must be positive"
                    )
                write_durably(self.paths.serial, f"{serial + 1}\n".encode())
                return serial
            finally:
                os.close(fd)  # releases the flock

    def _grant(self, request: tsp.TimeStampReq) -> bytes:
        gen_time = self._gen_time()
        tst: dict[str, object] = {
            "version": "v1",
            "policy": self.policy_oid,
            "message_imprint": request["message_imprint"],
            "serial_number": self._next_serial(),
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "tsa": asn1_x509.GeneralName({"directory_name": self._cert.subject}),
        }
        if request["nonce"].native is not None:
            tst["nonce"] = request["nonce"].native
        tst_info = tsp.TSTInfo(tst)
        signed_data: dict[str, object] = {
            "version": "v3",  # RFC 5652 §5.1: eContentType is not id-data
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "signer_infos": [self._signer_info(tst_info.dump(), gen_time)],
        }
        if request["cert_req"].native:
            signed_data["certificates"] = [self._cert]
        token = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})
        return bytes(_TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump())

    def _signing_certificate_attr(self) -> cms.CMSAttribute:
        """signing-certificate-v2 (RFC 5816 §2.2.1): the same for every token, so encoded once."""
        ess_cert_id = {
            "cert_hash": hashlib.sha256(self.cert_der).digest(),  # hash algorithm defaults to SHA-256
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": self._cert.issuer})],
                "serial_number": self._cert.serial_number,
            },
        }
        attr = cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{"certs": [ess_cert_id]}]})
        return cms.CMSAttribute.load(attr.dump())

    def _signer_info(self, tst_der: bytes, gen_time: datetime) -> cms.SignerInfo:
        signing_time = gen_time.replace(microsecond=0)
        attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {
                    "type": "signing_time",
                    "values": [
                        cms.Time({"utc_time" if signing_time.year < 2050 else "general_time": signing_time})
                    ],
                },
                {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
                self._ess_attr,
            ]
        )
        to_sign = attrs.dump()  # DER SET OF, the form RFC 5652 §5.4 signs
        if isinstance(self._key, rsa.RSAPrivateKey):
            signature = self._key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
            algorithm = "sha256_rsa"
        else:
            signature = self._key.sign(to_sign, ec.ECDSA(hashes.SHA256()))
            algorithm = "sha256_ecdsa"
        return cms.SignerInfo(
            {
                "version": "v1",  # sid is issuerAndSerialNumber
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": self._cert.issuer,
                            "serial_number": self._cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": algorithm}),
                "signature": signature,
            }
        )
