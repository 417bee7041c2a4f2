"""The marks of a printed copy, drawn with reportlab: the QR block, a watermark and a void mark.

`draw_marks` makes a small PDF of one page per distinct sheet (a visible page size, with or without
the QR block); `ledger.documents.stamp` imports each page as a form XObject into the copy. Everything
is drawn upright in the coordinates of the visible page (its CropBox as the reader sees it, /Rotate
applied); placing it on the page is the caller's job.

The QR code is vector (its modules as filled rectangles, error correction Q, a white quiet zone of
four modules), so it prints sharp at any resolution. Text goes through one TrueType font, WQY Micro
Hei (Chinese and Latin), subset-embedded by reportlab, so `pdftotext` and screen readers read it and
no reader needs the font installed. This module does not read or write the copy itself.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import qrcode
import qrcode.constants
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from ledger.errors import LedgerError

FONT_PATH = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
FONT_NAME = "LedgerWqyMicroHei"
MM = 72 / 25.4
QUIET_MODULES = 4  # the quiet zone ISO/IEC 18004 asks for
MAX_TILES = 400  # a tiled watermark draws at most this many copies of its text per page

_TEXT_SIZE = 7.0  # points: domain and code
_SMALL_SIZE = 5.5  # points: the copy line, in two languages
_GAP = 2 * MM  # between the QR code and its text


@dataclass(frozen=True)
class QrBlock:
    """What the QR block prints, and where: `x`, `y` are the lower-left corner of the code (quiet
    zone included) in points from the visible page's lower-left; `text_right` puts the text on the
    code's right, else on its left."""

    url: str
    lines: tuple[str, ...]
    x: float
    y: float
    size: float
    text_right: bool


@dataclass(frozen=True)
class WatermarkStyle:
    text: str
    font_size: float
    rgb: tuple[float, float, float]
    opacity: float
    angle: float
    tiled: bool


@dataclass(frozen=True)
class Sheet:
    """One page of marks: its size in points (upright) and what goes on it."""

    width: float
    height: float
    qr: QrBlock | None
    watermark: WatermarkStyle | None
    void_lines: tuple[str, ...] | None


@functools.cache
def _font() -> str:
    """Register the font once per process (reading the collection takes a moment)."""
    try:
        pdfmetrics.registerFont(TTFont(FONT_NAME, FONT_PATH, subfontIndex=0))
    except (OSError, Exception) as e:  # reportlab raises TTFError (an Exception) for a bad file
        raise LedgerError(f"cannot load the font {FONT_PATH} ({e}); install the Debian package "
                          "fonts-wqy-microhei", code="font_missing") from e
    return FONT_NAME


def text_width(text: str, size: float) -> float:
    return float(pdfmetrics.stringWidth(text, _font(), size))


def qr_matrix(url: str) -> list[list[bool]]:
    """The modules of the code for `url`, quiet zone included (True is dark)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, border=QUIET_MODULES)
    code.add_data(url.encode())
    code.make(fit=True)
    return [[bool(m) for m in row] for row in code.get_matrix()]


def _draw_qr(c: Canvas, block: QrBlock) -> None:
    matrix = qr_matrix(block.url)
    n = len(matrix)
    module = block.size / n
    c.setFillColorRGB(1, 1, 1)
    c.rect(block.x, block.y, block.size, block.size, stroke=0, fill=1)
    c.setFillColorRGB(0, 0, 0)
    path = c.beginPath()
    for r, row in enumerate(matrix):
        y = block.y + (n - 1 - r) * module
        col = 0
        while col < n:  # one rectangle per run of dark modules: fewer operators than one per module
            if not row[col]:
                col += 1
                continue
            start = col
            while col < n and row[col]:
                col += 1
            path.rect(block.x + start * module, y, (col - start) * module, module)
    c.drawPath(path, stroke=0, fill=1)


def _draw_qr_text(c: Canvas, block: QrBlock) -> None:
    font = _font()
    sizes = [_TEXT_SIZE, _TEXT_SIZE] + [_SMALL_SIZE] * (len(block.lines) - 2)
    leading = [s * 1.35 for s in sizes]
    top = block.y + (block.size + sum(leading)) / 2  # the lines centred on the code
    c.setFillColorRGB(0, 0, 0)
    y = top
    for line, size, lead in zip(block.lines, sizes, leading, strict=True):
        y -= lead
        c.setFont(font, size)
        if block.text_right:
            c.drawString(block.x + block.size + _GAP, y + (lead - size) / 2, line)
        else:
            c.drawRightString(block.x - _GAP, y + (lead - size) / 2, line)


def qr_text_width(lines: Sequence[str]) -> float:
    """Width of the QR block's text, for placing it within the page."""
    sizes = [_TEXT_SIZE, _TEXT_SIZE] + [_SMALL_SIZE] * (len(lines) - 2)
    return max(text_width(line, s) for line, s in zip(lines, sizes, strict=True)) + _GAP


