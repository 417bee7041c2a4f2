"""Print-ready copies: a PDF with its copy's QR code (and a watermark or a void mark) added as an
incremental update (ISO 32000-1 §7.5.6).

`stamp_copy` returns the input bytes, unchanged, followed by one update section: the bytes every
signature in the file covers stay as they were, so those signatures stay valid for their revision
(a signature's own check of later changes, DocMDP, may still judge the stamp). The marks are drawn
upright by `ledger.documents.marks` into a small PDF whose pages are imported as form XObjects and
drawn over each page, within its visible box (the CropBox clipped to the MediaBox), turned to match
its /Rotate. The page's own content is wrapped in `q ... Q`, so a graphics state it leaves behind
does not move the marks.

It does not decide what to stamp (the code, the URL and its fragment, the copy number come from
`ledger.documents.qr` and the caller), write anything to disk, or remove earlier marks: a copy is
always made from the original.

Bounded time and memory, for documents from anyone:
- at most `MAX_PDF_BYTES` (the `max_bytes` argument) in, else `too_large` (413);
- pyHanko reads the cross-reference sections and then only the objects the page tree reaches, with
  its decode limits for untrusted input (a stream may not inflate more than about 1000 times);
- the page tree is walked once, iteratively: at most `MAX_PAGES` pages, `MAX_TREE_DEPTH` levels and
  `MAX_TREE_NODES` nodes, and no node twice, else `pdf_too_complex` (422);
- a visible page side is at most `MAX_PAGE_SIDE` points (the limit of ISO 32000-1 Annex C), and a
  tiled watermark draws at most `marks.MAX_TILES` texts per page.
The page contents themselves are never decoded.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodeLimits
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from ledger.documents import marks
from ledger.errors import RefusedError

MAX_PDF_BYTES = 50 * 1024 * 1024
MAX_PAGES = 5000
MAX_TREE_DEPTH = 32
MAX_TREE_NODES = 2 * MAX_PAGES
MAX_PAGE_SIDE = 14400.0

Corner = Literal["bottom-right", "bottom-left", "top-right", "top-left"]
_CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
_COLOUR = re.compile(r"#([0-9a-fA-F]{6})")
_XOBJECT_PREFIX = "LedgerCopyMarks"


def _bad(field: str, message: str) -> RefusedError:
    return RefusedError(f"{field}: {message}", code="bad_stamp", status=422)


def _printable(field: str, text: str, max_length: int) -> str:
    if not text or len(text) > max_length or not text.isprintable():
        raise _bad(field, f"must be 1-{max_length} printable characters, not {text[:80]!r}")
    return text


@dataclass(frozen=True)
class StampLayout:
    """Where the QR block goes. `corner` places it `margin_mm` from two edges of the visible page;
    `x` and `y` (points from the visible page's lower-left, as the reader sees it) place the
    code's lower-left corner instead. `qr_mm` is the code's side, quiet zone included. `pages`:
    the block on every page, or on the last only (a watermark or void mark goes on every page)."""

    corner: Corner = "bottom-right"
    x: float | None = None
    y: float | None = None
    qr_mm: float = 22.0
    margin_mm: float = 8.0
    pages: Literal["every", "last"] = "every"

    def __post_init__(self) -> None:
        if self.corner not in _CORNERS:
            raise _bad("corner", f"is one of {', '.join(_CORNERS)}, not {self.corner!r}")
        if (self.x is None) != (self.y is None):
            raise _bad("layout", "give both x and y, or neither (to use the corner)")
        for name, v in (("x", self.x), ("y", self.y)):
            if v is not None and not 0 <= v <= MAX_PAGE_SIDE:
                raise _bad(name, f"is 0-{MAX_PAGE_SIDE:.0f} points, not {v}")
        if not 10 <= self.qr_mm <= 100:
            raise _bad("qr_mm", f"the code's side is 10-100 mm (22 scans well), not {self.qr_mm}")
        if not 0 <= self.margin_mm <= 100:
            raise _bad("margin_mm", f"is 0-100 mm, not {self.margin_mm}")
        if self.pages not in ("every", "last"):
            raise _bad("pages", f"is 'every' or 'last', not {self.pages!r}")


@dataclass(frozen=True)
class Watermark:
    """Text over every page: `colour` as #RRGGBB, `opacity` 0-1 (0.2 leaves the page readable),
    `angle` in degrees counter-clockwise, `tiled` across the page or once in its middle."""

    text: str
    font_size: float = 40.0
    colour: str = "#808080"
    opacity: float = 0.2
    angle: float = 45.0
    tiled: bool = True

    def __post_init__(self) -> None:
        _printable("watermark text", self.text, 100)
        if not 6 <= self.font_size <= 200:
            raise _bad("font_size", f"is 6-200 points, not {self.font_size}")
        if not _COLOUR.fullmatch(self.colour):
            raise _bad("colour", f"is #RRGGBB (like #808080), not {self.colour!r}")
        if not 0 < self.opacity <= 1:
            raise _bad("opacity", f"is more than 0 and at most 1, not {self.opacity}")
        if not -180 <= self.angle <= 180:
            raise _bad("angle", f"is -180 to 180 degrees, not {self.angle}")

    def style(self) -> marks.WatermarkStyle:
        n = int(self.colour[1:], 16)
        rgb = ((n >> 16) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255)
        return marks.WatermarkStyle(self.text, self.font_size, rgb, self.opacity, self.angle, self.tiled)


@dataclass(frozen=True)
class VoidMark:
    """A large diagonal "作废 / VOID" on every page, with the date the contract was voided."""

    date: str

    def __post_init__(self) -> None:
        _printable("void date", self.date, 40)

    def lines(self) -> tuple[str, ...]:
        return ("作废 / VOID", f"作废于 {self.date} · void since {self.date}")


@dataclass(frozen=True)
class _Page:
    ref: generic.IndirectObject
    box: tuple[float, float, float, float]  # the visible box: x0, y0, x1, y1 in user space
    rotate: int  # 0, 90, 180 or 270, clockwise as displayed
    resources: generic.PdfObject | None  # as found on the page or inherited, unresolved

    @property
    def upright(self) -> tuple[float, float]:
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return (h, w) if self.rotate in (90, 270) else (w, h)

    def matrix(self) -> tuple[float, ...]:
        """From the upright marks to user space: the inverse of the turn a reader applies."""
        x0, y0, x1, y1 = self.box
        return {0: (1, 0, 0, 1, x0, y0), 90: (0, 1, -1, 0, x1, y0),
                180: (-1, 0, 0, -1, x1, y1), 270: (0, -1, 1, 0, x0, y1)}[self.rotate]


def _resolve(obj: Any) -> Any:
    """An object with its indirect references followed (pyHanko's own method is untyped)."""
    return obj.get_object()


def _new_dict(items: Any) -> Any:
    make: Any = generic.DictionaryObject
    return make(items)


def _write(writer: Any, out: io.BytesIO) -> None:
    writer.write(out)


def _damaged(detail: str) -> RefusedError:
    return RefusedError(f"the PDF is damaged ({detail}); save it again from the program that made it "
                        "(or print it to PDF) and upload that", code="damaged_pdf", status=422)


def _too_complex(detail: str) -> RefusedError:
    return RefusedError(f"the PDF's page tree is beyond what a contract needs ({detail}); save it "
                        "again as a plain PDF and upload that", code="pdf_too_complex", status=422)


def _open(pdf: bytes, max_bytes: int) -> IncrementalPdfFileWriter:
    if len(pdf) > max_bytes:
        raise RefusedError(f"the PDF is {len(pdf)} bytes, more than the limit of {max_bytes}; send a "
                           "smaller file", code="too_large", status=413)
    if b"%PDF-" not in pdf[:1024]:
        raise RefusedError("this is not a PDF (it does not start with %PDF-); send the document as PDF",
                           code="not_pdf", status=422)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True,
                                          decode_limits=DecodeLimits.for_untrusted_input())
    except (PdfError, KeyError, ValueError, TypeError, IndexError, AssertionError, RecursionError) as e:
        raise _damaged(str(e) or type(e).__name__) from e
    if "/Encrypt" in writer.prev.trailer:
        raise RefusedError("the PDF is encrypted (password-protected); remove the protection and "
                           "upload it again", code="encrypted_pdf", status=422)
    return writer


def _number(obj: generic.PdfObject) -> float:
    v = _resolve(obj)
    if not isinstance(v, (generic.NumberObject, generic.FloatObject)):
        raise _damaged(f"a number was expected, not {type(v).__name__}")
    return float(v)


def _rect(obj: generic.PdfObject) -> tuple[float, float, float, float]:
    arr = _resolve(obj)
    if not isinstance(arr, generic.ArrayObject) or len(arr) != 4:
        raise _damaged("a page box is not four numbers")
    a, b, c, d = (_number(v) for v in arr)
    return min(a, c), min(b, d), max(a, c), max(b, d)


def _visible_box(attrs: dict[str, generic.PdfObject]) -> tuple[float, float, float, float]:
    if "/MediaBox" not in attrs:
        raise _damaged("a page has no /MediaBox")
    mx0, my0, mx1, my1 = _rect(attrs["/MediaBox"])
    box = (mx0, my0, mx1, my1)
    if "/CropBox" in attrs:
        cx0, cy0, cx1, cy1 = _rect(attrs["/CropBox"])
        box = (max(mx0, cx0), max(my0, cy0), min(mx1, cx1), min(my1, cy1))
    w, h = box[2] - box[0], box[3] - box[1]
    if not (1 <= w <= MAX_PAGE_SIDE and 1 <= h <= MAX_PAGE_SIDE):
        raise _damaged(f"a page's visible box is {w:.0f} x {h:.0f} points")
    return box


_INHERITED = ("/MediaBox", "/CropBox", "/Rotate", "/Resources")


def _pages(writer: IncrementalPdfFileWriter) -> list[_Page]:
    """Every page in order, with its inherited attributes; refuses an absurd tree."""
    root = writer.root.raw_get("/Pages")
    if not isinstance(root, generic.IndirectObject):
        raise _damaged("the catalog has no page tree")
    count = _resolve(root).get("/Count") if isinstance(_resolve(root), generic.DictionaryObject) else None
    if isinstance(count, int) and count > MAX_PAGES:
        raise _too_complex(f"it claims {count} pages; at most {MAX_PAGES} are accepted")
    pages: list[_Page] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[generic.PdfObject, int, dict[str, generic.PdfObject]]] = [(root, 1, {})]
    while stack:
        ref, depth, inherited = stack.pop()
        if not isinstance(ref, generic.IndirectObject):
            raise _damaged("a page tree node is not an indirect object")
        key = (ref.idnum, ref.generation)
        if key in seen:
            raise _damaged("the page tree refers to a node twice (a loop)")
        seen.add(key)
        if len(seen) > MAX_TREE_NODES:
            raise _too_complex(f"more than {MAX_TREE_NODES} page tree nodes")
        if depth > MAX_TREE_DEPTH:
            raise _too_complex(f"nested more than {MAX_TREE_DEPTH} levels deep")
        node = _resolve(ref)
        if not isinstance(node, generic.DictionaryObject):
            raise _damaged("a page tree node is not a dictionary")
        attrs = dict(inherited)
        for name in _INHERITED:
            if name in node:
                attrs[name] = node.raw_get(name)
        kids = node.get("/Kids") if node.get("/Type") != "/Page" else None
        if kids is not None:
            if not isinstance(kids, generic.ArrayObject):
                raise _damaged("a page tree node's /Kids is not an array")
            if len(kids) > MAX_TREE_NODES:
                raise _too_complex(f"a node with {len(kids)} children")
            stack.extend((kid, depth + 1, attrs) for kid in reversed(kids))
            continue
        if len(pages) >= MAX_PAGES:
            raise _too_complex(f"more than {MAX_PAGES} pages")
        rotate = attrs.get("/Rotate")
        turn = int(_resolve(rotate)) if rotate is not None else 0
        turn = turn % 360 if turn % 90 == 0 else 0  # as viewers do: a turn not by right angles is none
        pages.append(_Page(ref, _visible_box(attrs), turn, attrs.get("/Resources")))
    if not pages:
        raise _damaged("it has no pages")
    return pages


