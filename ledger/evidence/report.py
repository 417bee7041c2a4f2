"""The evidence report: a court-readable PDF of one envelope's evidence, in English or Chinese.

`render_report(facts, lang=...)` lays out with reportlab the facts that `ledger.evidence.bundle`
gathers: a cover with the export's verdict on its own evidence, the contract's status and the QR code
of its portal page; the parties and how each proved who they were; the documents, their versions and
signatures; the whole timeline; the cryptographic evidence (checkpoints, RFC 3161 anchors, witness
cosignatures); how the system keeps evidence and how to verify it; and an appendix of full leaf hashes
and inclusion proofs. The bundle's manifest.json is attached as an embedded file (ISO 32000-1 §7.11.4).
The wording is in `ledger.evidence.reporttext`.

Text goes through one TrueType font, WQY Micro Hei (its Mono face for hashes and commands), subset-
embedded, so text extracts and no reader needs the font. Values from the facts are shown literally:
markup is escaped, and a character the font cannot draw, or one that is invisible or reorders text
(control, format and bidi characters), is shown as its code point, "[U+202E]". Times are shown to the
second in Beijing time (Chinese) or UTC (English), each followed by its UTC instant.

This module neither gathers nor checks evidence (the bundle does) and does not seal the PDF.
"""

from __future__ import annotations

import functools
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from pyhanko.pdf_utils import embed
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from ledger.documents.marks import FONT_NAME, FONT_PATH, MM, qr_matrix
from ledger.envelopes.wording import DETAILS, EVENTS
from ledger.errors import LedgerError, RefusedError
from ledger.evidence.reporttext import CHECKS, KEEPING, LANGS, PASSED, STATUS, TEXT, VERIFYING

MONO_NAME = "LedgerWqyMicroHeiMono"
DASH = "—"

_MARGIN = 18 * MM
_WIDTH = A4[0] - 2 * _MARGIN  # of the frame, in points
_QR_SIZE = 36 * MM
_CUT = 400  # characters of one value shown in a table cell; the bundle holds it whole
_GREEN = colors.HexColor("#1b6e3a")
_RED = colors.HexColor("#b3261e")
_AMBER = colors.HexColor("#8a5a00")
_GREY = colors.HexColor("#5f6368")
_RULE = colors.HexColor("#b0b4b8")
_HEAD = colors.HexColor("#e8eaed")
_ZEBRA = colors.HexColor("#f6f7f8")
_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?Z")
_BEIJING = timedelta(hours=8)  # China Standard Time, all year


def render_report(facts: dict[str, Any], *, lang: str) -> bytes:
    """The report of an envelope's evidence as an unsealed PDF.

    Args:
        facts: what `ledger.evidence.bundle` gathered for the envelope (its documented shape).
        lang: "en" or "zh-CN".

    Raises:
        RefusedError: `lang` is neither.
        LedgerError: the font is not installed (Debian package fonts-wqy-microhei).
    """
    if lang not in LANGS:
        raise RefusedError(f"no report wording for language {lang!r}; use one of {', '.join(LANGS)}",
                           code="bad_lang")
    report = _Report(facts, lang)
    buffer = io.BytesIO()
    t = TEXT[lang]
    ref = _plain(facts["envelope"]["ref"], 80)
    doc = BaseDocTemplate(
        buffer, pagesize=A4, leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=_MARGIN,
        bottomMargin=_MARGIN + 6 * MM, title=f"{t['doc_title']} {ref}", author="evidence ledger",
        subject=t["subtitle"], creator="evidence ledger", lang=lang, invariant=1, displayDocTitle=1,
        initialFontName=FONT_NAME, initialFontSize=9,  # else reportlab names Helvetica, not embedded
    )
    doc.addPageTemplates([PageTemplate("page", [Frame(_MARGIN, _MARGIN + 6 * MM, _WIDTH, A4[1] - 2 * _MARGIN - 6 * MM,
                                                      id="body", leftPadding=0, rightPadding=0,
                                                      topPadding=0, bottomPadding=0)])])
    footer = functools.partial(_footer, left=t["footer"].format(ref=ref), page=t["page"])
    doc.build(report.story(), canvasmaker=functools.partial(_NumberedCanvas, footer=footer))
    return _attach(buffer.getvalue(), facts["manifest"], t["attachment"], _moment(facts.get("generated")))


