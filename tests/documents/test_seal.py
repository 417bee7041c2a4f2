"""PAdES e-seals (ledger/documents/seal.py, sealca.py, sealstamp.py), checked by two validators.

pyHanko's `validate_pdf_signature` (trusting the seal CA's and the local TSA's roots, fetching nothing)
and Debian's `pdfsig` (poppler, with an NSS database trusting the seal root) must both accept each seal,
both refuse one changed byte, and both still accept a seal after a later incremental update. B-LT seals
must validate with revocation checking on ("hard-fail") from the data embedded in the PDF alone; a
B-T seal under the same check must not. A seal is also made through PKCS#11 with a SoftHSM2 token whose
key was generated inside it, and the drawn seal is rendered to find its red pixels.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_public_key,
    pkcs12,
)
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.status import PdfSignatureStatus
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from ledger.anchoring.tsa import LocalTsa, create_local_tsa
from ledger.documents.seal import LocalTsaTimeStamper, Sealer, ValidationData, seal_pdf
from ledger.documents.sealca import (
    CRL_FILE,
    ROOT_ORGANISATION,
    LocalSeal,
    certify_seal_key,
    create_seal_ca,
    issue_crl,
    load_seal,
    revoke,
)
from ledger.documents.sealstamp import SealAppearance, png_bytes
from ledger.errors import RefusedError, StorageError

ORGANISATION = "某某科技有限公司"
CRL_BASE = "https://seal.example.test/ca/"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class Pki:
    directory: Path
    tsa: LocalTsa
    seal: LocalSeal
    data: ValidationData
    nssdir: Path

    @property
    def timestamper(self) -> LocalTsaTimeStamper:
        return LocalTsaTimeStamper(self.tsa)


def make_pdf(pages: int = 3) -> bytes:
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4, invariant=True)
    c.setTitle("Evidence Ledger seal test")
    for n in range(1, pages + 1):
        c.drawString(72, 770, f"Contract page {n} of {pages}")
        c.showPage()
    c.save()
    return out.getvalue()


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed; these tests need it (apt-get install poppler-utils / softhsm2)"
        )
    return path


# Makes an NSS database (the store pdfsig reads) trusting one root, with libnss3 itself, for when
# libnss3-tools' certutil is not installed; run in a child so this process never initialises NSS.
_NSS_IMPORT = r"""
import ctypes, sys
nss, smime = ctypes.CDLL("libnss3.so"), ctypes.CDLL("libsmime3.so")
vp = ctypes.c_void_p
nss.NSS_Initialize.argtypes = [ctypes.c_char_p] * 4 + [ctypes.c_uint32]
assert nss.NSS_Initialize(b"sql:" + sys.argv[1].encode(), b"", b"", b"secmod.db", 0) == 0
nss.PK11_GetInternalKeySlot.restype = vp
slot = vp(nss.PK11_GetInternalKeySlot())
if nss.PK11_NeedUserInit(slot):
    nss.PK11_InitPin.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
    assert nss.PK11_InitPin(slot, None, b"") == 0