def _check_time(printed_at: str) -> None:
    try:
        t = datetime.fromisoformat(printed_at.replace("Z", "+00:00"))
    except ValueError:
        t = None
    if t is None or "T" not in printed_at or t.utcoffset() is None or t.utcoffset().total_seconds() != 0:  # type: ignore[union-attr]
        raise _bad("printed_at", f"is an RFC 3339 time in UTC like 2026-01-31T09:30:00Z, not {printed_at[:80]!r}")


def _qr_block(layout: StampLayout, w: float, h: float, url: str, lines: tuple[str, ...]) -> marks.QrBlock:
    size = layout.qr_mm * marks.MM
    margin = layout.margin_mm * marks.MM
    if layout.x is not None and layout.y is not None:
        right = layout.x + size + marks.qr_text_width(lines) <= w
        return marks.QrBlock(url, lines, layout.x, layout.y, size, text_right=right)
    left = layout.corner.endswith("left")
    x = margin if left else w - margin - size
    y = margin if layout.corner.startswith("bottom") else h - margin - size
    return marks.QrBlock(url, lines, x, y, size, text_right=left)


def _add_xobject(writer: IncrementalPdfFileWriter, page: _Page, xobject: generic.IndirectObject) -> str:
    """Name `xobject` in the page's resources (updating the dictionary it uses); returns the name."""
    page_obj = _resolve(page.ref)
    res = _resolve(page.resources) if page.resources is not None else None
    if isinstance(page.resources, generic.IndirectObject) and isinstance(res, generic.DictionaryObject):
        writer.mark_update(page.resources)  # shared with other pages: they only gain a name
    else:  # direct (perhaps inherited) or none: the page gets its own copy
        res = _new_dict(res if isinstance(res, generic.DictionaryObject) else {})
        page_obj[pdf_name("/Resources")] = res
        writer.mark_update(page.ref)
    raw = res.raw_get("/XObject") if "/XObject" in res else None
    if isinstance(raw, generic.IndirectObject):
        names = _resolve(raw)
        if not isinstance(names, generic.DictionaryObject):
            raise _damaged("a page's /XObject resources are not a dictionary")
        writer.mark_update(raw)
    else:
        names = _new_dict(raw if isinstance(raw, generic.DictionaryObject) else {})
        res[pdf_name("/XObject")] = names
    n = 0
    while True:  # a name of our own, unless the page already holds this very object under it
        name = f"/{_XOBJECT_PREFIX}{n}" if n else f"/{_XOBJECT_PREFIX}"
        held = names.raw_get(name) if name in names else None
        if held is None or (isinstance(held, generic.IndirectObject) and held.reference == xobject.reference):
            names[pdf_name(name)] = xobject
            return name
        n += 1


