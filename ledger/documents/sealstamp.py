"""The visible appearance of a PAdES e-seal: a round red seal, drawn, or an image the organisation registered.

What it does: draw the seal the way a Chinese company seal looks (a red ring, a five-pointed star in the
middle, the organisation's name along the upper arc, in Chinese or Latin script, with the WenQuanYi
Micro Hei font when it is installed) as a transparent PNG, check a registered image, and say where on a
page the seal goes (`SealAppearance`).

What it does not do: put the image into a PDF (`seal` hands it to pyHanko's stamp styles) or judge
whether a registered image is the organisation's (that is the registration's business).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ledger.errors import RefusedError

CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
SEAL_RED = (214, 0, 21, 255)
MAX_IMAGE_BYTES = 4 * 1024 * 1024
_PIXELS = 600  # the drawn seal's width and height
_MAX_ARC_DEGREES = 250.0


@dataclass(frozen=True)
class SealAppearance:
    """Where and how the seal shows on the page.

    Attributes:
        page: page index, from 0; negative counts from the end (-1, the default, is the last page).
        box: (x1, y1, x2, y2) in PDF points from the page's lower left corner; default: a square
            of `size` points, 36 points from the right and bottom edges.
        size: the default box's side, in points.
        text: the name along the arc; default: the sealer's organisation.
        image: a registered seal image (PNG or JPEG bytes) to show instead of a drawn seal.
    """

    page: int = -1
    box: tuple[float, float, float, float] | None = None
    size: float = 120.0
    text: str | None = None
    image: bytes | None = None


def seal_image(appearance: SealAppearance, organisation: str) -> Image.Image:
    """The appearance's image: the registered one, checked, or a seal drawn for its text or `organisation`."""
    if appearance.image is not None:
        return registered_image(appearance.image)
    return draw_seal((appearance.text or organisation).strip())


def registered_image(data: bytes) -> Image.Image:
    """A registered seal image, decoded; refused if it is not a PNG or JPEG of sensible size."""
    if len(data) > MAX_IMAGE_BYTES:
        raise RefusedError(
            f"the seal image has {len(data)} bytes; at most {MAX_IMAGE_BYTES} are accepted",
            code="seal_bad_image",
        )
    try:
        image = Image.open(io.BytesIO(data))
        image_format = image.format
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RefusedError(
            f"the seal image cannot be read ({exc}); give a PNG or JPEG", code="seal_bad_image"
        ) from exc
    if image_format not in {"PNG", "JPEG"}:
        raise RefusedError(f"the seal image is {image_format}; give a PNG or JPEG", code="seal_bad_image")
    if not (16 <= image.width <= 4096 and 16 <= image.height <= 4096):
        raise RefusedError(
            f"the seal image is {image.width}x{image.height} pixels; give 16 to 4096 pixels a side",
            code="seal_bad_image",
        )
    return image.convert("RGBA")


def draw_seal(text: str) -> Image.Image:
    """A round red seal with `text` along the upper arc, on a transparent background."""
    if not text:
        raise RefusedError("the seal's text is empty; give the organisation's name", code="seal_bad_name")
    return _drawn(text).copy()


@functools.lru_cache(maxsize=64)  # an organisation seals many documents with the same seal
def _drawn(text: str) -> Image.Image:
    size = _PIXELS
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    centre = size / 2
    ring = size * 0.045
    outer = size / 2 - 4
    draw.ellipse(
        (centre - outer, centre - outer, centre + outer, centre + outer), outline=SEAL_RED, width=round(ring)
    )
    _star(draw, centre, centre, size * 0.16)
    _arc_text(image, text, centre, outer - ring)
    return image


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, radius: float) -> None:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.382  # the inner radius of a regular pentagram
        angle = math.radians(-90 + 36 * i)
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    draw.polygon(points, fill=SEAL_RED)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if CJK_FONT.exists():
        return ImageFont.truetype(str(CJK_FONT), size=size, index=0)
    return ImageFont.load_default(size=size)  # Latin only; install fonts-wqy-microhei for Chinese


def _arc_text(image: Image.Image, text: str, centre: float, inner: float) -> None:
    """Lay `text` out clockwise along the top of the ring, each glyph upright to the centre."""
    font_size = int(_PIXELS * 0.13)
    while True:
        font = _font(font_size)
        radius = inner - font_size * 0.75  # the glyphs' centre line
        advances = [font.getlength(ch) * 1.08 for ch in text]
        span = math.degrees(sum(advances) / radius)
        if span <= _MAX_ARC_DEGREES or font_size <= 14:
            break
        font_size = int(font_size * 0.9)
    angle = -span / 2
    for ch, advance in zip(text, advances, strict=True):
        step = math.degrees(advance / radius)
        theta = math.radians(angle + step / 2)
        glyph = Image.new("RGBA", (font_size * 2, font_size * 2), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((font_size, font_size), ch, font=font, fill=SEAL_RED, anchor="mm")
        glyph = glyph.rotate(-math.degrees(theta), resample=Image.Resampling.BICUBIC)
        x = centre + radius * math.sin(theta) - font_size
        y = centre - radius * math.cos(theta) - font_size
        image.alpha_composite(glyph, (round(x), round(y)))
        angle += step