der = open(sys.argv[2], "rb").read()
smime.CERT_DecodeCertFromPackage.restype = vp
smime.CERT_DecodeCertFromPackage.argtypes = [ctypes.c_char_p, ctypes.c_int]
cert = vp(smime.CERT_DecodeCertFromPackage(der, len(der)))
assert cert
nss.PK11_ImportCert.argtypes = [vp, vp, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
assert nss.PK11_ImportCert(slot, cert, 0, b"seal-root", 0) == 0
trust = (ctypes.c_uint * 3)()
assert nss.CERT_DecodeTrustString(trust, b"CT,C,C") == 0
nss.CERT_GetDefaultCertDB.restype = vp
nss.CERT_ChangeCertTrust.argtypes = [vp, vp, vp]
assert nss.CERT_ChangeCertTrust(vp(nss.CERT_GetDefaultCertDB()), cert, trust) == 0
nss.CERT_DestroyCertificate.argtypes = [vp]
nss.CERT_DestroyCertificate(cert)
nss.PK11_FreeSlot.argtypes = [vp]
nss.PK11_FreeSlot(slot)
assert nss.NSS_Shutdown() == 0
"""


def make_nssdb(directory: Path, root: x509.Certificate) -> Path:
    directory.mkdir()
    root_file = directory.parent / "nss-root.der"
    root_file.write_bytes(root.public_bytes(Encoding.DER))
    certutil = shutil.which("certutil")
    if certutil:
        subprocess.run([certutil, "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
        subprocess.run(
            [certutil, "-A", "-d", f"sql:{directory}", "-n", "seal-root", "-t", "CT,C,C", "-i", root_file],
            check=True,
        )
    else:
        subprocess.run([sys.executable, "-c", _NSS_IMPORT, str(directory), str(root_file)], check=True)
    return directory


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("seal-pki")
    now = datetime.now(UTC)
    create_local_tsa(directory / "tsa", now=now)
    tsa = LocalTsa.load(directory / "tsa")
    seal = create_seal_ca(directory / "ca", organisation=ORGANISATION, now=now, crl_base_url=CRL_BASE)
    nssdir = make_nssdb(directory / "nss", seal.root)
    return Pki(directory, tsa, seal, ValidationData.for_local(seal, tsa.root_der), nssdir)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return make_pdf(3)


@pytest.fixture(scope="module")
def sealed_bt(pki: Pki, pdf: bytes) -> bytes:
    return seal_pdf(pdf, Sealer.from_local_seal(pki.seal), timestamper=pki.timestamper, level="B-T")


@pytest.fixture(scope="module")
def sealed_blt(pki: Pki, pdf: bytes) -> bytes:
    return seal_pdf(
        pdf,
        Sealer.from_local_seal(pki.seal),
        timestamper=pki.timestamper,
        level="B-LT",
        validation_data=pki.data,
    )


def pyhanko_status(
    pdf: bytes, data: ValidationData, *, index: int = 0, mode: str = "soft-fail"
) -> PdfSignatureStatus:
    """pyHanko's verdict on signature `index`, trusting `data` alone."""
    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[index]
    return validate_pdf_signature(signature, data.context(revocation_mode=mode))


def embedded_only_status(pdf: bytes, roots: tuple[bytes, ...]) -> PdfSignatureStatus:
    """pyHanko's verdict with revocation checking on ("hard-fail") from the PDF's DSS and `roots` alone."""
    reader = PdfFileReader(io.BytesIO(pdf))
    settings = {
        "trust_roots": [asn1_x509.Certificate.load(r) for r in roots],
        "allow_fetching": False,
        "revocation_mode": "hard-fail",
    }
    dss = DocumentSecurityStore.read_dss(reader)
    return validate_pdf_signature(reader.embedded_signatures[0], dss.as_validation_context(settings))


def pdfsig(pki: Pki, pdf: bytes, name: str) -> str:
    path = pki.directory / name
    path.write_bytes(pdf)
    result = subprocess.run(
        [tool("pdfsig"), "-nssdir", str(pki.nssdir), str(path)], capture_output=True, text=True, check=False
    )
    return result.stdout + result.stderr


def assert_pyhanko_valid(status: PdfSignatureStatus) -> None:
    assert status.intact and status.valid, status.summary()
    assert status.trusted, status.summary()
    ts = status.timestamp_validity
    assert ts is not None and ts.intact and ts.valid and ts.trusted, status.summary()
    assert status.bottom_line, status.pretty_print_details()


def assert_pdfsig_valid(output: str, signatures: int = 1) -> None:
    assert output.count("Signature Validation: Signature is Valid.") == signatures, output
    assert output.count("Certificate Validation: Certificate is Trusted.") == signatures, output
    assert "Signature Type: ETSI.CAdES.detached" in output, output


# --- the seal CA ---------------------------------------------------------------------------------


def test_seal_ca_files_names_and_key_usage(pki: Pki) -> None:
    ca = pki.seal.directory
    for key in ("seal-root.key", "seal.key"):
        assert stat.S_IMODE(os.stat(ca / key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ca).st_mode) == 0o700
    root, cert = pki.seal.root, pki.seal.cert
    assert ROOT_ORGANISATION in root.subject.rfc4514_string() and "not accredited" in ROOT_ORGANISATION
    assert pki.seal.organisation == ORGANISATION
    assert cert.issuer == root.subject
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_cert_sign
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in dp[0].full_name or []] == [CRL_BASE + CRL_FILE]


