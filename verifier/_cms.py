"""CMS and certificate building blocks for checking RFC 3161 time-stamp tokens.

What it does: parse certificates (DER or PEM), find a SignerInfo's certificate by its identifier
(RFC 5652 §5.3), check that the TSTInfo tsa name and the extended key usage fit that certificate
(RFC 3161 §2.4.2, §2.3), check the ESS signing-certificate attributes (RFC 2634 §5.4, RFC 5035 §3,
RFC 5816 §2.2.1), check the message-digest attribute and verify the signature over the signed
attributes (RFC 5652 §5.4) with RSA PKCS#1 v1.5, RSA-PSS, ECDSA or Ed25519.

What it does not do: decide what a time-stamp means, build chains or read clocks; that is
`verifier.timestamp`. Every check raises `CheckFailed` with a stable code instead of returning flags.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from asn1crypto import cms, core, pem, tsp, x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"

# Digests accepted for signatures and message imprints: SHA-1 and MD5 no longer bind anything.
STRONG_DIGESTS = ("sha256", "sha384", "sha512")
_SIGNATURE_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# ESSCertID hashes only name a certificate the signer already committed to, so SHA-1 is allowed
# there (RFC 5035 §3 keeps it for signing-certificate v1).
_ESS_DIGESTS = ("sha1", "sha224", "sha256", "sha384", "sha512")


@contextmanager
def quiet_pyhanko() -> Iterator[None]:
    """Around the first import of pyHanko's signers: they import cryptography's DSA classes, which
    cryptography deprecates, and the two-line warning would reach the standard error of every command
    and server process that loads them. Nothing here makes or checks DSA signatures: just that warning,
    from that module, is dropped (tests/cli/test_quiet_stderr.py)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning,
                                module=r"pyhanko\.sign\.signers\.pdf_cms")
        # imported here, whatever the caller imports: pyHanko also loads it lazily (its reader does, for
        # encrypted files), and a lazy import would warn outside this block
        import pyhanko.sign.signers.pdf_cms  # noqa: F401
        yield


