"""Checking the signatures of a PDF offline (verifier/documents/pdfsig.py), the `verifier pdf` command and the
portal checker's signatures request.

PDFs are made with reportlab and signed here with pyHanko by a throw-away CA (tests/pki.py); the
time-stamped one by the local TSA, answered in-process.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ledger.anchoring.tsa import LocalTsa, create_local_tsa
from tests.pki import Issued, make_root, new_key
from verifier.documents.pdfsig import MAX_PDF_BYTES, PdfRefusedError, PdfReport, check_pdf
from verifier.errors import FormatError, SignatureError

ROOT = Path(__file__).resolve().parents[2]
SIGNED_AT = datetime(2030, 6, 1, tzinfo=UTC)
AT = datetime(2031, 1, 1, tzinfo=UTC)
CERT_UNTIL = datetime(2035, 1, 1, tzinfo=UTC)


def make_signer_cert(issuer: Issued, cn: str = "Alice Signer", until: datetime = CERT_UNTIL) -> Issued:
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key)


class Pki:
    def __init__(self) -> None:
        self.root = make_root()
        self.other_root = make_root("Somebody Else's Root")
        self.alice = make_signer_cert(self.root, "Alice Signer")
        self.bob = make_signer_cert(self.root, "Bob Signer")

    def signer(self, who: Issued) -> Any:
        from pyhanko.sign.signers import SimpleSigner
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        key_der = who.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        return SimpleSigner(
            signing_cert=asn1_x509.Certificate.load(who.der),
            signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
            cert_registry=SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(self.root.der)]))


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


class InProcessTsa:
    """A pyHanko TimeStamper answered by the local TSA in this process."""

    def __new__(cls, tsa: LocalTsa) -> Any:
        from pyhanko.sign.timestamps import TimeStamper

        class _Stamper(TimeStamper):  # type: ignore[misc]
            async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
                return tsp.TimeStampResp.load(tsa.respond(req.dump()))

        return _Stamper()


@pytest.fixture(scope="module")
def local_tsa(tmp_path_factory: pytest.TempPathFactory) -> LocalTsa:
    directory = tmp_path_factory.mktemp("tsa")
    create_local_tsa(directory, now=datetime(2029, 1, 1, tzinfo=UTC))
    return LocalTsa.load(directory, clock=lambda: SIGNED_AT)


def unsigned_pdf(text: str = "Contract 7: the parties agree.", pages: int = 1) -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out, invariant=True, pageCompression=0)
    for n in range(pages):
        c.drawString(72, 720, f"{text} (page {n + 1})")
        c.showPage()
    c.save()
    return out.getvalue()


def sign(pdf: bytes, signer: Any, field: str = "Signature1", timestamper: Any = None) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    meta = signers.PdfSignatureMetadata(field_name=field)
    pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=timestamper)
    out = io.BytesIO()
    pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False), output=out)
    return out.getvalue()


def add_content(pdf: bytes) -> bytes:
    """An incremental update that adds a page of new text (not a change a signature allows)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    stream = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 700 Td (Pay 1,000,000 to Mallory) Tj ET")
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 612, 792)]),
        generic.NameObject("/Contents"): w.add_object(stream),
    })
    w.insert_page(page)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def signed(pki: Pki) -> bytes:
    return sign(unsigned_pdf(), pki.signer(pki.alice))


@pytest.fixture(scope="module")
def twice(pki: Pki, signed: bytes) -> bytes:
    return sign(signed, pki.signer(pki.bob), field="Signature2")


def roots(pki: Pki) -> list[bytes]:
    return [pki.root.pem]


def test_an_intact_trusted_signature_is_verified(pki: Pki, signed: bytes) -> None:
    report = check_pdf(signed, roots=roots(pki), at=AT)
    assert report.ok and report.require_valid() is report
    (s,) = report.signatures
    assert s.ok and s.intact and s.trusted and not s.changed_after_signing, s
    assert s.signer == "Common Name: Alice Signer" and s.serial == 4242, s
    assert "Evidence Ledger Test Root CA" in s.issuer
    assert s.coverage == "entire_file" and s.modification_level == "none"
    assert s.timestamp_ok is None and s.tsa is None
    assert s.signing_time is not None
    # the signed revision is the whole file here: its hash is the file's
    assert s.revision_bytes == len(signed) and s.revision_sha256 == hashlib.sha256(signed).hexdigest()
    assert report.verdict().startswith("VERIFIED 1 signature")
    assert PdfReport.from_json(json.loads(json.dumps(report.to_json()))) == report