def test_crl_is_signed_by_the_root_and_numbered(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    seal = create_seal_ca(tmp_path / "ca", organisation="Example Trading Co., Ltd.", now=now)
    first = seal.crl
    assert first.is_signature_valid(seal.root.public_key())
    assert first.next_update_utc is not None and first.next_update_utc > now
    second = issue_crl(tmp_path / "ca", now + timedelta(days=1))
    number = lambda crl: crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(second) == number(first) + 1
    assert load_seal(tmp_path / "ca").crl.public_bytes(Encoding.DER) == second.public_bytes(Encoding.DER)
    revoked = revoke(tmp_path / "ca", seal.cert.serial_number, now=now)
    assert revoked.get_revoked_certificate_by_serial_number(seal.cert.serial_number) is not None
    with pytest.raises(RefusedError) as exc:
        revoke(tmp_path / "ca", seal.cert.serial_number, now=now)
    assert exc.value.code == "seal_already_revoked"


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "Acme\x00Ltd"])
def test_bad_organisation_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(RefusedError) as exc:
        create_seal_ca(tmp_path / "ca", organisation=name, now=datetime.now(UTC))
    assert exc.value.code == "seal_bad_name"
    assert not (tmp_path / "ca").exists()


def test_a_seal_ca_is_never_replaced(pki: Pki) -> None:
    before = (pki.seal.directory / "seal.key").read_bytes()
    with pytest.raises(RefusedError) as exc:
        create_seal_ca(pki.seal.directory, organisation="Other", now=datetime.now(UTC))
    assert exc.value.code == "seal_ca_exists"
    assert (pki.seal.directory / "seal.key").read_bytes() == before


# --- B-T and B-LT, by both validators ------------------------------------------------------------


def test_bt_seal_is_intact_trusted_and_timestamped(pki: Pki, pdf: bytes, sealed_bt: bytes) -> None:
    assert sealed_bt.startswith(pdf)  # an incremental update: the original bytes are untouched
    status = pyhanko_status(sealed_bt, pki.data)
    assert_pyhanko_valid(status)
    assert status.signing_cert.subject.native["organization_name"] == ORGANISATION
    signature = PdfFileReader(io.BytesIO(sealed_bt)).embedded_signatures[0]
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    ts = status.timestamp_validity
    assert ts is not None and abs(ts.timestamp - datetime.now(UTC)) < timedelta(minutes=5)
    # Trusting only the seal root, the time-stamp is not trusted: the TSA's root is really checked.
    seal_root_only = ValidationData(trust_roots=(pki.data.trust_roots[0],))
    assert not pyhanko_status(sealed_bt, seal_root_only).bottom_line


def test_bt_seal_is_valid_for_pdfsig(pki: Pki, sealed_bt: bytes) -> None:
    assert_pdfsig_valid(pdfsig(pki, sealed_bt, "bt.pdf"))


def test_blt_seal_validates_from_embedded_data_alone(pki: Pki, sealed_blt: bytes, sealed_bt: bytes) -> None:
    status = embedded_only_status(sealed_blt, pki.data.trust_roots)
    assert_pyhanko_valid(status)
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(sealed_blt)))
    assert len(list(dss.crls)) >= 1
    assert {c.dump() for c in dss.load_certs()} >= {
        pki.seal.cert.public_bytes(Encoding.DER),
        pki.tsa.cert_der,
    }
    # The same check on the B-T seal (no DSS, no CRL given) fails: revocation checking is really on.
    with pytest.raises(Exception, match="DSS"):
        embedded_only_status(sealed_bt, pki.data.trust_roots)
    no_crl = ValidationData(trust_roots=pki.data.trust_roots)
    assert not pyhanko_status(sealed_bt, no_crl, mode="hard-fail").bottom_line


def test_blt_seal_is_valid_for_pdfsig(pki: Pki, sealed_blt: bytes) -> None:
    assert_pdfsig_valid(pdfsig(pki, sealed_blt, "blt.pdf"))


def test_a_revoked_seal_fails_with_the_new_crl(pki: Pki, pdf: bytes, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    seal = create_seal_ca(tmp_path / "ca", organisation="Example Trading Co., Ltd.", now=now)
    data = ValidationData.for_local(seal, pki.tsa.root_der)
    sealed = seal_pdf(
        pdf, Sealer.from_local_seal(seal), timestamper=pki.timestamper, level="B-LT", validation_data=data
    )
    assert pyhanko_status(sealed, data, mode="hard-fail").bottom_line
    crl = revoke(tmp_path / "ca", seal.cert.serial_number, now=now)
    revoked = ValidationData(trust_roots=data.trust_roots, crls=(crl.public_bytes(Encoding.DER),))
    status = pyhanko_status(sealed, revoked, mode="hard-fail")
    assert not status.bottom_line and status.revoked, status.summary()
    with pytest.raises(RefusedError) as exc:
        seal_pdf(
            pdf,
            Sealer.from_local_seal(seal),
            timestamper=pki.timestamper,
            level="B-LT",
            validation_data=revoked,
        )
    assert exc.value.code == "seal_refused"


def signed_range_offset(pdf: bytes, needle: bytes) -> int:
    offset = pdf.index(needle)
    byte_range = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0].sig_object["/ByteRange"]
    assert byte_range[0] <= offset < byte_range[0] + byte_range[1]
    return offset