# --- fonts and text ------------------------------------------------------------------------------

@functools.cache
def _drawable() -> frozenset[int]:
    """Register the two faces once per process (the proportional one under `marks`' name, so the
    modules share it) and return the code points both can draw."""
    try:
        registered = set(pdfmetrics.getRegisteredFontNames())
        if FONT_NAME not in registered:
            pdfmetrics.registerFont(TTFont(FONT_NAME, FONT_PATH, subfontIndex=0))
        if MONO_NAME not in registered:
            pdfmetrics.registerFont(TTFont(MONO_NAME, FONT_PATH, subfontIndex=1))
    except Exception as e:  # reportlab raises TTFError (an Exception) for a missing or bad file
        raise LedgerError(f"cannot load the font {FONT_PATH} ({e}); install the Debian package "
                          "fonts-wqy-microhei", code="font_missing") from e
    # The face has no bold: <b> in the wording stays legible as the same face.
    pdfmetrics.registerFontFamily(FONT_NAME, normal=FONT_NAME, bold=FONT_NAME, italic=FONT_NAME,
                                  boldItalic=FONT_NAME)
    faces = [pdfmetrics.getFont(name).face.charToGlyph for name in (FONT_NAME, MONO_NAME)]
    return frozenset(faces[0]).intersection(faces[1])


def _plain(value: object, limit: int = _CUT) -> str:
    """A value of the facts as the text to draw: None as a dash; line breaks and tabs as spaces; a
    character that is invisible, reorders text or is not in the font as its code point; cut at
    `limit` characters with the count of the rest."""
    if value is None:
        return DASH
    text = str(value)
    drawable = _drawable()
    out = []
    for ch in text[:limit]:
        code = ord(ch)
        if ch in "\t\n\r" or (ch.isspace() and code not in drawable):
            out.append(" ")
        elif unicodedata.category(ch)[0] == "C" or code not in drawable:
            out.append(f"[U+{code:04X}]")
        else:
            out.append(ch)
    if len(text) > limit:
        out.append(f" … [+{len(text) - limit}]")
    return "".join(out) or DASH


def _x(value: object, limit: int = _CUT) -> str:
    """`_plain`, escaped for Paragraph markup."""
    return escape(_plain(value, limit))


def _moment(iso: object) -> datetime | None:
    m = _TIME.fullmatch(iso) if isinstance(iso, str) else None
    if m is None:
        return None
    year, month, day, hour, minute, second = map(int, m.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # no such day or second
        return None


def _when(iso: object, lang: str, sep: str = "<br/>", *, narrow: bool = False) -> str:
    """A time of the facts as markup: to the second (cut, as a clock reads) in the reader's zone with
    its label, then `sep` and its UTC instant; a value that is no such time, literally. `narrow` puts
    the zone's label on a line of its own (Chinese text may otherwise break inside the label)."""
    moment = _moment(iso)
    if moment is None or moment.year >= 9999:
        return _x(iso)
    local = moment + _BEIJING if lang == "zh-CN" else moment
    zone = ("<br/>" if narrow else " ") + escape(TEXT[lang]["zone"])
    return f"{local:%Y-%m-%d %H:%M:%S}{zone}{sep}<font color='#5f6368'>{moment:%Y-%m-%dT%H:%M:%SZ}</font>"


# --- styles and building blocks ------------------------------------------------------------------

@dataclass(frozen=True)
class _Styles:
    h1: ParagraphStyle
    h2: ParagraphStyle
    h3: ParagraphStyle
    body: ParagraphStyle
    note: ParagraphStyle
    cell: ParagraphStyle
    head: ParagraphStyle
    label: ParagraphStyle
    caption: ParagraphStyle
    mono: ParagraphStyle
    code: ParagraphStyle
    verdict: ParagraphStyle
    banner: ParagraphStyle


@functools.cache
def _styles(lang: str) -> _Styles:
    _drawable()
    wrap = "CJK" if lang == "zh-CN" else None  # Chinese breaks between any two characters

    def style(name: str, size: float, leading: float, **kw: Any) -> ParagraphStyle:
        font = kw.pop("fontName", FONT_NAME)
        kw.setdefault("wordWrap", wrap if font == FONT_NAME else None)
        return ParagraphStyle(f"{lang}-{name}", fontName=font, fontSize=size, leading=leading, **kw)

    return _Styles(
        h1=style("h1", 18, 24, spaceAfter=3),
        h2=style("h2", 13, 17, spaceBefore=12, spaceAfter=5, keepWithNext=1),
        h3=style("h3", 10.5, 14, spaceBefore=8, spaceAfter=3, keepWithNext=1),
        body=style("body", 9, 13.5, spaceAfter=4),
        note=style("note", 8, 11, spaceAfter=4, textColor=_GREY),
        cell=style("cell", 7.5, 9.6),
        head=style("head", 7.5, 9.6, textColor=colors.HexColor("#202124")),
        label=style("label", 8, 10.5, textColor=_GREY),
        caption=style("caption", 8, 10.5, textColor=_GREY, spaceBefore=6, keepWithNext=1),
        mono=style("mono", 6.5, 8.4, fontName=MONO_NAME, splitLongWords=1),
        code=style("code", 7.5, 10, fontName=MONO_NAME, backColor=colors.HexColor("#f1f3f4"),
                   borderPadding=(3, 4, 3, 4), leftIndent=4, rightIndent=4, spaceBefore=3, spaceAfter=7),
        verdict=style("verdict", 30, 36, alignment=TA_CENTER, textColor=colors.white),
        banner=style("banner", 9.5, 13, alignment=TA_CENTER, textColor=colors.white),
    )


def _tstyle(commands: list[tuple[Any, ...]]) -> TableStyle:
    """A table style that sets our font: a table sets its cells' font even where a cell is a
    Paragraph, and reportlab's default would put an unembedded Helvetica in the PDF."""
    return TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT_NAME), *commands])


