"""Paper copies back: a print-ready copy made by the real API and `stamp_copy`, printed and scanned
(JPEG at quality 60, PNG, a scanner's PDF, at 150 dpi), is registered by the QR code on it as a scan
of that copy; scans without a readable code, of another envelope, damaged, empty or built to exhaust
memory are refused with their code, quickly, and leave nothing stored."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pypdfium2
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image
from reportlab.pdfgen.canvas import Canvas

from ledger.access.apikeys import create_key
from ledger.documents import scans
from ledger.documents.stamp import StampLayout, stamp_copy
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import demo_pdf
from ledger.errors import RefusedError
from portal.app import create_app
from tests.api.test_api_platform import auth, checked
from verifier.entry import Entry

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
PDF = demo_pdf("Scan test", "A contract printed, signed by hand and scanned back.")
SCANS = "/api/v1/envelopes/{ref}/scans"


@pytest.fixture
def keys(ledger: Ledger) -> dict[str, str]:
    return {"a": create_key(ledger.log, "tenant-a", ["append", "read"]),
            "b": create_key(ledger.log, "tenant-b", ["append", "read"])}


@pytest.fixture
async def client(aiohttp_client: Client, ledger: Ledger) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(ledger, anchor=False))


async def completed(client: TestClient[Any, Any], key: str, ref: str) -> None:
    """An envelope through the API: a PDF uploaded for public download, two parties who sign, completed."""
    r = await client.post("/api/v1/envelopes", json={"envelope": ref, "title": "Lease"}, headers=auth(key))
    assert r.status == 201, await r.text()
    r = await client.post(f"/api/v1/envelopes/{ref}/documents?document=main&name=lease.pdf&download=public",
                          data=PDF, headers=auth(key, **{"Content-Type": "application/pdf"}))
    assert r.status == 201, await r.text()
    events: list[dict[str, Any]] = [
        {"type": "party.added", "party": p, "role": "signer", "name": f"Name of {p}"} for p in ("lessor", "lessee")]
    events.append({"type": "envelope.sent"})
    for p in ("lessor", "lessee"):
        events += [{"type": "party.authenticated", "party": p, "method": "face"},
                   {"type": "party.signed", "party": p, "channel": "paper", "document": "main",
                    "signed_sha256": hashlib.sha256(p.encode()).hexdigest()}]
    events.append({"type": "envelope.completed"})
    r = await client.post(f"/api/v1/envelopes/{ref}/events", headers=auth(key), json=events)
    assert r.status == 201, await r.text()


async def printed(client: TestClient[Any, Any], key: str, ref: str) -> tuple[str, bytes]:
    """A new printed copy of the envelope's document: its code and its print-ready PDF."""
    r = await client.post(f"/api/v1/envelopes/{ref}/copies", headers=auth(key), json={"document": "main"})
    assert r.status == 201, await r.text()
    (ack,) = (await r.json())["acks"]
    pdf = stamp_copy(PDF, qr_url=ack["qr_url"], code_grouped=ack["code_grouped"], domain="ledger.example.com",
                     copy_no=1, printed_at=ack["time"], layout=StampLayout())
    return ack["code"], pdf


def page_image(pdf: bytes, dpi: int = 150) -> Image.Image:
    """The first page as the scanner sees the paper: grey, at `dpi`."""
    doc = pypdfium2.PdfDocument(pdf)
    try:
        return doc[0].render(scale=dpi / 72).to_pil().convert("L")
    finally:
        doc.close()


def scanned(pdf: bytes, kind: str) -> tuple[bytes, str]:
    """A scan of the printed `pdf`'s first page: JPEG (quality 60), PNG, or a scanner's PDF of the JPEG image."""
    img, out = page_image(pdf), io.BytesIO()
    if kind == "jpeg":
        img.save(out, "JPEG", quality=60)
    elif kind == "png":
        img.save(out, "PNG")
    else:
        img.save(out, "PDF", resolution=150)
    return out.getvalue(), {"jpeg": "image/jpeg", "png": "image/png", "pdf": "application/pdf"}[kind]