@pytest.mark.parametrize("level", ["B-T", "B-LT"])
def test_one_changed_byte_fails_both_validators(
    pki: Pki, sealed_bt: bytes, sealed_blt: bytes, level: str
) -> None:
    sealed = sealed_bt if level == "B-T" else sealed_blt
    offset = signed_range_offset(sealed, b"Evidence Ledger seal test")  # the document's /Title
    tampered = bytearray(sealed)
    tampered[offset] ^= 0x20  # "E" becomes "e": still a well-formed PDF
    tampered_pdf = bytes(tampered)
    status = pyhanko_status(tampered_pdf, pki.data)
    assert not status.intact and not status.bottom_line
    output = pdfsig(pki, tampered_pdf, f"tampered-{level}.pdf")
    assert "Signature is Valid." not in output, output
    assert "Digest Mismatch" in output or "Signature is Invalid" in output, output


def add_note(pdf: bytes) -> bytes:
    """An incremental update adding a sticky-note annotation to page 1, written by pyHanko."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    note = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Text"),
            generic.NameObject("/Rect"): generic.ArrayObject(
                [generic.FloatObject(v) for v in (72, 600, 96, 624)]
            ),
            generic.NameObject("/Contents"): generic.TextStringObject("Received, checked against the ledger"),
        }
    )
    annots = page.get("/Annots")
    if annots is None:
        page[generic.NameObject("/Annots")] = generic.ArrayObject([writer.add_object(note)])
    else:
        annots.get_object().append(writer.add_object(note))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdfsig_sections(output: str) -> list[str]:
    """pdfsig's report, one section per signature."""
    return re.split(r"^Signature #\d+:$", output, flags=re.MULTILINE)[1:]


def test_document_timestamp_and_metadata_update_keep_the_seal_valid(pki: Pki, sealed_blt: bytes) -> None:
    # pyHanko writes both updates, and its difference analysis explains both.
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed_blt))
    writer.set_info(
        generic.DictionaryObject({generic.NameObject("/Title"): generic.TextStringObject("Archived")})
    )
    out = io.BytesIO()
    writer.write(out)
    timestamped = (
        signers.PdfTimeStamper(pki.timestamper)
        .timestamp_pdf(IncrementalPdfFileWriter(out), "sha256", pki.data.context(), in_place=False)
        .getvalue()
    )
    assert timestamped.startswith(sealed_blt)
    status = pyhanko_status(timestamped, pki.data, mode="hard-fail")
    assert_pyhanko_valid(status)
    assert status.docmdp_ok and status.coverage is not None and status.coverage.name == "ENTIRE_REVISION"
    seal_section, ts_section = pdfsig_sections(pdfsig(pki, timestamped, "timestamped.pdf"))
    assert_pdfsig_valid(seal_section)
    # pdfsig reads a document time-stamp but does not validate one ("Unable to validate this type").
    assert "Common Name: Evidence Ledger Local TSA" in ts_section, ts_section


def test_annotation_added_after_sealing_keeps_the_seal_valid(pki: Pki, sealed_blt: bytes) -> None:
    updated = add_note(sealed_blt)
    assert updated.startswith(sealed_blt) and len(updated) > len(sealed_blt)
    status = pyhanko_status(updated, pki.data, mode="hard-fail")
    # The sealed revision is intact, valid, trusted and time-stamped. pyHanko's difference analysis
    # does not explain annotation changes (it whitelists form filling, signatures, DSS and metadata
    # only), so it does not vouch for the new revision: its bottom line is not asked here.
    assert status.intact and status.valid and status.trusted, status.summary()
    ts = status.timestamp_validity
    assert ts is not None and ts.intact and ts.valid and ts.trusted
    assert status.coverage is not None and status.coverage.name == "ENTIRE_REVISION"
    output = pdfsig(pki, updated, "noted.pdf")
    assert_pdfsig_valid(output)
    assert "Not total document signed" in output


