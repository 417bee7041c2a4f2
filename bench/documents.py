"""`python -m bench documents`: printed copies of a 20-page PDF, beside qpdf stamping the same marks.

1. QR-stamped copies per second: `ledger.documents.stamp.stamp_copy` (QR block on every page, an
   incremental update), one copy number after another, for `--seconds`.
2. The peer: `qpdf <in.pdf> --overlay <stamp.pdf> --repeat=1 -- <out.pdf>` with a ready-made stamp
   page (the same marks, drawn once beforehand), run as a process as a service would run it, in the
   same run on the same machine. The ratio is our time per copy over qpdf's; the target is at most 2.
   qpdf rewrites the whole file (no incremental update: signatures in it would break) and draws nothing
   itself, so it is a floor, not an equal.
3. Watermarked pages per second: the same with a tiled bilingual watermark on every page.
4. Sealing the 20-page PDF (PAdES B-T with the local TSA's round trip, `ledger.documents.seal`) against
   pyHanko's own bare `sign_pdf` of the same file with the same key and time-stamper (target: within
   1.2x), and, for scale, the visible seal and B-LT (`bench.sealing`).

`EXTRA_ROWS` is the hook for further measurements over the same document (a sealing run, say): each
entry is a name and a function of the 20-page PDF that returns (copies per second, a note).
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reportlab.pdfgen.canvas import Canvas

from bench import report
from ledger.documents import marks
from ledger.documents.stamp import StampLayout, Watermark, stamp_copy

PAGES = 20
URL = "https://ledger.example.com/v/7KQ2M9XH4TZ1B6C8D0EF#k=3f9a1c0b7e52d8a4&d=9c41e0b2a7d3f5e6"
CODE = "7KQ2M-9XH4T-Z1B6C-8D0EF"
PRINTED = "2026-03-14T09:26:53Z"
A4 = (595.28, 841.89)

# Hook for further rows over the same 20-page PDF: name -> function(pdf) -> (copies/s, note).
EXTRA_ROWS: dict[str, Callable[[bytes], tuple[float, str]]] = {}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench documents", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="length of each measurement (default 3)")
    return p.parse_args(argv)


def contract(pages: int = PAGES) -> bytes:
    """A text contract of `pages` A4 pages, some 40 lines each."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, invariant=1)
    for n in range(1, pages + 1):
        c.setFont("Helvetica", 10)
        for line in range(40):
            c.drawString(60, A4[1] - 60 - 18 * line, f"Page {n}, clause {line + 1}: the parties agree as set out "
                                                     "in the schedule, which forms part of this contract.")
        c.showPage()
    c.save()
    return out.getvalue()


def rate(work: Callable[[int], object], seconds: float) -> float:
    """Calls of `work(i)` per second, over at least `seconds` (after one warm-up call)."""
    work(0)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or n < 3:
        n += 1
        work(n)
    return n / elapsed


def stamp_page(size: tuple[float, float]) -> bytes:
    """The ready-made stamp page for qpdf: the QR block as `stamp_copy` draws it on this page size."""
    layout = StampLayout()
    s = layout.qr_mm * marks.MM
    m = layout.margin_mm * marks.MM
    lines = ("ledger.example.com", CODE, f"第 1 份 · 打印于 {PRINTED}", f"copy 1, printed {PRINTED}")
    block = marks.QrBlock(URL, lines, size[0] - m - s, m, s, text_right=False)
    return marks.draw_marks([marks.Sheet(size[0], size[1], block, None, None)])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print(report.machine_header(report.machine_info()))
    pdf = contract()
    layout = StampLayout()

    def ours(i: int) -> bytes:
        return stamp_copy(pdf, qr_url=URL, code_grouped=CODE, domain="ledger.example.com", copy_no=i + 1,
                          printed_at=PRINTED, layout=layout)

    mark = Watermark("机密 CONFIDENTIAL")

    def watermarked(i: int) -> bytes:
        return stamp_copy(pdf, qr_url=URL, code_grouped=CODE, domain="ledger.example.com", copy_no=i + 1,
                          printed_at=PRINTED, layout=layout, watermark=mark)

    rows: list[tuple[str, float, str]] = []
    ours_rate = rate(ours, args.seconds)
    rows.append(("stamp_copy, QR on 20 pages", ours_rate, "copies/s, incremental update"))

    qpdf = shutil.which("qpdf")
    qpdf_rate = None
    if qpdf is None:
        rows.append(("qpdf --overlay", float("nan"), "qpdf is not installed (./scripts/system-deps --bench)"))
    else:
        with tempfile.TemporaryDirectory() as d:
            src, stamp, dst = Path(d, "in.pdf"), Path(d, "stamp.pdf"), Path(d, "out.pdf")
            src.write_bytes(pdf)
            stamp.write_bytes(stamp_page(A4))

            def peer(i: int) -> None:
                subprocess.run([qpdf, str(src), "--overlay", str(stamp), "--repeat=1", "--", str(dst)],
                               check=True, capture_output=True)

            qpdf_rate = rate(peer, args.seconds)
        rows.append(("qpdf --overlay, ready-made stamp", qpdf_rate, "copies/s, whole file rewritten"))

    wm_rate = rate(watermarked, args.seconds)
    rows.append(("stamp_copy + tiled watermark", wm_rate * PAGES, "pages/s"))
    for name, measure in EXTRA_ROWS.items():
        value, note = measure(pdf)
        rows.append((name, value, note))
    from bench import sealing  # the PAdES seal of a 20-page PDF, with the local TSA's round trip

    sealed = sealing.measure(pdf_pages=PAGES)
    rows.append(("seal (PAdES B-T, local TSA)", sealed["ours_s"] * 1000, "ms a seal"))
    rows.append(("pyHanko's own sign_pdf, same key/TSA", sealed["bare_sign_pdf_s"] * 1000, "ms a seal"))
    rows.append(("seal with the visible appearance", sealed["visible_seal_s"] * 1000, "ms a seal"))
    rows.append(("seal at B-LT (certs and CRL embedded)", sealed["b_lt_s"] * 1000, "ms a seal"))

    print(f"\n{PAGES}-page A4 PDF of {len(pdf)} bytes; a stamped copy adds {len(ours(0)) - len(pdf)} bytes")
    for name, value, note in rows:
        print(f"  {name:<36} {value:>10.1f}  {note}")
    if qpdf_rate:
        ratio = qpdf_rate / ours_rate
        verdict = "within" if ratio <= 2 else "NOT within"
        print(f"\n  time per copy, stamp_copy / qpdf: {ratio:.2f} ({verdict} the target of 2)")
    verdict = "within" if sealed["ratio"] <= 1.2 else "NOT within"
    print(f"  time per seal, ours / bare pyHanko: {sealed['ratio']:.2f} ({verdict} the target of 1.2)")
    return 0
