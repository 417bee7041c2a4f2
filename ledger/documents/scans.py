"""Paper copies back: the printed copy codes in the QR codes of a scan (PDF, JPEG or PNG).

A print-ready copy (`ledger.documents.stamp`) carries a QR code holding `<public_url>/v/<code>#k=..&d=..`;
once it was signed or sealed by hand, the platform sends a scan of it. `find_codes` reads the QR codes
on the scan with zxing-cpp and returns the copy codes it finds, normalised (`ledger.documents.qr`). It
does not look the codes up, store the scan or judge what the scan shows.

Bounded time and memory, for files from anyone:
- a PDF is rendered with pdfium, page by page, at `RENDER_DPI` (lower, down to `MIN_DPI`, for a large
  page): at most `MAX_PAGES` pages, else `too_many_pages` (413); a page that needs more than
  `MAX_PIXELS` at `MIN_DPI` is `page_too_large` (413);
- a JPEG or PNG is read by Pillow, whose header gives the size before any pixel is decoded: at most
  `MAX_PIXELS` (A4 at 600 dpi), else `image_too_large` (413), so a decompression bomb is refused
  unread; a JPEG is decoded straight to grey;
- pages are read one after another, and the reading stops with `scan_too_slow` (422) once it has
  taken `MAX_SECONDS`.
A file that cannot be read as the type it was sent as is `unreadable_scan` (422); a scan with no
copy's QR code on it is `no_qr_code` (422).
"""

from __future__ import annotations

import io
import re
import time
import warnings
from collections.abc import Iterator

from PIL import Image

from ledger.documents import qr
from ledger.errors import RefusedError

CONTENT_TYPES = ("application/pdf", "image/jpeg", "image/png")
MAX_PAGES = 20
RENDER_DPI = 200
MIN_DPI = 150
MAX_PIXELS = 40_000_000
MAX_SECONDS = 20.0

_PIL_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG"}
# The copy's address: anything, then /v/ and the code (as the portal prints it, or typed in any
# case), then perhaps a query or the fragment with its pins.
_COPY_URL = re.compile(r".*/v/([^/?#]{1,80})(?:[?#].*)?", re.DOTALL)


def code_of(text: str) -> str | None:
    """The copy code in a QR code's text `<anything>/v/<code>[#...]`, normalised; None if it holds none."""
    m = _COPY_URL.fullmatch(text)
    return qr.normalise(m.group(1)) if m else None


def find_codes(data: bytes, content_type: str) -> list[str]:
    """The printed copy codes on a scan, each once, in the order they were first found.

    Args:
        data: the scan's bytes.
        content_type: `application/pdf`, `image/jpeg` or `image/png`: how `data` is read.

    Returns:
        At least one code (normalised, 20 characters).

    Raises:
        RefusedError: `unsupported_media_type` (415); `too_many_pages`, `page_too_large`,
            `image_too_large` (413); `unreadable_scan`, `scan_too_slow`, `no_qr_code` (422).
    """
    if content_type not in CONTENT_TYPES:
        raise RefusedError(f"send a scan as {', '.join(CONTENT_TYPES)}, not {content_type or 'no type'}",
                           code="unsupported_media_type", status=415)
    if not data:
        raise RefusedError("the scan is empty: send the file's bytes as the request body",
                           code="unreadable_scan", status=422)
    # imported here, not with the module: the portal's processes load this module, and only those that
    # read a scan need the decoder (whose extension also reports its objects at exit)
    import zxingcpp

    deadline = time.monotonic() + MAX_SECONDS
    images = _pdf_pages(data) if content_type == "application/pdf" else _image(data, content_type)
    found: list[str] = []
    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    for image in images:
        for result in zxingcpp.read_barcodes(image, formats=qr_only):
            code = code_of(result.text)
            if code is not None and code not in found:
                found.append(code)
        if time.monotonic() > deadline:
            raise RefusedError(f"reading the scan took more than {MAX_SECONDS:g} s; send fewer pages, or the page "
                               "with the QR code alone", code="scan_too_slow", status=422)
    if not found:
        raise RefusedError("no QR code of a printed copy could be read on the scan; scan the page with the QR "
                           "code at 150 dpi or more, whole and upright, and send it again", code="no_qr_code",
                           status=422)
    return found


def _unreadable(what: str, e: Exception) -> RefusedError:
    return RefusedError(f"the scan is not a readable {what}, or it is damaged or cut short ({type(e).__name__}: "
                        f"{str(e)[:200]}); send the whole file again", code="unreadable_scan", status=422)


def _image(data: bytes, content_type: str) -> Iterator[Image.Image]:
    fmt = _PIL_FORMAT[content_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked here
            img = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        raise _image_too_large() from None
    except Exception:  # noqa: BLE001  # whatever Pillow raises on this file is the file's
        raise RefusedError(f"the scan is not a {fmt} image; send it with the type it is ({', '.join(CONTENT_TYPES)})",
                           code="unreadable_scan", status=422) from None
    with img:
        if img.width * img.height > MAX_PIXELS:
            raise _image_too_large(img.size)
        try:
            if fmt == "JPEG":
                img.draft("L", img.size)  # decoded to grey: a third of the memory
            grey = img.convert("L")  # decodes the pixels: a truncated or damaged file fails here
        except Exception as e:  # noqa: BLE001
            raise _unreadable(fmt, e) from None
    yield grey


def _image_too_large(size: tuple[int, int] | None = None) -> RefusedError:
    what = f" ({size[0]} x {size[1]})" if size else ""
    return RefusedError(f"the scan has more than {MAX_PIXELS:,} pixels{what}, the most a scan may have (A4 at 600 "
                        "dpi): scan at 150-300 dpi", code="image_too_large", status=413)


def _pdf_pages(data: bytes) -> Iterator[Image.Image]:
    import pypdfium2

    try:
        doc = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as e:
        raise _unreadable("PDF", e) from None
    try:
        n = len(doc)
        if n > MAX_PAGES:
            raise RefusedError(f"the scan has {n} pages; send at most {MAX_PAGES}, with the page that carries the "
                               "QR code", code="too_many_pages", status=413)
        for i in range(n):
            page = doc[i]
            try:
                w, h = page.get_size()
                dpi = min(RENDER_DPI, int((MAX_PIXELS / max(w * h, 1.0)) ** 0.5 * 72))
                if dpi < MIN_DPI:
                    raise RefusedError(f"page {i + 1} of the scan is {w:.0f} x {h:.0f} points; at {MIN_DPI} dpi "
                                       f"it would be more than {MAX_PIXELS:,} pixels: send a scan of the paper "
                                       "copy as it was printed", code="page_too_large", status=413)
                try:
                    bitmap = page.render(scale=dpi / 72, grayscale=True)
                except pypdfium2.PdfiumError as e:
                    raise _unreadable("PDF", e) from None
                yield bitmap.to_pil()
            finally:
                page.close()
    finally:
        doc.close()