def test_a_signature_by_an_untrusted_root_is_intact_but_not_trusted(pki: Pki, signed: bytes) -> None:
    report = check_pdf(signed, roots=[pki.other_root.pem], at=AT)
    (s,) = report.signatures
    assert s.intact and not s.trusted and not s.ok
    assert "not trusted" in s.trust_detail
    assert "not trusted" in report.verdict()
    with pytest.raises(SignatureError, match="not trusted"):
        report.require_valid()


def test_content_added_after_signing_is_a_change(pki: Pki, signed: bytes) -> None:
    changed = add_content(signed)
    report = check_pdf(changed, roots=roots(pki), at=AT)
    (s,) = report.signatures
    assert s.intact and s.trusted, s  # the signed bytes are still what was signed
    assert s.changed_after_signing and not s.ok and not report.ok
    assert s.coverage == "entire_revision" and s.modification_level == "other"
    # the signed revision is the file before the update: a caller can find the registered version
    assert s.revision_bytes == len(signed) and s.revision_sha256 == hashlib.sha256(signed).hexdigest()
    assert "changed after signing" in report.verdict()


def test_a_changed_byte_in_the_signed_range_is_not_intact(pki: Pki, signed: bytes) -> None:
    at = signed.index(b"Contract 7")
    tampered = signed[:at] + b"Contract 9" + signed[at + 10:]
    report = check_pdf(tampered, roots=roots(pki), at=AT)
    (s,) = report.signatures
    assert not s.intact and not s.ok, s
    assert "not intact" in report.verdict()


def test_two_signatures_in_sequence_are_both_verified(pki: Pki, signed: bytes, twice: bytes) -> None:
    report = check_pdf(twice, roots=roots(pki), at=AT)
    first, second = report.signatures
    assert report.ok, report.lines()
    assert (first.field, second.field) == ("Signature1", "Signature2")
    assert "Alice" in first.signer and "Bob" in second.signer
    # the first is followed by a further signature only: allowed, not a change
    assert first.coverage == "entire_revision" and not first.changed_after_signing
    assert first.revision_sha256 == hashlib.sha256(signed).hexdigest()
    assert second.revision_sha256 == hashlib.sha256(twice).hexdigest() and second.revision > first.revision


def test_a_signature_checked_after_its_certificate_expired_is_not_trusted(pki: Pki, signed: bytes) -> None:
    report = check_pdf(signed, roots=roots(pki), at=CERT_UNTIL + timedelta(days=1))
    (s,) = report.signatures
    assert s.intact and not s.trusted and not report.ok
    assert CERT_UNTIL.year + 0 <= 2035 and "2035-01-02" in s.trust_detail, s.trust_detail
    assert check_pdf(signed, roots=roots(pki), at=CERT_UNTIL - timedelta(days=1)).ok


def test_a_time_stamped_signature_outlives_its_certificate_while_its_tsa_holds(pki: Pki, local_tsa: LocalTsa) -> None:
    """The time-stamp proves the signature existed at its genTime (2030), when the certificate (until 2035)
    was valid: judged in 2036 the signature holds, and says on what ground; judged once the TSA's own
    certificate (2029 + 10 years) has expired, nothing proves when it was made, and it fails."""
    pdf = sign(unsigned_pdf(), pki.signer(pki.alice), timestamper=InProcessTsa(local_tsa))
    tsa_root = [local_tsa.root_der]
    later = CERT_UNTIL + timedelta(days=365)
    report = check_pdf(pdf, roots=roots(pki), tsa_roots=tsa_root, at=later)
    (s,) = report.signatures
    assert report.ok and s.trusted and s.timestamp_ok, report.lines()
    assert s.trust_detail.startswith("chains to") and f"valid at its time-stamp {SIGNED_AT.isoformat()}" in \
        s.trust_detail and "not valid now" in s.trust_detail, s.trust_detail
    # before expiry the usual ground: valid at the moment of judgment
    assert f"valid at {AT.isoformat()}" in check_pdf(pdf, roots=roots(pki), tsa_roots=tsa_root, at=AT).signatures[0].trust_detail
    # the TSA's certificate expired too: the time-stamp proves nothing, and the signature is not trusted
    after_tsa = check_pdf(pdf, roots=roots(pki), tsa_roots=tsa_root, at=datetime(2039, 6, 1, tzinfo=UTC))
    assert not after_tsa.ok and after_tsa.signatures[0].timestamp_ok is False and not after_tsa.signatures[0].trusted
    # a TSA nobody configured proves nothing either
    assert not check_pdf(pdf, roots=roots(pki), tsa_roots=[pki.other_root.pem], at=later).signatures[0].trusted