def test_a_second_organisations_seal_keeps_the_first_valid(
    pki: Pki, sealed_bt: bytes, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certify_seal_key(
        pki.seal.directory, key.public_key(), organisation="Example Trading Co., Ltd.", now=datetime.now(UTC)
    )
    (tmp_path / "second.key").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    (tmp_path / "second.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    second = Sealer.from_pem(tmp_path / "second.key", tmp_path / "second.pem", chain=[pki.seal.root_path])
    assert second.organisation == "Example Trading Co., Ltd."
    twice = seal_pdf(sealed_bt, second, timestamper=pki.timestamper, appearance=SealAppearance(page=0))
    reader = PdfFileReader(io.BytesIO(twice))
    assert [s.field_name for s in reader.embedded_signatures] == ["Seal", "Seal2"]
    for index in (0, 1):
        assert_pyhanko_valid(pyhanko_status(twice, pki.data, index=index))
    assert_pdfsig_valid(pdfsig(pki, twice, "twice.pdf"), signatures=2)


# --- other signers: PKCS#12 and PKCS#11 ----------------------------------------------------------


def test_pkcs12_seal(pki: Pki, pdf: bytes, tmp_path: Path) -> None:
    p12 = pkcs12.serialize_key_and_certificates(
        b"seal", pki.seal.key, pki.seal.cert, [pki.seal.root], BestAvailableEncryption(b"open sesame")
    )
    (tmp_path / "seal.p12").write_bytes(p12)
    sealer = Sealer.from_pkcs12(tmp_path / "seal.p12", passphrase=b"open sesame")
    assert sealer.organisation == ORGANISATION
    sealed = seal_pdf(pdf, sealer, timestamper=pki.timestamper, level="B-LT", validation_data=pki.data)
    assert_pyhanko_valid(embedded_only_status(sealed, pki.data.trust_roots))
    with pytest.raises(RefusedError) as exc:
        Sealer.from_pkcs12(tmp_path / "seal.p12", passphrase=b"wrong")
    assert exc.value.code == "seal_bad_key"


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SoftHSM2 token "seal" (user PIN 12345678) in this test's folder."""
    util = tool("softhsm2-util")
    if not Path(SOFTHSM_MODULE).exists():
        pytest.fail(f"{SOFTHSM_MODULE} is missing; apt-get install softhsm2")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [util, "--init-token", "--free", "--label", "seal", "--so-pin", "87654321", "--pin", "12345678"],
        check=True,
        capture_output=True,
    )
    yield conf


def test_pkcs11_seal_key_never_leaves_the_token(pki: Pki, pdf: bytes, softhsm: Path) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
    from pyhanko.sign.pkcs11 import TokenCriteria, open_pkcs11_session

    # Provisioning: the key pair is generated inside the token; only the public key comes out.
    with pkcs11.lib(SOFTHSM_MODULE).get_token(token_label="seal").open(rw=True, user_pin="12345678") as rw:
        params = rw.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
        )
        public, private = params.generate_keypair(
            store=True, label="org-seal", mechanism=Mechanism.EC_KEY_PAIR_GEN
        )
        assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
        public_key = load_der_public_key(encode_ec_public_key(public))
    session = open_pkcs11_session(
        SOFTHSM_MODULE, token_criteria=TokenCriteria(label="seal"), user_pin="12345678"
    )
    try:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        cert = certify_seal_key(
            pki.seal.directory, public_key, organisation=ORGANISATION, now=datetime.now(UTC)
        )
        sealer = Sealer.from_pkcs11(session, cert=cert, key_label="org-seal", chain=[pki.seal.root])
        sealed = seal_pdf(pdf, sealer, timestamper=pki.timestamper, level="B-LT", validation_data=pki.data)
        assert list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))  # still in the token
    finally:
        session.close()
    status = embedded_only_status(sealed, pki.data.trust_roots)
    assert_pyhanko_valid(status)
    assert status.signing_cert.dump() == cert.public_bytes(Encoding.DER)
    assert_pdfsig_valid(pdfsig(pki, sealed, "pkcs11.pdf"))


# --- the appearance ------------------------------------------------------------------------------


def render(pdf: bytes, page: int) -> Image.Image:
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        document.init_forms()  # draw the signature field's appearance too
        bitmap = document[page].render(scale=1, may_draw_forms=True)  # 1 pixel per point
        return bitmap.to_pil().convert("RGB")
    finally:
        document.close()


