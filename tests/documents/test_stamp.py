"""Printed copies: the QR code scans back to its URL (on screen, at 150 dpi, grey, after JPEG), the
original revision is untouched (a signature made before stamping stays valid), watermarks and void
marks are text in an embedded font, and bad PDFs are refused quickly with their code."""

from __future__ import annotations

import io
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2
import pytest
import zxingcpp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from PIL import Image
from reportlab.pdfgen.canvas import Canvas

from ledger.documents.stamp import StampLayout, VoidMark, Watermark, stamp_copy
from ledger.errors import RefusedError
from tests.pki import _name, make_root, new_key

URL = "https://ledger.example.com/v/7KQ2M9XH4TZ1B6C8D0EF#k=3f9a1c0b7e52d8a4&d=9c41e0b2a7d3f5e6"
CODE = "7KQ2M-9XH4T-Z1B6C-8D0EF"
PRINTED = "2026-03-14T09:26:53Z"
A4 = (595.28, 841.89)


def make_pdf(pages: int = 3, *, rotate: int = 0, crop: tuple[float, float, float, float] | None = None,
             size: tuple[float, float] = A4) -> bytes:
    out = io.BytesIO()
    c = Canvas(out, pagesize=size, invariant=1)
    for n in range(1, pages + 1):
        if rotate:
            c.setPageRotation(rotate)
        if crop:
            c.setCropBox(crop)
        c.setFont("Helvetica", 14)
        c.drawString(72, size[1] - 300, f"Contract page {n} of {pages}")
        c.showPage()
    c.save()
    return out.getvalue()


def stamp(pdf: bytes, **kw: object) -> bytes:
    args: dict[str, object] = {"qr_url": URL, "code_grouped": CODE, "domain": "ledger.example.com",
                               "copy_no": 2, "printed_at": PRINTED, "layout": StampLayout()}
    args.update(kw)
    return stamp_copy(pdf, **args)  # type: ignore[arg-type]


def render(pdf: bytes, page: int, dpi: int = 150) -> Image.Image:
    doc = pypdfium2.PdfDocument(pdf)
    try:
        return doc[page].render(scale=dpi / 72).to_pil().convert("RGB")
    finally:
        doc.close()


def qr_codes(img: Image.Image) -> list[zxingcpp.Result]:
    return [r for r in zxingcpp.read_barcodes(img) if r.format == zxingcpp.BarcodeFormat.QRCode]


def decoded(img: Image.Image) -> list[str]:
    return [r.text for r in qr_codes(img)]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)


def pdftotext(pdf: bytes, tmp_path: Path, *opts: str) -> str:
    f = tmp_path / "t.pdf"
    f.write_bytes(pdf)
    return run("pdftotext", *opts, f, "-").stdout


# --- the QR code -----------------------------------------------------------------------------------

def test_every_page_carries_a_qr_code_that_decodes_to_the_url_with_its_fragment() -> None:
    original = make_pdf(3)
    assert all(decoded(render(original, i)) == [] for i in range(3))
    stamped = stamp(original)
    for i in range(3):
        assert decoded(render(stamped, i, dpi=150)) == [URL]


def test_qr_code_survives_print_and_scan_grey_and_jpeg() -> None:
    stamped = stamp(make_pdf(1))
    grey = render(stamped, 0, dpi=150).convert("L")
    assert decoded(grey) == [URL]
    buf = io.BytesIO()
    grey.save(buf, "JPEG", quality=60)
    scanned = Image.open(io.BytesIO(buf.getvalue()))
    assert decoded(scanned) == [URL]


def test_qr_code_is_vector_not_an_image(tmp_path: Path) -> None:
    f = tmp_path / "s.pdf"
    f.write_bytes(stamp(make_pdf(1)))
    listing = run("pdfimages", "-list", f).stdout.splitlines()
    assert len(listing) == 2  # the header lines only: no image in the file