def test_a_time_stamp_after_the_certificate_expired_saves_nothing(pki: Pki, local_tsa: LocalTsa) -> None:
    """Signed with a certificate that had expired before the time-stamp (2030): not trusted at any time after."""
    stale = make_signer_cert(pki.root, "Stale Signer", until=datetime(2030, 1, 1, tzinfo=UTC))
    pdf = sign(unsigned_pdf(), pki.signer(stale), timestamper=InProcessTsa(local_tsa))
    for at in (AT, CERT_UNTIL + timedelta(days=1)):
        (s,) = check_pdf(pdf, roots=roots(pki), tsa_roots=[local_tsa.root_der], at=at).signatures
        assert s.intact and s.timestamp_ok and not s.trusted and not s.ok, s.trust_detail


def test_a_time_stamped_signature_reports_the_tsa_and_its_time(pki: Pki, local_tsa: LocalTsa) -> None:
    pdf = sign(unsigned_pdf(), pki.signer(pki.alice), timestamper=InProcessTsa(local_tsa))
    tsa_root = local_tsa.root_der
    report = check_pdf(pdf, roots=roots(pki), tsa_roots=[tsa_root], at=AT)
    (s,) = report.signatures
    assert report.ok, report.lines()
    assert s.timestamp_ok and s.tsa_time == SIGNED_AT and s.tsa is not None and "Local TSA" in s.tsa
    # a TSA nobody configured: the signature is no longer verified
    other = check_pdf(pdf, roots=roots(pki), tsa_roots=[pki.other_root.pem], at=AT)
    assert other.signatures[0].timestamp_ok is False and not other.ok
    assert "time-stamp" in other.verdict()


def test_an_unsigned_pdf_has_no_signatures_and_is_not_verified(pki: Pki) -> None:
    report = check_pdf(unsigned_pdf(), roots=roots(pki), at=AT)
    assert report.signatures == () and not report.ok
    assert report.verdict() == "NOT VERIFIED: the PDF has no signatures"
    with pytest.raises(SignatureError) as info:
        report.require_valid()
    assert info.value.code == "unsigned"


def encrypted_pdf() -> bytes:
    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out, encrypt=StandardEncryption("user", "owner"))
    c.drawString(72, 720, "secret")
    c.showPage()
    c.save()
    return out.getvalue()