def _draw_watermark(c: Canvas, w: float, h: float, mark: WatermarkStyle) -> None:
    font = _font()
    c.saveState()
    c.setFont(font, mark.font_size)
    c.setFillColorRGB(*mark.rgb)
    c.setFillAlpha(mark.opacity)
    tw = text_width(mark.text, mark.font_size)
    if not mark.tiled:
        c.translate(w / 2, h / 2)
        c.rotate(mark.angle)
        c.drawCentredString(0, -mark.font_size / 3, mark.text)
    else:
        # A grid in the rotated frame wide enough to cover the page at any angle.
        step_x = tw + 2 * mark.font_size
        step_y = 4 * mark.font_size
        reach = math.hypot(w, h) / 2
        nx = min(int(reach // step_x) + 1, 50)
        ny = min(int(reach // step_y) + 1, 50)
        c.translate(w / 2, h / 2)
        c.rotate(mark.angle)
        cells = [(i, j) for j in range(-ny, ny + 1) for i in range(-nx, nx + 1)]
        cells.sort(key=lambda ij: abs(ij[0]) + abs(ij[1]))  # from the centre out, if capped
        for i, j in cells[:MAX_TILES]:
            offset = (j % 2) * step_x / 2  # alternate rows shifted, as brick
            c.drawCentredString(i * step_x + offset, j * step_y - mark.font_size / 3, mark.text)
    c.restoreState()


def _draw_void(c: Canvas, w: float, h: float, lines: tuple[str, ...]) -> None:
    font = _font()
    angle = math.degrees(math.atan2(h, w))
    diagonal = math.hypot(w, h)
    big = 0.6 * diagonal / max(text_width(lines[0], 1.0), 1e-6)
    small = big / 4
    c.saveState()
    c.setFillColorRGB(0.8, 0.0, 0.0)
    c.setFillAlpha(0.35)
    c.translate(w / 2, h / 2)
    c.rotate(angle)
    c.setFont(font, big)
    c.drawCentredString(0, -big * 0.3, lines[0])
    c.setFont(font, small)
    for k, line in enumerate(lines[1:], start=1):
        c.drawCentredString(0, -big * 0.3 - k * small * 1.4, line)
    c.restoreState()


def draw_marks(sheets: Sequence[Sheet]) -> bytes:
    """A PDF with one page per sheet, in order, each of the sheet's size."""
    _font()
    out = io.BytesIO()
    c = Canvas(out, pageCompression=1, invariant=1)
    for sheet in sheets:
        c.setPageSize((sheet.width, sheet.height))
        if sheet.watermark is not None:
            _draw_watermark(c, sheet.width, sheet.height, sheet.watermark)
        if sheet.void_lines is not None:
            _draw_void(c, sheet.width, sheet.height, sheet.void_lines)
        if sheet.qr is not None:  # last: the code must stay readable over the other marks
            _draw_qr(c, sheet.qr)
            _draw_qr_text(c, sheet.qr)
        c.showPage()
    c.save()
    return out.getvalue()