def colour_fraction(image: Image.Image, box: tuple[int, int, int, int], test: object) -> float:
    """The fraction of pixels in `box` (x1, y1, x2, y2 in PDF points, origin bottom left) passing `test`."""
    x1, y1, x2, y2 = box
    crop = image.crop((x1, image.height - y2, x2, image.height - y1))
    pixels = [crop.getpixel((x, y)) for y in range(crop.height) for x in range(crop.width)]
    return sum(1 for p in pixels if test(p)) / len(pixels)  # type: ignore[operator]


def is_red(p: tuple[int, int, int]) -> bool:
    return p[0] > 150 and p[1] < 90 and p[2] < 90


def is_blue(p: tuple[int, int, int]) -> bool:
    return p[2] > 150 and p[0] < 90 and p[1] < 90


SEAL_BOX = (439, 36, 559, 156)  # the default: 120 points, 36 from the right and bottom of an A4 page


def test_drawn_seal_is_red_on_the_last_page(sealed_bt: bytes) -> None:
    last = render(sealed_bt, 2)
    assert colour_fraction(last, SEAL_BOX, is_red) > 0.10
    assert colour_fraction(last, (72, 300, 300, 500), is_red) == 0.0  # nowhere else
    assert colour_fraction(render(sealed_bt, 0), SEAL_BOX, is_red) == 0.0  # not on page 1


def test_latin_name_registered_image_and_invisible_seal(pki: Pki, pdf: bytes) -> None:
    sealer = Sealer.from_local_seal(pki.seal)
    latin = seal_pdf(
        pdf, sealer, timestamper=pki.timestamper, appearance=SealAppearance(text="Example Trading Co., Ltd.")
    )
    assert colour_fraction(render(latin, 2), SEAL_BOX, is_red) > 0.10
    blue = png_bytes(Image.new("RGBA", (64, 64), (0, 0, 200, 255)))
    box = (100, 400, 200, 500)
    registered = seal_pdf(
        pdf, sealer, timestamper=pki.timestamper, appearance=SealAppearance(page=1, box=box, image=blue)
    )
    assert colour_fraction(render(registered, 1), box, is_blue) > 0.9
    invisible = seal_pdf(pdf, sealer, timestamper=pki.timestamper, appearance=None)
    assert colour_fraction(render(invisible, 2), SEAL_BOX, is_red) == 0.0
    for sealed in (latin, registered, invisible):
        assert_pyhanko_valid(pyhanko_status(sealed, pki.data))


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "kwargs", "code"),
    [
        (b"not a pdf", {}, "seal_bad_pdf"),
        (b"%PDF-1.7\n garbage", {}, "seal_bad_pdf"),
        (None, {"appearance": SealAppearance(page=3)}, "seal_bad_page"),
        (None, {"appearance": SealAppearance(page=-4)}, "seal_bad_page"),
        (None, {"appearance": SealAppearance(box=(10, 10, 12, 12))}, "seal_bad_box"),
        (None, {"appearance": SealAppearance(image=b"\x89PNG broken")}, "seal_bad_image"),
        (None, {"level": "B-LTA"}, "seal_bad_level"),
        (None, {"level": "B-LT"}, "seal_validation_data_required"),
        (None, {"now": datetime(2099, 1, 1, tzinfo=UTC)}, "seal_certificate_unusable"),
    ],
)
def test_bad_input_is_refused(
    pki: Pki, pdf: bytes, document: bytes | None, kwargs: dict[str, object], code: str
) -> None:
    with pytest.raises(RefusedError) as exc:
        seal_pdf(document or pdf, Sealer.from_local_seal(pki.seal), timestamper=pki.timestamper, **kwargs)  # type: ignore[arg-type]
    assert exc.value.code == code
    assert exc.value.message


class _Rejection(core.Sequence):  # type: ignore[misc]
    # asn1crypto's TimeStampResp makes the token mandatory; a rejection has none (RFC 3161 §2.4.2).
    _fields = [("status", tsp.PKIStatusInfo)]


class RejectingTsa:
    """A TSA that answers every request with a rejection, as an overloaded one may."""

    def respond(self, request_der: bytes) -> bytes:
        status = {"status": "rejection", "status_string": ["system failure"]}
        return bytes(_Rejection({"status": status}).dump())


def test_no_time_stamp_means_no_seal(pki: Pki, pdf: bytes) -> None:
    with pytest.raises(StorageError) as exc:
        seal_pdf(pdf, Sealer.from_local_seal(pki.seal), timestamper=LocalTsaTimeStamper(RejectingTsa()))
    assert exc.value.code == "seal_timestamp_failed"
    assert "rejection (system failure)" in exc.value.message, exc.value.message