@pytest.mark.parametrize(("kind", "code", "says"), [
    ("not a PDF", "not_pdf", "not a PDF"),
    ("encrypted", "pdf_encrypted", "encrypted"),
    ("truncated", "pdf_damaged", "damaged"),
    ("too large", "pdf_too_large", f"at most {MAX_PDF_BYTES} bytes"),
])
def test_files_that_cannot_be_checked_are_refused(pki: Pki, signed: bytes, kind: str, code: str, says: str) -> None:
    data = {
        "not a PDF": b"PK\x03\x04 this is a zip, not a PDF" * 10,
        "encrypted": encrypted_pdf(),
        "truncated": signed[: len(signed) // 3],
        "too large": signed + b"\0" * (MAX_PDF_BYTES - len(signed) + 1),
    }[kind]
    with pytest.raises(PdfRefusedError) as info:
        check_pdf(data, roots=roots(pki), at=AT)
    assert isinstance(info.value, FormatError)
    assert info.value.code == code and says in str(info.value), str(info.value)


# --- the `verifier pdf` command ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(pki: Pki, signed: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pdfs")
    out = {"signed": signed, "changed": add_content(signed), "unsigned": unsigned_pdf(),
           "zip": b"PK\x03\x04 not a pdf", "root.pem": pki.root.pem}
    for name, data in out.items():
        (d / name).write_bytes(data)
    return {name: d / name for name in out}


def verifier(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".venv/bin/verifier"), "pdf", *map(str, args)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_cli_prints_the_checklist_and_exits_0_only_when_verified(files: dict[str, Path]) -> None:
    root, at = files["root.pem"], "2031-01-01T00:00:00Z"
    r = verifier(files["signed"], "--root", root, "--at", at)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(1) ok   integrity" in r.stdout and "(2) ok   trust" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("VERIFIED 1 signature")
    r = verifier(files["changed"], "--root", root, "--at", at)
    assert r.returncode == 1 and "changed after signing" in r.stdout.splitlines()[-1], r.stdout
    assert r.stderr == "", r.stderr  # pyHanko's own logging of its analysis stays out of the way
    r = verifier(files["signed"], "--root", files["zip"], "--at", at)
    assert r.returncode == 2 and "a root given is not a certificate" in r.stderr, r.stderr
    r = verifier(files["unsigned"], "--root", root, "--at", at)
    assert r.returncode == 1 and "no signatures" in r.stdout, r.stdout
    r = verifier(files["zip"], "--root", root, "--at", at)
    assert r.returncode == 1 and "not a PDF" in r.stdout, r.stdout + r.stderr
    r = verifier(files["signed"], "--root", root)  # the moment of judgment is the caller's to give
    assert r.returncode == 2 and "--at" in r.stderr, r.stderr
    r = verifier(files["signed"], "--root", root, "--at", "2036-01-01T00:00:00Z")
    assert r.returncode == 1 and "not trusted" in r.stdout


def test_the_cli_json_is_the_report(files: dict[str, Path], pki: Pki) -> None:
    r = verifier(files["changed"], "--root", files["root.pem"], "--at", "2031-01-01T00:00:00Z", "--json")
    assert r.returncode == 1
    body = json.loads(r.stdout)
    assert body == check_pdf(files["changed"].read_bytes(), roots=roots(pki), at=AT).to_json()
    assert body["ok"] is False and body["signatures"][0]["changed_after_signing"] is True


# --- the portal's checker process -------------------------------------------------------------------


@pytest.fixture
async def checker() -> Any:
    from portal.pdfcheck import PdfChecker

    c = PdfChecker()
    yield c
    await c.close()


async def test_the_checker_answers_a_signatures_request(checker: Any, files: dict[str, Path], pki: Pki) -> None:
    report = await checker.signatures(files["signed"], [pki.root.pem], AT)
    assert report == check_pdf(files["signed"].read_bytes(), roots=roots(pki), at=AT) and report.ok
    await checker.check(files["signed"])  # the first kind of request still works beside it
    report = await checker.signatures(files["changed"], [pki.root.pem], AT)
    assert not report.ok and report.signatures[0].changed_after_signing


async def test_the_checker_refuses_what_check_pdf_refuses(checker: Any, files: dict[str, Path], pki: Pki) -> None:
    from ledger.errors import RefusedError

    with pytest.raises(RefusedError) as info:
        await checker.signatures(files["zip"], [pki.root.pem], AT)
    assert info.value.code == "not_pdf" and info.value.status == 422 and "not a PDF" in str(info.value)


async def test_a_file_that_takes_too_long_is_refused(files: dict[str, Path], pki: Pki, twice: bytes,
                                                     tmp_path: Path) -> None:
    """A check that keeps the checker past its time limit is a refusal of the file; the checker is started
    again for the next request."""
    from ledger.errors import RefusedError
    from portal.pdfcheck import PdfChecker

    path = tmp_path / "twice.pdf"
    path.write_bytes(twice)
    checker = PdfChecker(timeout_s=30.0)
    try:
        assert (await checker.signatures(files["signed"], [pki.root.pem], AT)).ok  # started, modules loaded
        first = checker._proc
        checker.timeout_s = 0.001  # far less than validating two signatures takes
        with pytest.raises(RefusedError) as info:
            await checker.signatures(path, [pki.root.pem], AT)
        assert info.value.code == "not_pdf" and info.value.status == 422
        assert "could not be checked within 0.001 s" in str(info.value)
        assert first is not None and first.returncode is not None  # the busy checker was killed
        checker.timeout_s = 30.0
        assert (await checker.signatures(path, [pki.root.pem], AT)).ok
    finally:
        await checker.close()


def test_reports_only_come_from_check_pdf_form() -> None:
    with pytest.raises(FormatError):
        PdfReport.from_json({"size": 1, "sha256": "x", "signatures": [{"field": "a"}]})