def stored_files(ledger: Ledger) -> set[str]:
    """Every file in the blob store, temporary uploads included."""
    root = ledger.blobs.root
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def bomb_png(side: int = 20000) -> bytes:
    """A PNG of `side` x `side` black-and-white pixels, a few kB: 50 MB once inflated, 400 M pixels decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" + b"\0" * (side // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# --- registered --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["jpeg", "png", "pdf"])
async def test_a_scan_is_registered_as_a_scan_of_the_copy_on_it(client: TestClient[Any, Any], ledger: Ledger,
                                                               keys: dict[str, str], kind: str) -> None:
    await completed(client, keys["a"], "S1")
    await printed(client, keys["a"], "S1")
    code, pdf = await printed(client, keys["a"], "S1")  # the second copy is the one signed and scanned
    scan, content_type = scanned(pdf, kind)
    sha = hashlib.sha256(scan).hexdigest()
    r = await client.post(SCANS.format(ref="S1"), data=scan, headers=auth(keys["a"], **{"Content-Type": content_type}))
    assert r.status == 201, await r.text()
    (ack,) = (await checked(r, SCANS, "post"))["acks"]
    assert (ack["type"], ack["sha256"], ack["size"], ack["copy"], ack["document"]) == (
        "paper.scanned", sha, len(scan), 2, "main")
    entry = Entry.from_bytes(ledger.log.entry(ack["index"]))
    assert entry.type == "paper.scanned" and entry.data == {"document": 1, "sha256": sha, "copy": 2}
    assert ledger.blobs.open(sha).read_bytes() == scan
    r = await client.get(f"/d/{sha}")
    assert (await r.json())["versions"] == [{"kind": "scan", "document": 1, "copy": 2}]
    r = await client.get(f"/v/{code}.json")
    assert r.status == 200 and "paper.scanned" in await r.text()


async def test_a_retry_with_the_same_idempotency_key_appends_nothing(client: TestClient[Any, Any], ledger: Ledger,
                                                                     keys: dict[str, str]) -> None:
    await completed(client, keys["a"], "S2")
    _, pdf = await printed(client, keys["a"], "S2")
    scan, content_type = scanned(pdf, "jpeg")
    headers = auth(keys["a"], **{"Content-Type": content_type, "Idempotency-Key": "scan-1"})
    first = await client.post(SCANS.format(ref="S2"), data=scan, headers=headers)
    assert first.status == 201, await first.text()
    size = ledger.log.size
    again = await client.post(SCANS.format(ref="S2"), data=scan, headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json() and ledger.log.size == size
    other, _ = scanned(pdf, "png")  # another scan under the same key is another request
    r = await client.post(SCANS.format(ref="S2"), data=other, headers={**headers, "Content-Type": "image/png"})
    assert r.status == 422 and (await r.json())["error"]["code"] == "idempotency_mismatch"
    assert ledger.log.size == size and not ledger.blobs.has(hashlib.sha256(other).hexdigest())


# --- refused ---------------------------------------------------------------------------------------------

async def test_refused_scans_store_nothing_and_say_why(client: TestClient[Any, Any], ledger: Ledger,
                                                      keys: dict[str, str]) -> None:
    await completed(client, keys["a"], "S3")
    await completed(client, keys["a"], "S4")
    await completed(client, keys["b"], "S3")  # another tenant's envelope of the same reference
    _, ours = await printed(client, keys["a"], "S3")
    _, other_envelope = await printed(client, keys["a"], "S4")
    _, other_tenant = await printed(client, keys["b"], "S3")
    jpeg, _ = scanned(ours, "jpeg")
    blank, _ = scanned(PDF, "jpeg")  # the original, printed without a QR code
    cases = [
        ("no QR code", blank, "image/jpeg", 422, "no_qr_code", "150 dpi"),
        ("another envelope's copy", scanned(other_envelope, "png")[0], "image/png", 422, "wrong_copy", "'S3'"),
        ("another tenant's copy", scanned(other_tenant, "pdf")[0], "application/pdf", 422, "wrong_copy", "'S3'"),
        ("a truncated JPEG", jpeg[: len(jpeg) // 2], "image/jpeg", 422, "unreadable_scan", "cut short"),
        ("a decompression bomb", bomb_png(), "image/png", 413, "image_too_large", "40,000,000 pixels"),
        ("an empty body", b"", "image/jpeg", 422, "unreadable_scan", "empty"),
        ("a JPEG sent as PNG", jpeg, "image/png", 422, "unreadable_scan", "not a PNG"),
        ("a JPEG sent as text", jpeg, "text/plain", 415, "unsupported_media_type", "image/jpeg"),
    ]
    before, size = stored_files(ledger), ledger.log.size
    for what, body, content_type, status, code, said in cases:
        started = time.monotonic()
        r = await client.post(SCANS.format(ref="S3"), data=body,
                              headers=auth(keys["a"], **{"Content-Type": content_type}))
        error = (await checked(r, SCANS, "post"))["error"]
        assert (r.status, error["code"]) == (status, code), what
        assert said in error["message"], (what, error["message"])
        assert time.monotonic() - started < 5, what
        assert stored_files(ledger) == before and ledger.log.size == size, what
    r = await client.post(SCANS.format(ref="S3"), data=jpeg, headers=auth(keys["a"], **{"Content-Type": "image/jpeg"}))
    assert r.status == 201, await r.text()  # and the good scan, after all that, is taken


async def test_a_scan_of_a_draft_or_unknown_envelope_is_refused_before_it_is_read(
        client: TestClient[Any, Any], ledger: Ledger, keys: dict[str, str]) -> None:
    await completed(client, keys["a"], "S5")
    _, pdf = await printed(client, keys["a"], "S5")
    jpeg, _ = scanned(pdf, "jpeg")
    r = await client.post("/api/v1/envelopes", json={"envelope": "D1", "title": "Draft"}, headers=auth(keys["a"]))
    assert r.status == 201
    before = stored_files(ledger)
    for ref, status, code in (("D1", 409, "wrong_state"), ("S5", 404, None)):
        key = keys["a"] if ref == "D1" else keys["b"]  # S5 is tenant-a's: unknown to tenant-b
        r = await client.post(SCANS.format(ref=ref), data=jpeg, headers=auth(key, **{"Content-Type": "image/jpeg"}))
        assert r.status == status, await r.text()
        assert code is None or (await r.json())["error"]["code"] == code
    assert stored_files(ledger) == before


# --- find_codes ------------------------------------------------------------------------------------------

def test_code_of_takes_the_code_from_a_copy_url_in_any_form() -> None:
    code = "7KQ2M9XH4TZ1B6C8D0EF"
    assert scans.code_of(f"https://ledger.example.com/v/{code}#k=3f9a&d=9c41") == code
    assert scans.code_of(f"http://x/base/v/{code.lower()}?lang=en") == code
    assert scans.code_of("https://ledger.example.com/v/7KQ2M-9XH4T-Z1B6C-8D0EF") == code
    assert scans.code_of(f"https://ledger.example.com/d/{code}") is None
    assert scans.code_of(f"https://ledger.example.com/v/{code}X") is None
    assert scans.code_of("WIFI:S:net;P:secret;;") is None


def _pdf(pages: int, size: tuple[float, float] = (595.28, 841.89)) -> bytes:
    out = io.BytesIO()
    c = Canvas(out, pagesize=size, invariant=1)
    for _ in range(pages):
        c.drawString(72, 72, "a page")
        c.showPage()
    c.save()
    return out.getvalue()


@pytest.mark.parametrize(("pdf", "code", "said"), [
    (_pdf(scans.MAX_PAGES + 1), "too_many_pages", f"at most {scans.MAX_PAGES}"),
    (_pdf(1, (14400.0, 14400.0)), "page_too_large", "14400 x 14400 points"),
    (_pdf(1), "no_qr_code", "at 150 dpi or more"),
    (b"%PDF-1.7\n" + b"\0" * 1000, "unreadable_scan", "not a readable PDF"),
])
def test_pdf_scans_are_read_within_bounds(pdf: bytes, code: str, said: str) -> None:
    started = time.monotonic()
    with pytest.raises(RefusedError) as e:
        scans.find_codes(pdf, "application/pdf")
    assert e.value.code == code and said in e.value.message
    assert e.value.status == (413 if code in ("too_many_pages", "page_too_large") else 422)
    assert time.monotonic() - started < 5


def test_a_scan_with_the_code_on_its_last_page_only_is_read() -> None:
    url = "https://ledger.example.com/v/7KQ2M9XH4TZ1B6C8D0EF#k=3f9a1c0b7e52d8a4&d=9c41e0b2a7d3f5e6"
    pdf = stamp_copy(_pdf(3), qr_url=url, code_grouped="7KQ2M-9XH4T-Z1B6C-8D0EF", domain="ledger.example.com",
                     copy_no=1, printed_at="2026-03-14T09:26:53Z", layout=StampLayout(pages="last"))
    assert scans.find_codes(pdf, "application/pdf") == ["7KQ2M9XH4TZ1B6C8D0EF"]


@pytest.mark.parametrize("side", [8000, 20000])  # refused by its header, by this module or by Pillow's own limit
def test_an_image_of_too_many_pixels_is_refused_unread(side: int) -> None:
    started = time.monotonic()
    with pytest.raises(RefusedError) as e:
        scans.find_codes(bomb_png(side), "image/png")
    assert (e.value.code, e.value.status) == ("image_too_large", 413) and "40,000,000 pixels" in e.value.message
    assert time.monotonic() - started < 2