def _wrap_contents(writer: IncrementalPdfFileWriter, page: _Page, before: generic.IndirectObject,
                   after: generic.IndirectObject) -> None:
    page_obj = _resolve(page.ref)
    raw = page_obj.raw_get("/Contents") if "/Contents" in page_obj else None
    if raw is None:
        streams: list[generic.PdfObject] = []
    elif isinstance(raw, generic.ArrayObject):
        streams = list(raw)
    elif isinstance(raw, generic.IndirectObject):
        target = _resolve(raw)
        if isinstance(target, generic.ArrayObject):
            streams = list(target)
        elif isinstance(target, generic.StreamObject):
            streams = [raw]
        else:
            raise _damaged("a page's /Contents is neither a stream nor an array")
    else:
        raise _damaged("a page's /Contents is neither a stream nor an array")
    page_obj[pdf_name("/Contents")] = generic.ArrayObject([before, *streams, after])
    writer.mark_update(page.ref)


def stamp_copy(pdf: bytes, *, qr_url: str, code_grouped: str, domain: str, copy_no: int, printed_at: str,
               layout: StampLayout, watermark: Watermark | None = None, void: VoidMark | None = None,
               max_bytes: int = MAX_PDF_BYTES) -> bytes:
    """The PDF `pdf` with the marks of one printed copy, as an incremental update.

    Args:
        pdf: the original document.
        qr_url: what the QR code holds (the portal's `/v/<code>` address and its `#` fragment).
        code_grouped: the code as printed beside the QR code, grouped for typing.
        domain: the portal's domain, printed above the code so a reader knows where to look it up.
        copy_no: the copy's number (1 for the first copy printed).
        printed_at: when the copy was printed, RFC 3339 in UTC.
        layout: where the QR block goes, and on which pages.
        watermark, void: marks for every page, in the same update.
        max_bytes: the largest PDF accepted.

    Returns:
        `pdf` byte for byte, followed by the update.

    Raises:
        RefusedError: `too_large` (413); `not_pdf`, `encrypted_pdf`, `damaged_pdf`, `pdf_too_complex`
            or, for the arguments, `bad_stamp` (422).
    """
    _printable("qr_url", qr_url, 1000)
    _printable("code_grouped", code_grouped, 64)
    _printable("domain", domain, 253)
    if not 1 <= copy_no <= 10**9:
        raise _bad("copy_no", f"counts from 1, not {copy_no}")
    _check_time(printed_at)
    lines = (domain, code_grouped, f"第 {copy_no} 份 · 打印于 {printed_at}", f"copy {copy_no}, printed {printed_at}")
    return _update(pdf, (layout, qr_url, lines), watermark, void, max_bytes)


