"""Test PKIs for time-stamping, generated at test time into temporary directories.

Fixed names, throw-away keys: a root CA, TSA certificates in several variants (critical,
non-critical or no extended key usage, expired, re-issued with the same serial), a second root
nobody trusts, directories in the layout `ledger.anchoring.tsa.LocalTsa.load` reads, and `OpenSslTsa`, a
TSA run by the `openssl ts -reply` command for interoperability tests.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.anchoring.tsa import CERT_FILE, KEY_FILE, ROOT_CERT_FILE, SERIAL_FILE

ROOT_CN = "Evidence Ledger Test Root CA"
OTHER_ROOT_CN = "Evidence Ledger Untrusted Test Root CA"
TSA_CN = "Evidence Ledger Test TSA"
VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
VALID_UNTIL = datetime(2040, 1, 1, tzinfo=UTC)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def new_key(key_type: str = "ec") -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evidence Ledger Tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_root(cn: str = ROOT_CN, *, key_type: str = "ec") -> Issued:
    """A self-signed root CA, valid 2020-2040."""
    key = new_key(key_type)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(VALID_FROM)
        .not_valid_after(VALID_UNTIL)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_tsa_cert(
    issuer: Issued,
    *,
    eku: str = "critical",
    key: PrivateKey | None = None,
    key_type: str = "ec",
    serial: int = 1000,
    not_before: datetime = VALID_FROM,
    not_after: datetime = VALID_UNTIL,
    cn: str = TSA_CN,
) -> Issued:
    """A TSA certificate issued by `issuer`.

    Args:
        eku: "critical" (correct), "non_critical", "absent", or "extra" (timeStamping plus serverAuth).
        key: reuse a key, e.g. to re-issue a certificate with the same key and serial.
    """
    key = key or new_key(key_type)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    purposes = [ExtendedKeyUsageOID.TIME_STAMPING]
    if eku == "extra":
        purposes.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if eku != "absent":
        builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), critical=eku != "non_critical")
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def write_tsa_dir(directory: Path, *, root: Issued, tsa: Issued) -> Path:
    """Write `root` and `tsa` in the layout `LocalTsa.load` reads; returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ROOT_CERT_FILE).write_bytes(root.pem)
    (directory / CERT_FILE).write_bytes(tsa.pem)
    (directory / KEY_FILE).write_bytes(
        tsa.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (directory / SERIAL_FILE).write_text("1\n")
    return directory


def tsa_dir(directory: Path, *, eku: str = "critical", key_type: str = "ec", **cert_args: object) -> Path:
    """A fresh root and a TSA certificate variant (see `make_tsa_cert`) written for `LocalTsa.load`."""
    root = make_root(key_type=key_type)
    tsa = make_tsa_cert(root, eku=eku, key_type=key_type, **cert_args)  # type: ignore[arg-type]
    return write_tsa_dir(directory, root=root, tsa=tsa)


def openssl(*args: str | Path, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    """Run `openssl`; raise with its stderr if it fails."""
    result = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, input=stdin, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
    return result.stdout


_CA_CNF = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
O = Evidence Ledger Tests
CN = OpenSSL Test Root CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_TSA_REQ_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
O = Evidence Ledger Tests
CN = OpenSSL Test TSA
[tsa_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = {eku}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_TS_CNF = """\
[tsa]
default_tsa = tsa_config
[tsa_config]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
other_policies = 1.3.6.1.4.1.57264.3161.99
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess_alg}
"""


class OpenSslTsa:
    """A TSA whose CA, certificate and replies are all made by the `openssl` command line.

    `reply` is serialised with a lock because `openssl ts` updates its serial file without locking.
    """

    POLICY = "1.3.6.1.4.1.57264.3161.2"

    def __init__(self, directory: Path, *, critical_eku: bool = True, ess_alg: str = "sha256") -> None:
        """Make the CA and TSA in `directory`; `ess_alg="sha1"` gives ESSCertID (v1) tokens."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ca.cnf").write_text(_CA_CNF)
        eku = "critical,timeStamping" if critical_eku else "timeStamping"
        (directory / "tsa_req.cnf").write_text(_TSA_REQ_CNF.format(eku=eku))
        (directory / "ts.cnf").write_text(_TS_CNF.format(dir=directory, policy=self.POLICY, ess_alg=ess_alg))
        (directory / "tsaserial").write_text("01\n")
        ec_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
        openssl("req", "-x509", *ec_key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
                "-config", "ca.cnf", cwd=directory)  # fmt: skip
        openssl("req", "-new", *ec_key, "-keyout", "tsa.key", "-out", "tsa.csr", "-config", "tsa_req.cnf",
                cwd=directory)  # fmt: skip
        openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "4096",
                "-days", "1825", "-extfile", "tsa_req.cnf", "-extensions", "tsa_ext", "-out", "tsa.pem",
                cwd=directory)  # fmt: skip
        self.root_pem = (directory / "ca.pem").read_bytes()
        self.cert_pem = (directory / "tsa.pem").read_bytes()
        self._lock = threading.Lock()
        self._count = 0

    def reply(self, request_der: bytes) -> bytes:
        """The DER TimeStampResp `openssl ts -reply` gives for a DER TimeStampReq."""
        with self._lock:
            self._count += 1
            query = self.directory / f"q{self._count}.tsq"
            response = self.directory / f"r{self._count}.tsr"
            query.write_bytes(request_der)
            openssl(
                "ts", "-reply", "-queryfile", query, "-config", "ts.cnf", "-out", response, cwd=self.directory
            )
            return response.read_bytes()