class CheckFailed(Exception):
    """One check of a token failed; `code` is the stable name reported to callers."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 §2.4.2 TimeStampResp; unlike asn1crypto's, the token is OPTIONAL (absent on rejection)."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def is_present(value: Any) -> bool:
    """True if an asn1crypto field holds a value (absent OPTIONAL fields are `core.Void`)."""
    return value is not None and not isinstance(value, core.Void)


def digest(algorithm: str, data: bytes) -> bytes:
    """Hash `data` with the asn1crypto-named digest `algorithm` (e.g. "sha256")."""
    return hashlib.new(algorithm, data).digest()


def load_certificates(blobs: Iterable[bytes]) -> list[x509.Certificate]:
    """Parse certificates given as DER, or as PEM holding one or more certificates."""
    certs: list[x509.Certificate] = []
    for blob in blobs:
        if pem.detect(blob):
            ders = [der for _, _, der in pem.unarmor(blob, multiple=True)]
        else:
            ders = [blob]
        for der in ders:
            cert = x509.Certificate.load(der, strict=True)
            _ = cert.native  # force a full parse now: bad certificates fail here, not mid-check
            certs.append(cert)
    return certs


def token_certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    """The X.509 certificates carried in SignedData.certificates (other choices are ignored)."""
    field = signed_data["certificates"]
    if not is_present(field):
        return []
    return [choice.chosen for choice in field if choice.name == "certificate"]


def find_signer(signer_info: cms.SignerInfo, certs: Iterable[x509.Certificate]) -> x509.Certificate:
    """The certificate named by the SignerInfo's sid (RFC 5652 §5.3), never "the first certificate".

    Raises:
        CheckFailed: `signer_not_found` if no certificate (or more than one different one) matches.
    """
    sid = signer_info["sid"]
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"]
        serial = sid.chosen["serial_number"].native
        wanted = f"issuer {issuer.human_friendly!r}, serial {serial}"

        def matches(cert: x509.Certificate) -> bool:
            return bool(cert.issuer == issuer and cert.serial_number == serial)

    else:
        ski = sid.chosen.native
        wanted = f"subject key identifier {ski.hex()}"

        def matches(cert: x509.Certificate) -> bool:
            return bool(cert.key_identifier == ski)

    found = {cert.dump(): cert for cert in certs if matches(cert)}
    if not found:
        raise CheckFailed(
            "signer_not_found",
            f"no certificate with {wanted} in the token or the extra certificates; "
            "pass the TSA certificate in extra_certs if the token was requested without certReq",
        )
    if len(found) > 1:
        raise CheckFailed("signer_not_found", f"{len(found)} different certificates match {wanted}")
    return next(iter(found.values()))


def signed_attribute(signer_info: cms.SignerInfo, name: str) -> Any | None:
    """The single value of the signed attribute `name`, or None if absent.

    Raises:
        CheckFailed: `malformed` if the attribute occurs twice or has other than one value
            (RFC 5652 §5.3 and §11).
    """
    attrs = signer_info["signed_attrs"]
    if not is_present(attrs):
        return None
    values = [attr["values"] for attr in attrs if attr["type"].native == name]
    if not values:
        return None
    if len(values) > 1 or len(values[0]) != 1:
        raise CheckFailed("malformed", f"signed attribute {name} must occur once with one value")
    return values[0][0]


def _issuer_serial_matches(issuer_serial: Any, cert: x509.Certificate) -> bool:
    if not is_present(issuer_serial):
        return True
    if issuer_serial["serial_number"].native != cert.serial_number:
        return False
    return any(
        name.name == "directory_name" and name.chosen == cert.issuer for name in issuer_serial["issuer"]
    )


def check_ess_signing_certificate(signer_info: cms.SignerInfo, cert: x509.Certificate) -> str:
    """Check ESSCertID (RFC 2634 §5.4.1) and ESSCertIDv2 (RFC 5035 §4, RFC 5816 §2.2.1) against `cert`.

    The first ESSCertID of each attribute names the signing certificate; its hash is over the whole
    certificate DER, and issuerSerial, when present, must name the same issuer and serial.

    Returns:
        A one-line description of what matched.
    """
    checked = []
    for name, v2 in (("signing_certificate_v2", True), ("signing_certificate", False)):
        value = signed_attribute(signer_info, name)
        if value is None:
            continue
        ess_ids = value["certs"]
        if len(ess_ids) == 0:
            raise CheckFailed("ess_cert_mismatch", f"{name} attribute lists no certificate")
        first = ess_ids[0]
        algorithm = first["hash_algorithm"]["algorithm"].native if v2 else "sha1"
        if algorithm not in _ESS_DIGESTS:
            raise CheckFailed("bad_algorithm", f"{name} uses unsupported hash {algorithm}")
        if first["cert_hash"].native != digest(algorithm, cert.dump()):
            raise CheckFailed(
                "ess_cert_mismatch",
                f"{name} {algorithm} hash does not match the signer certificate "
                f"{cert.subject.human_friendly!r}; the token names a different certificate",
            )
        if not _issuer_serial_matches(first["issuer_serial"], cert):
            raise CheckFailed(
                "ess_cert_mismatch", f"{name} issuerSerial does not name the signer certificate"
            )
        checked.append(f"{'ESSCertIDv2' if v2 else 'ESSCertID'} ({algorithm})")
    if not checked:
        raise CheckFailed(
            "ess_cert_mismatch",
            "no signing-certificate or signing-certificate-v2 signed attribute (required by RFC 3161 §2.4.2)",
        )
    return " and ".join(checked) + " match the signer certificate"


def signed_attrs_der(signer_info: cms.SignerInfo) -> bytes:
    """The DER that was signed: the received signed attributes with tag [0] replaced by SET (RFC 5652 §5.4)."""
    encoded = cast(bytes, signer_info["signed_attrs"].dump())
    return b"\x31" + encoded[1:]


def _hash_for(name: str) -> hashes.HashAlgorithm:
    if name not in _SIGNATURE_DIGESTS:
        raise CheckFailed("bad_algorithm", f"signature digest {name} is not accepted")
    return _SIGNATURE_DIGESTS[name]()


def verify_signature(signer_info: cms.SignerInfo, cert: x509.Certificate, signed: bytes) -> str:
    """Verify the SignerInfo signature over `signed` with `cert`'s public key.

    Returns:
        The signature algorithm used, for the report.

    Raises:
        CheckFailed: `bad_signature` if it does not verify, `bad_algorithm` for unsupported or
            mismatched algorithms.
    """
    key = serialization.load_der_public_key(cert.public_key.dump())
    algorithm = signer_info["signature_algorithm"]
    signature = cast(bytes, signer_info["signature"].native)
    try:
        sig_name = algorithm.signature_algo
    except ValueError as exc:
        raise CheckFailed("bad_algorithm", f"unsupported signature algorithm: {exc}") from exc
    try:
        hash_name = algorithm.hash_algo
    except ValueError:  # rsaEncryption and Ed25519 do not name a hash; the SignerInfo does
        hash_name = signer_info["digest_algorithm"]["algorithm"].native
    try:
        if sig_name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), _hash_for(hash_name))
        elif sig_name == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            mgf = params["mask_gen_algorithm"]
            if mgf["algorithm"].native != "mgf1":
                raise CheckFailed("bad_algorithm", "RSA-PSS mask generation is not MGF1")
            pss = padding.PSS(
                mgf=padding.MGF1(_hash_for(mgf["parameters"]["algorithm"].native)),
                salt_length=params["salt_length"].native,
            )
            key.verify(signature, signed, pss, _hash_for(hash_name))
        elif sig_name == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(_hash_for(hash_name)))
        elif sig_name == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        else:
            raise CheckFailed(
                "bad_algorithm",
                f"signature algorithm {sig_name} does not fit the signer's {type(key).__name__}",
            )
    except InvalidSignature as exc:
        raise CheckFailed(
            "bad_signature", f"{sig_name} signature does not verify with the signer certificate's key"
        ) from exc
    return f"{sig_name} with {hash_name}" if sig_name != "ed25519" else "ed25519"


def check_tsa_name(tsa: str, cert: x509.Certificate) -> None:
    """The TSTInfo tsa field, as `general_name_text` gives it, MUST name the signer (RFC 3161 §2.4.2)."""
    names = [f"directory_name: {cert.subject.human_friendly}"]
    if cert.subject_alt_name_value is not None:
        names += [general_name_text(name) for name in cert.subject_alt_name_value]
    if tsa not in names:
        raise CheckFailed("tsa_name_mismatch", f"TSTInfo tsa {tsa!r} is not a name of the signer certificate")


def general_name_text(name: x509.GeneralName) -> str:
    """A GeneralName as "<kind>: <value>", for reports and for comparing names."""
    value = name.chosen.human_friendly if name.name == "directory_name" else name.native
    return f"{name.name}: {value}"


_TIME_STAMPING = "1.3.6.1.5.5.7.3.8"


def check_time_stamping_eku(cert: x509.Certificate) -> str:
    """Extended key usage timeStamping, critical and the only purpose; key usage fits (RFC 3161 §2.3)."""
    extensions = [
        ext for ext in cert["tbs_certificate"]["extensions"] if ext["extn_id"].native == "extended_key_usage"
    ]
    if not extensions:
        raise CheckFailed("eku_missing", "the signer certificate has no extended key usage (RFC 3161 §2.3)")
    eku = extensions[0]
    purposes = [purpose.dotted for purpose in eku["extn_value"].parsed]
    if _TIME_STAMPING not in purposes:
        raise CheckFailed("eku_missing", "the signer certificate's extended key usage lacks timeStamping")
    if not eku["critical"].native:
        raise CheckFailed(
            "eku_not_critical", "the timeStamping extended key usage is not marked critical (RFC 3161 §2.3)"
        )
    if len(extensions) > 1 or len(purposes) > 1:
        raise CheckFailed(
            "eku_not_exclusive", "timeStamping must be the only extended key usage (RFC 3161 §2.3)"
        )
    usage = cert.key_usage_value
    if usage is not None and not usage.native & {"digital_signature", "non_repudiation"}:
        raise CheckFailed("bad_key_usage", "key usage allows neither digitalSignature nor nonRepudiation")
    return "timeStamping, critical, sole purpose"