def mark_download(pdf: bytes, *, watermark: Watermark | None = None, void: VoidMark | None = None,
                  max_bytes: int = MAX_PDF_BYTES) -> bytes:
    """A downloaded copy: the PDF with a watermark and/or the VOID mark on every page, as an incremental
    update (no QR code: a download is no printed copy). With neither mark, `pdf` itself.

    Raises:
        RefusedError: as `stamp_copy`.
    """
    if watermark is None and void is None:
        return pdf
    return _update(pdf, None, watermark, void, max_bytes)


def _update(pdf: bytes, qr: tuple[StampLayout, str, tuple[str, ...]] | None, watermark: Watermark | None,
            void: VoidMark | None, max_bytes: int) -> bytes:
    writer = _open(pdf, max_bytes)
    try:
        pages = _pages(writer)
    except (PdfError, KeyError, ValueError, TypeError, IndexError, AssertionError, RecursionError) as e:
        raise _damaged(str(e) or type(e).__name__) from e
    style = watermark.style() if watermark is not None else None
    void_lines = void.lines() if void is not None else None
    layout, qr_url, lines = qr if qr is not None else (StampLayout(), "", ())

    sheets: dict[tuple[float, float, bool], int] = {}
    plan: list[int | None] = []
    for i, page in enumerate(pages):
        with_qr = qr is not None and (layout.pages == "every" or i == len(pages) - 1)
        if not with_qr and style is None and void_lines is None:
            plan.append(None)
            continue
        w, h = page.upright
        plan.append(sheets.setdefault((round(w, 2), round(h, 2), with_qr), len(sheets)))
    marks_pdf = marks.draw_marks([
        marks.Sheet(w, h, _qr_block(layout, w, h, qr_url, lines) if with_qr else None, style, void_lines)
        for (w, h, with_qr) in sheets])

    try:
        source = PdfFileReader(io.BytesIO(marks_pdf))
        xobjects = [writer.import_page_as_xobject(source, i) for i in range(len(sheets))]
        before = writer.add_object(generic.StreamObject(stream_data=b"q\n"))
        placed: dict[tuple[str, tuple[float, ...]], generic.IndirectObject] = {}
        for page, sheet in zip(pages, plan, strict=True):
            if sheet is None:
                continue
            name = _add_xobject(writer, page, xobjects[sheet])
            m = page.matrix()
            if (name, m) not in placed:
                ops = f"\nQ\nq {' '.join(f'{v:g}' for v in m)} cm {name} Do Q\n".encode()
                placed[name, m] = writer.add_object(generic.StreamObject(stream_data=ops))
            _wrap_contents(writer, page, before, placed[name, m])
        out = io.BytesIO()
        _write(writer, out)
    except (PdfError, KeyError, ValueError, TypeError, IndexError, AssertionError, RecursionError) as e:
        raise _damaged(str(e) or type(e).__name__) from e
    stamped = out.getvalue()
    if not stamped.startswith(pdf):  # the guarantee signatures rely on; never expected to fail
        raise AssertionError("the stamped copy does not begin with the original's bytes")
    return stamped