def _table(head: Sequence[Paragraph], rows: list[list[Any]], widths: Sequence[float]) -> Table:
    """A ruled table whose header repeats on every page it spans; a row may split across pages."""
    table = Table([list(head), *rows], colWidths=list(widths), repeatRows=1, splitInRow=1)
    table.setStyle(_tstyle([
        ("FONTSIZE", (0, 0), (-1, -1), 7.5),
        ("LEADING", (0, 0), (-1, -1), 9.6),  # as the cells' Paragraph style, for plain-text cells
        ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, _ZEBRA]),
        ("GRID", (0, 0), (-1, -1), 0.25, _RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table


def _box(rows: list[list[Any]], background: colors.Color) -> Table:
    """A full-width coloured banner."""
    table = Table(rows, colWidths=[_WIDTH])
    table.setStyle(_tstyle([
        ("BACKGROUND", (0, 0), (-1, -1), background),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))
    return table


class _Qr(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """A QR code drawn as vector squares (one rectangle per run of dark modules)."""

    def __init__(self, matrix: list[list[bool]], size: float) -> None:
        super().__init__()
        self.matrix = matrix
        self.size = size

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.size, self.size

    def draw(self) -> None:
        n = len(self.matrix)
        module = self.size / n
        c = self.canv
        c.setFillColor(colors.black)
        path = c.beginPath()
        for r, row in enumerate(self.matrix):
            y = (n - 1 - r) * module
            col = 0
            while col < n:
                if not row[col]:
                    col += 1
                    continue
                start = col
                while col < n and row[col]:
                    col += 1
                path.rect(start * module, y, (col - start) * module, module)
        c.drawPath(path, stroke=0, fill=1)


class _NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
    """Holds the pages back until the end, so each footer can say how many pages there are."""

    def __init__(self, *args: Any, footer: Callable[[Canvas, int, int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[dict[str, Any]] = []
        self._footer = footer

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        self._held.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._held)
        for number, state in enumerate(self._held, 1):
            self.__dict__.update(state)
            self._footer(self, number, total)
            super().showPage()
        super().save()


def _footer(c: Canvas, number: int, total: int, *, left: str, page: str) -> None:
    right = page.format(x=number, y=total)
    size = 7.5
    y = _MARGIN
    c.saveState()
    c.setStrokeColor(_RULE)
    c.setLineWidth(0.4)
    c.line(_MARGIN, y + 3 * MM, A4[0] - _MARGIN, y + 3 * MM)
    c.setFillColor(_GREY)
    c.setFont(FONT_NAME, size)
    room = _WIDTH - pdfmetrics.stringWidth(right, FONT_NAME, size) - 8 * MM
    while left and pdfmetrics.stringWidth(left, FONT_NAME, size) > room:
        left = left[:-2] + "…"
    c.drawString(_MARGIN, y, left)
    c.drawRightString(A4[0] - _MARGIN, y, right)
    c.restoreState()


def _attach(pdf: bytes, manifest: bytes, description: str, when: datetime | None) -> bytes:
    """The PDF with `manifest` attached as manifest.json, in an incremental update."""
    writer: Any = IncrementalPdfFileWriter(io.BytesIO(pdf))  # its write() is untyped
    params = embed.EmbeddedFileParams(creation_date=when, modification_date=when)
    data = embed.EmbeddedFileObject.from_file_data(writer, manifest, mime_type="application/json", params=params)
    embed.embed_file(writer, embed.FileSpec(file_spec_string="manifest.json", file_name="manifest.json",
                                            embedded_data=data, description=description))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- the report ----------------------------------------------------------------------------------

class _Report:
    """The flowables of one report."""

    def __init__(self, facts: dict[str, Any], lang: str) -> None:
        self.facts = facts
        self.lang = lang
        self.t = TEXT[lang]
        self.st = _styles(lang)
        self.names = {p["ordinal"]: p.get("name") for p in facts.get("parties") or []}

    def story(self) -> list[Flowable]:
        return [*self.cover(), PageBreak(), *self.parties(), *self.documents(), *self.timeline(),
                *self.crypto(), *self.keeping(), *self.verifying(), PageBreak(), *self.appendix()]

    # small helpers
    def p(self, markup: str, style: ParagraphStyle | None = None) -> Paragraph:
        return Paragraph(markup, style or self.st.cell)

    def c(self, markup: str) -> Paragraph | str:
        """A table cell: a number or a dash as plain text (the table draws it in our font; a Paragraph
        costs more, and a long timeline has thousands of cells), anything else as a Paragraph."""
        return markup if markup == DASH or (markup.isascii() and markup.isdigit()) else self.p(markup)

    def heads(self, *keys: str) -> list[Paragraph]:
        return [self.p(escape(self.t[k]), self.st.head) for k in keys]

    def mono(self, value: object) -> Paragraph:
        return self.p(_x(value), self.st.mono)

    def detail(self, value: str | None) -> str:
        return DASH if value is None else _x(DETAILS[self.lang].get(value, value))

    def party(self, ordinal: int | None) -> str:
        if ordinal is None:
            return DASH
        name = self.names.get(ordinal)
        shown = _x(name, 120) if name else escape(self.t["party_n"].format(n=ordinal))
        return f"{_x(ordinal)}. {shown}"

    def kv(self, rows: list[tuple[str, str]], widths: tuple[float, float]) -> Table:
        table = Table([[self.p(escape(self.t[k]), self.st.label), self.p(v, self.st.body)] for k, v in rows],
                      colWidths=list(widths), splitInRow=1)
        table.setStyle(_tstyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("TOPPADDING", (0, 0), (-1, -1), 1),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
        ]))
        return table

    def section(self, key: str) -> list[Flowable]:
        """A section's heading, on a new page when less than a few lines are left on this one."""
        return [CondPageBreak(40 * MM), self.p(escape(self.t[key]), self.st.h2)]

    # the sections
    def cover(self) -> list[Flowable]:
        f, t, st = self.facts, self.t, self.st
        env = f["envelope"]
        checks = f["verdict"].get("checks") or []
        bad = sum(1 for c in checks if not c.get("ok"))
        ok = bool(f["verdict"].get("ok"))
        more = t["verdict_ok_more" if ok else "verdict_bad_more"].format(n=len(checks), bad=bad)
        out: list[Flowable] = [
            self.p(escape(t["doc_title"]), st.h1),
            self.p(escape(t["subtitle"]), st.note),
            Spacer(1, 4 * MM),
            _box([[self.p(escape(t["verdict_ok" if ok else "verdict_bad"]), st.verdict)],
                  [self.p(escape(more), st.banner)]], _GREEN if ok else _RED),
        ]
        if f.get("interim"):
            out += [Spacer(1, 2 * MM),
                    _box([[self.p(f"<font size='14'>{escape(t['interim'])}</font>", st.banner)],
                          [self.p(escape(t["interim_more"]), st.banner)]], _AMBER)]
        status = STATUS[self.lang].get(f.get("status") or "", f.get("status"))
        colour = "#b3261e" if f.get("status") in ("withdrawn", "declined", "voided") else "#202124"
        rows = [
            ("status", f"<font color='{colour}'>{_x(status)}</font>"),
            ("ref", _x(env.get("ref"))),
            ("title", _x(env.get("title"))),
            ("tenant", _x(env.get("tenant"))),
            ("env", _x(env.get("env"))),
            ("created", _when(env.get("created"), self.lang, " · ")),
            ("generated", _when(f.get("generated"), self.lang, " · ")),
            ("files", _x(f.get("files"))),
        ]
        out += [Spacer(1, 5 * MM), self.kv(rows, (34 * MM, _WIDTH - 34 * MM)), Spacer(1, 2 * MM),
                self.p(escape(t["times_note"]), st.note), self.p(escape(t["conventions"].format(cut=_CUT)), st.note)]
        qr = self.qr(env.get("portal_url"))
        if qr is not None:
            out.append(qr)
        out += [self.p(escape(t["checks_title"]), st.h2)]
        if not checks:
            return [*out, self.p(escape(t["no_checks"]), st.body)]
        rows2 = [[self.p(_x(CHECKS[self.lang].get(str(c.get("name")), c.get("name")))),
                  self.p(escape(t["passed"]) if c.get("ok") else f"<font color='#b3261e'>{escape(t['failed'])}</font>"),
                  self.p(self.check_detail(c))] for c in checks]
        return [*out, _table(self.heads("col_check", "col_result", "col_detail"), rows2,
                             (55 * MM, 18 * MM, _WIDTH - 73 * MM))]

    def check_detail(self, check: dict[str, Any]) -> str:
        """A check's detail: what it establishes in the reader's words, if it passed and they differ from the
        verifier's, then the verifier's own (hashes, files, times), smaller."""
        own = _x(check.get("detail"))
        said = PASSED[self.lang].get(str(check.get("name"))) if check.get("ok") else None
        if said is None:
            return own
        return f"{escape(said)}<br/><font size='7' color='#5f6368'>{own}</font>"

    def qr(self, url: object) -> Flowable | None:
        """The portal page's QR code with its address, or None without one (or one too long to encode)."""
        if not isinstance(url, str) or not url:
            return None
        try:
            matrix = qr_matrix(url)
        except Exception:  # qrcode raises DataOverflowError for an address too long for any QR version
            return None
        text = f"{escape(self.t['qr_caption'])}<br/><font name='{MONO_NAME}' size='7.5'>{_x(url, 300)}</font>"
        block = Table([[_Qr(matrix, _QR_SIZE), self.p(text, self.st.body)]],
                      colWidths=[_QR_SIZE + 4 * MM, _WIDTH - _QR_SIZE - 4 * MM])
        block.setStyle(_tstyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
        return block

    def parties(self) -> list[Flowable]:
        t = self.t
        out = [self.p(escape(t["parties_title"]), self.st.h2), self.p(t["parties_note"], self.st.note)]
        parties = self.facts.get("parties") or []
        if not parties:
            return [*out, self.p(escape(t["no_parties"]), self.st.body)]
        rows = []
        for p in parties:
            name = _x(p.get("name"))
            if p.get("ref") is not None:
                name += f"<br/><font color='#5f6368'>{_x(p['ref'], 120)}</font>"
            role = p.get("role")
            role_text = t.get(f"role_{role}", role) if isinstance(role, str) else role
            methods = ("、" if self.lang == "zh-CN" else ", ").join(self.detail(m) for m in p.get("methods") or [])
            methods = methods or DASH
            signed = _when(p["signed"], self.lang) if p.get("signed") else escape(t["not_signed"])
            role_kind = f"{_x(role_text)}<br/><font color='#5f6368'>{self.detail(p.get('kind'))}</font>"
            rows.append([self.c(_x(p.get("ordinal"))), self.p(name), self.p(role_kind), self.p(_x(p.get("contact"))),
                         self.c(_x(p.get("order"))), self.p(methods), self.p(signed)])
        head = self.heads("col_no", "col_name", "col_role", "col_contact", "col_order", "col_methods", "col_signed")
        return [*out, _table(head, rows, (24, 94, 58, 76, 40, 84, _WIDTH - 376))]

    def documents(self) -> list[Flowable]:
        t = self.t
        out = self.section("documents_title")
        docs = self.facts.get("documents") or []
        if not docs:
            return [*out, self.p(escape(t["no_documents"]), self.st.body)]
        for d in docs:
            title = t["document_n"].format(n=d.get("ordinal"), name="\x00")
            out.append(self.p(escape(title).replace("\x00", _x(d.get("name"), 200)), self.st.h3))
            out.append(self.kv([
                ("doc_ref", _x(d.get("ref"))),
                ("doc_sha256", f"<font name='{MONO_NAME}'>{_x(d.get('sha256'))}</font>"),
                ("doc_size", escape(t["bytes"].format(n=f"{d['size']:,}")) if isinstance(d.get("size"), int)
                 else _x(d.get("size"))),
                ("doc_pages", _x(d.get("pages"))),
            ], (34 * MM, _WIDTH - 34 * MM)))
            versions = d.get("versions") or []
            if versions:
                rows = [[self.c(str(n)), self.p(escape(self.kind(v.get("kind")))), self.p(_x(v.get("label"))),
                         self.mono(v.get("sha256")), self.mono(v.get("file"))] for n, v in enumerate(versions, 1)]
                out += [Spacer(1, 2 * MM),
                        _table(self.heads("col_no", "col_version", "col_label", "col_sha256", "col_file"), rows,
                               (24, 68, 103, 185, _WIDTH - 380))]
            for n, v in enumerate(versions, 1):
                out += self.signatures(n, v)
        return out

    def kind(self, kind: object) -> str:
        return self.t.get(f"kind_{kind}", _plain(kind))

    def signatures(self, n: int, version: dict[str, Any]) -> list[Flowable]:
        t, kind = self.t, self.kind(version.get("kind"))
        sigs = version.get("signatures") or []
        if not sigs:
            return [self.p(escape(t["no_signature"].format(n=n, kind=kind)), self.st.note)]
        rows = [[self.p(_x(s.get("signer"))), self.p(_x(s.get("issuer"))), self.mono(s.get("serial")),
                 self.p(_when(s.get("signing_time"), self.lang, narrow=True)), self.p(_x(s.get("tsa"))),
                 self.p(_when(s.get("tsa_time"), self.lang, narrow=True)),
                 self.p(escape(t["yes"]) if s.get("intact") else f"<font color='#b3261e'>{escape(t['no'])}</font>")]
                for s in sigs]
        head = self.heads("col_signer", "col_issuer", "col_serial", "col_signing_time", "col_tsa", "col_tsa_time",
                          "col_intact")
        return [self.p(escape(t["signatures_of"].format(n=n, kind=kind)), self.st.caption),
                _table(head, rows, (76, 84, 64, 88, 64, 88, _WIDTH - 464))]

    def timeline(self) -> list[Flowable]:
        t = self.t
        out = [*self.section("timeline_title"), self.p(t["timeline_note"], self.st.note)]
        events = self.facts.get("timeline") or []
        if not events:
            return [*out, self.p(escape(t["no_events"]), self.st.body)]
        names = EVENTS[self.lang]
        rows = []
        for e in events:
            kind = e.get("type")
            event = _x(names.get(kind, kind) if isinstance(kind, str) else kind)
            leaf = e.get("leaf_hash")
            short = f"{leaf[:12]}…" if isinstance(leaf, str) and len(leaf) > 12 else leaf
            rows.append([self.c(_x(e.get("seq"))), self.p(_when(e.get("time"), self.lang)),
                         self.p(f"{event}<br/><font color='#5f6368' size='6.5'>{_x(kind)}</font>"),
                         self.c(self.party(e.get("party"))), self.c(self.detail(e.get("method"))),
                         self.c(self.detail(e.get("channel"))), self.c(_x(e.get("index"))), self.mono(short)])
        head = self.heads("col_seq", "col_time", "col_event", "col_party", "col_method", "col_channel", "col_index",
                          "col_leaf")
        return [*out, _table(head, rows, (24, 118, 72, 72, 56, 48, 40, _WIDTH - 430))]

    def crypto(self) -> list[Flowable]:
        t, log = self.t, self.facts.get("log") or {}
        out = [*self.section("crypto_title"), self.p(t["crypto_note"], self.st.note),
               self.kv([("log_origin", _x(log.get("origin"))),
                        ("log_key", f"<font name='{MONO_NAME}' size='7.5'>{_x(log.get('key'))}</font>")],
                       (34 * MM, _WIDTH - 34 * MM))]

        def part(key: str, heads: tuple[str, ...], rows: list[list[Any]], widths: tuple[float, ...]) -> None:
            out.append(self.p(escape(t[key]), self.st.h3))
            out.append(_table(self.heads(*heads), rows, widths) if rows else self.p(escape(t["none_yet"]), self.st.body))

        part("checkpoints", ("col_size", "col_root", "col_file"),
             [[self.c(_x(c.get("size"))), self.mono(c.get("root")), self.mono(c.get("file"))]
              for c in log.get("checkpoints") or []], (45, 270, _WIDTH - 315))
        anchors = []
        for a in log.get("anchors") or []:
            tsa = _x(a.get("tsa"))
            if a.get("tsa") == "local":
                tsa += f"<br/><font color='#8a5a00'>({escape(t['local_tsa'])})</font>"
            anchors.append([self.c(_x(a.get("size"))), self.p(tsa), self.mono(a.get("serial")),
                            self.p(_when(a.get("gen_time"), self.lang)), self.mono(a.get("policy")),
                            self.mono(a.get("file"))])
        part("anchors", ("col_size", "col_tsa", "col_token_serial", "col_gen_time", "col_policy", "col_file"),
             anchors, (40, 78, 68, 114, 85, _WIDTH - 385))
        part("cosignatures", ("col_size", "col_witness", "col_cosigned"),
             [[self.c(_x(c.get("size"))), self.p(_x(c.get("witness"))), self.p(_when(c.get("time"), self.lang))]
              for c in log.get("cosignatures") or []], (45, 250, _WIDTH - 295))
        return out

    def keeping(self) -> list[Flowable]:
        intro, parts = KEEPING[self.lang]
        out = [*self.section("keeping_title"), self.p(escape(intro), self.st.body)]
        for heading, text in parts:
            out.append(KeepTogether([self.p(escape(heading), self.st.h3), self.p(text, self.st.body)]))
        return out

    def verifying(self) -> list[Flowable]:
        out = self.section("verify_title")
        steps = VERIFYING[self.lang]
        for text, commands in steps:
            block: list[Flowable] = [self.p(text, self.st.body)]
            if commands:
                block.append(self.p("<br/>".join(escape(c) for c in commands), self.st.code))
            if any(c.startswith("openssl ts -verify") for c in commands):  # then this bundle's own
                block += self.anchor_commands()
            out.append(KeepTogether(block))
        return out

    def anchor_commands(self) -> list[Flowable]:
        log = self.facts.get("log") or {}
        files = {c.get("size"): c.get("file") for c in log.get("checkpoints") or []}
        lines: list[str] = []
        for a in log.get("anchors") or []:
            checkpoint = files.get(a.get("size"))
            if not checkpoint or not a.get("file"):
                continue
            body = f"body-{a.get('size')}.txt"
            head = f"head -n 3 {checkpoint} > {body}"
            if head not in lines:
                lines.append(head)
            lines.append(f"openssl ts -verify -data {body} -in {a['file']} -CAfile TSA-ROOT.pem")
        if not lines:
            return []
        return [self.p(escape(self.t["anchor_commands"]), self.st.body),
                self.p("<br/>".join(_x(line, 300) for line in lines), self.st.code)]

    def appendix(self) -> list[Flowable]:
        t = self.t
        out = [self.p(escape(t["appendix_title"]), self.st.h2), self.p(t["appendix_note"], self.st.note)]
        events = self.facts.get("timeline") or []
        if not events:
            return [*out, self.p(escape(t["no_events"]), self.st.body)]
        proofs = {p.get("index"): p for p in self.facts.get("proofs") or []}
        rows = []
        for e in events:
            proof = proofs.get(e.get("index"))
            if proof is None:
                size, hashes = DASH, self.p(escape(t["no_proof"]))
            else:
                size = _x(proof.get("size"))
                hashes = self.p("<br/>".join(_x(h, 100) for h in proof.get("hashes") or []) or DASH, self.st.mono)
            rows.append([self.c(_x(e.get("index"))), self.mono(e.get("leaf_hash")), self.c(size), hashes])
        head = self.heads("col_index", "col_leaf", "col_size", "col_proof")
        return [*out, _table(head, rows, (40, 134, 40, _WIDTH - 214))]