def _upright_corner(img: Image.Image) -> tuple[str, bool]:
    """Which quarter of the page image the code is in, and whether it reads upright."""
    (r,) = qr_codes(img)
    p = r.position
    cx = (p.top_left.x + p.bottom_right.x) / 2
    cy = (p.top_left.y + p.bottom_right.y) / 2
    quarter = ("top" if cy < img.height / 2 else "bottom") + "-" + ("left" if cx < img.width / 2 else "right")
    upright = p.top_left.x < p.top_right.x and abs(p.top_left.y - p.top_right.y) < 5
    return quarter, upright


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_rotated_pages_get_the_code_upright_in_the_chosen_corner(rotate: int) -> None:
    stamped = stamp(make_pdf(1, rotate=rotate), layout=StampLayout(corner="bottom-right"))
    doc = pypdfium2.PdfDocument(stamped)
    assert doc[0].get_rotation() == rotate
    doc.close()
    img = render(stamped, 0)
    assert decoded(img) == [URL]
    assert _upright_corner(img) == ("bottom-right", True)


@pytest.mark.parametrize("corner", ["top-left", "bottom-left", "top-right"])
def test_the_corner_is_honoured(corner: str) -> None:
    stamped = stamp(make_pdf(1, rotate=90), layout=StampLayout(corner=corner))  # type: ignore[arg-type]
    assert _upright_corner(render(stamped, 0)) == (corner, True)


def test_an_offset_cropbox_keeps_the_code_inside_the_visible_page() -> None:
    # the visible page is the middle of the sheet; a code placed by the MediaBox would be cut off
    stamped = stamp(make_pdf(1, crop=(100, 150, 500, 700)))
    img = render(stamped, 0)
    assert abs(img.width - 400 * 150 / 72) <= 1 and abs(img.height - 550 * 150 / 72) <= 1
    assert decoded(img) == [URL]
    assert _upright_corner(img) == ("bottom-right", True)


def test_x_and_y_place_the_code() -> None:
    stamped = stamp(make_pdf(1), layout=StampLayout(x=40, y=700))
    (r,) = qr_codes(render(stamped, 0, dpi=72 * 2))
    left, top = r.position.top_left.x / 2, r.position.top_left.y / 2  # in points from the top left
    assert 40 <= left <= 40 + 12  # the quiet zone is inside the 22 mm
    assert A4[1] - 700 - 22 * 72 / 25.4 <= top <= A4[1] - 700 - 22 * 72 / 25.4 + 12


def test_last_page_only() -> None:
    stamped = stamp(make_pdf(3), layout=StampLayout(pages="last"))
    assert [decoded(render(stamped, i)) for i in range(3)] == [[], [], [URL]]


def test_printed_lines_are_text(tmp_path: Path) -> None:
    text = pdftotext(stamp(make_pdf(1), copy_no=7), tmp_path)
    assert "ledger.example.com" in text
    assert CODE in text
    assert f"第 7 份 · 打印于 {PRINTED}" in text
    assert f"copy 7, printed {PRINTED}" in text


# --- the original revision -------------------------------------------------------------------------

def test_the_update_is_incremental_and_qpdf_accepts_it(tmp_path: Path) -> None:
    original = make_pdf(3)
    stamped = stamp(original, watermark=Watermark("样本 SAMPLE"), void=VoidMark("2026-03-01"))
    assert stamped.startswith(original) and len(stamped) > len(original)
    assert stamped.count(b"%%EOF") == original.count(b"%%EOF") + 1
    f = tmp_path / "s.pdf"
    f.write_bytes(stamped)
    check = run("qpdf", "--check", f)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No syntax or stream encoding errors" in check.stdout


def test_stamping_a_stamped_copy_is_again_incremental() -> None:
    once = stamp(make_pdf(2))
    twice = stamp(once, copy_no=3)
    assert twice.startswith(once)


def _signer_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = make_root()
    key = new_key()
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("Contract Signer")).issuer_name(root.cert.subject)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(root.key, hashes.SHA256()))
    paths = tmp_path / "root.pem", tmp_path / "signer.pem", tmp_path / "signer.key"
    paths[0].write_bytes(root.pem)
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_a_signature_made_before_stamping_stays_valid(tmp_path: Path) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    root_pem, cert_pem, key_pem = _signer_files(tmp_path)
    signer = signers.SimpleSigner.load(str(key_pem), str(cert_pem), ca_chain_files=(str(root_pem),))
    assert signer is not None
    signed = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(make_pdf(2))),
                              signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer).getvalue()
    stamped = stamp(signed, watermark=Watermark("副本 COPY"))
    assert stamped.startswith(signed)
    assert decoded(render(stamped, 0)) == [URL]

    vc = ValidationContext(trust_roots=[load_cert_from_pemder(str(root_pem))], allow_fetching=False)
    reader = PdfFileReader(io.BytesIO(stamped))
    (sig,) = reader.embedded_signatures
    status = validate_pdf_signature(sig, vc)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    # it covers revision 1 (the original and its signature) byte for byte; the stamp is revision 2
    assert (sig.signed_revision, reader.xrefs.total_revisions) == (1, 3)

    # a control: the same check sees a byte of the signed revision changed
    at = signed.index(b"ReportLab PDF Library")  # in the /Info dictionary: the file still reads
    tampered = stamped[:at] + b"X" + stamped[at + 1:]
    (bad,) = PdfFileReader(io.BytesIO(tampered)).embedded_signatures
    try:
        intact = validate_pdf_signature(bad, vc).intact
    except ValueError:  # pyHanko may also fail to read the changed revision at all
        intact = False
    assert not intact

    f = tmp_path / "stamped.pdf"
    f.write_bytes(stamped)
    out = run("pdfsig", "-nocert", f).stdout
    assert "Signature Validation: Signature is Valid." in out, out
    assert "Not total document signed" in out  # the stamp is outside the signature ...
    ranges = re.search(r"Signed Ranges: \[0 - (\d+)\], \[(\d+) - (\d+)\]", out)
    assert ranges and int(ranges[3]) == len(signed)  # ... which covers the signed revision to its end


# --- watermark and void mark -----------------------------------------------------------------------

def test_watermark_is_text_in_an_embedded_font(tmp_path: Path) -> None:
    stamped = stamp(make_pdf(2), watermark=Watermark("机密 CONFIDENTIAL", angle=0, tiled=False))
    assert "机密 CONFIDENTIAL" in pdftotext(stamped, tmp_path)
    f = tmp_path / "w.pdf"
    f.write_bytes(stamped)
    fonts = [line.split() for line in run("pdffonts", f).stdout.splitlines()[2:]]
    wqy = [row for row in fonts if "WenQuanYi" in row[0]]
    assert wqy and all(row[-5:-2] == ["yes", "yes", "yes"] for row in wqy)  # emb, sub, uni


def test_a_tiled_diagonal_watermark_is_text_on_every_page(tmp_path: Path) -> None:
    stamped = stamp(make_pdf(2), watermark=Watermark("机密 CONFIDENTIAL"))
    pages = pdftotext(stamped, tmp_path, "-raw").split("\f")
    for page in pages[:2]:  # diagonal text comes out a glyph a line: compare without white space
        assert "机密CONFIDENTIAL" in re.sub(r"\s+", "", page)


def _ink(img: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Share of the pixels in `box` that are not white."""
    region = img.crop(box).convert("L")
    return sum(1 for v in region.get_flattened_data() if v < 240) / (region.width * region.height)


def test_watermark_shows_on_the_rendered_page() -> None:
    original = make_pdf(1)
    stamped = stamp(original, watermark=Watermark("机密 CONFIDENTIAL", font_size=60, colour="#0000ff",
                                                  opacity=0.3, angle=0, tiled=False))
    img = render(stamped, 0, dpi=72)
    middle = (100, 390, 495, 450)  # the page's centre, where a single watermark goes
    assert _ink(render(original, 0, dpi=72), middle) == 0
    assert _ink(img, middle) > 0.05
    blue = [p for p in img.crop(middle).get_flattened_data() if p != (255, 255, 255)]
    assert all(p[2] >= p[0] for p in blue)  # blue ink, faded by the opacity


def test_void_mark_on_every_page(tmp_path: Path) -> None:
    original = make_pdf(3)
    stamped = stamp(original, void=VoidMark("2026-03-01"))
    pages = pdftotext(stamped, tmp_path, "-raw").split("\f")
    for page in pages[:3]:
        flat = re.sub(r"\s+", "", page)
        assert "作废/VOID" in flat and "2026-03-01" in flat
    for i in range(3):
        img = render(stamped, i, dpi=72)
        reds = [p for p in img.get_flattened_data() if p[0] > 200 and p[1] < 200 and p[2] < 200]
        assert len(reds) > 0.03 * img.width * img.height
        assert decoded(render(stamped, i)) == [URL]  # the code stays readable over the mark


# --- bad input -------------------------------------------------------------------------------------

def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of these objects (1 is the catalog), with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"


def deep_tree(levels: int) -> bytes:
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for n in range(2, levels + 2):
        objs.append(b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (n + 1))
    objs.append(PAGE)
    return raw_pdf(objs)


def wide_tree(pages: int, count: int | None = None) -> bytes:
    kids = b" ".join(b"%d 0 R" % (n + 3) for n in range(pages))
    node = b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % (pages if count is None else count)
    return raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", node,
                    *[PAGE] * pages])


def encrypted(tmp_path: Path) -> bytes:
    src, dst = tmp_path / "plain.pdf", tmp_path / "locked.pdf"
    src.write_bytes(make_pdf(1))
    assert run("qpdf", "--encrypt", "user", "owner", "256", "--", src, dst).returncode == 0
    return dst.read_bytes()


def test_a_plain_hand_made_pdf_is_stamped() -> None:
    # the control for the trees below: the same construction, of a sane size, is accepted
    assert decoded(render(stamp(deep_tree(3)), 0)) == [URL]
    assert decoded(render(stamp(wide_tree(2)), 1)) == [URL]


BAD = {
    "empty": (lambda p: b"", "not_pdf", 422),
    "text": (lambda p: b"Dear customer, the contract is attached.\n" * 20, "not_pdf", 422),
    "truncated": (lambda p: make_pdf(3)[: len(make_pdf(3)) // 2], "damaged_pdf", 422),
    "garbage": (lambda p: b"%PDF-1.7\n" + bytes(range(256)) * 40, "damaged_pdf", 422),
    "no pages": (lambda p: raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]),
                 "damaged_pdf", 422),
    "loop": (lambda p: raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"]),
             "damaged_pdf", 422),
    "encrypted": (encrypted, "encrypted_pdf", 422),
    "deeply nested": (lambda p: deep_tree(200), "pdf_too_complex", 422),
    "huge count": (lambda p: raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                                      b"<< /Type /Pages /Kids [3 0 R] /Count 1000000000 >>", PAGE]),
                   "pdf_too_complex", 422),
    "too many pages": (lambda p: wide_tree(5001, count=1), "pdf_too_complex", 422),  # its /Count lies
    "bad box": (lambda p: raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                                   b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 1e9 842] >>"]), "damaged_pdf", 422),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_quickly(case: str, tmp_path: Path) -> None:
    make, code, status = BAD[case]
    pdf = make(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(RefusedError) as e:
        stamp(pdf)
    assert time.monotonic() - t0 < 5
    assert (e.value.code, e.value.status) == (code, status), e.value.message


def test_an_oversized_pdf_is_refused_before_it_is_read() -> None:
    with pytest.raises(RefusedError) as e:
        stamp(make_pdf(1), max_bytes=1000)
    assert (e.value.code, e.value.status) == ("too_large", 413)
    assert "1000" in e.value.message


@pytest.mark.parametrize("kw", [
    {"printed_at": "2026-03-14 09:26"}, {"printed_at": "2026-03-14T09:26:53+08:00"}, {"copy_no": 0},
    {"qr_url": ""}, {"domain": "a\nb"}, {"code_grouped": "x" * 65},
])
def test_bad_arguments_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(RefusedError) as e:
        stamp(make_pdf(1), **kw)
    assert e.value.code == "bad_stamp" and e.value.status == 422


@pytest.mark.parametrize("make", [
    lambda: StampLayout(corner="middle"),  # type: ignore[arg-type]
    lambda: StampLayout(x=10),
    lambda: StampLayout(qr_mm=5),
    lambda: StampLayout(pages="first"),  # type: ignore[arg-type]
    lambda: Watermark(""),
    lambda: Watermark("x", colour="blue"),
    lambda: Watermark("x", opacity=0),
    lambda: VoidMark(""),
])
def test_bad_marks_are_refused(make: object) -> None:
    with pytest.raises(RefusedError) as e:
        make()  # type: ignore[operator]
    assert e.value.code == "bad_stamp" and e.value.status == 422
