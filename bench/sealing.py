"""The cost of a PAdES e-seal (`ledger.documents.seal.seal_pdf`) beside pyHanko's bare `sign_pdf`.

Both seal the same reportlab PDF of `pdf_pages` pages with the same key (a fresh local seal CA's,
ECDSA P-256) and the same `LocalTsaTimeStamper` (the local TSA answered in-process, its serial
counter fsynced per token), at level B-T and without an appearance, so the difference is what
`seal_pdf` adds: its checks of the input, the certificate and the page, and a field name. Runs are
interleaved after one warm-up each, and the median of `repeat` runs is reported; the visible seal
(drawn and stamped on the last page) and B-LT (with the DSS) are timed too, for scale. The target is
a ratio (ours / bare, invisible) within 1.2.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from ledger.anchoring.tsa import LocalTsa, create_local_tsa
from ledger.documents.seal import LocalTsaTimeStamper, Sealer, ValidationData, seal_pdf
from ledger.documents.sealca import create_seal_ca
from verifier._cms import quiet_pyhanko

with quiet_pyhanko():  # pyHanko's signers import DSA, which cryptography warns of on every run
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
from ledger.documents.sealstamp import SealAppearance

TARGET_RATIO = 1.2


def make_pdf(pages: int) -> bytes:
    """A contract-like PDF: `pages` A4 pages of text."""
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4, invariant=True)
    for n in range(1, pages + 1):
        for line in range(40):
            c.drawString(72, 780 - 18 * line, f"Page {n}, clause {line + 1}: the parties agree as follows.")
        c.showPage()
    c.save()
    return out.getvalue()


def _timed(fn: Callable[[], bytes], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def measure(pdf_pages: int = 20, repeat: int = 5) -> dict[str, Any]:
    """Seconds per seal: ours (invisible, visible, B-LT) and pyHanko's bare `sign_pdf`, and the ratio."""
    with tempfile.TemporaryDirectory(prefix="bench-sealing-") as tmp:
        now = datetime.now(UTC)
        create_local_tsa(Path(tmp) / "tsa", now=now)
        tsa = LocalTsa.load(Path(tmp) / "tsa")
        seal = create_seal_ca(Path(tmp) / "ca", organisation="某某科技有限公司", now=now)
        sealer = Sealer.from_local_seal(seal)
        timestamper = LocalTsaTimeStamper(tsa)
        data = ValidationData.for_local(seal, tsa.root_der)
        pdf = make_pdf(pdf_pages)

        def ours() -> bytes:
            return seal_pdf(pdf, sealer, timestamper=timestamper, appearance=None)

        def bare() -> bytes:
            meta = signers.PdfSignatureMetadata(
                field_name="Seal", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
            )
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
            return signers.sign_pdf(writer, meta, sealer.signer, timestamper=timestamper).getvalue()

        def visible() -> bytes:
            return seal_pdf(pdf, sealer, timestamper=timestamper, appearance=SealAppearance())

        def blt() -> bytes:
            return seal_pdf(
                pdf, sealer, timestamper=timestamper, appearance=None, level="B-LT", validation_data=data
            )

        runs: dict[str, list[float]] = {"ours": [], "bare": [], "visible": [], "b_lt": []}
        fns = {"ours": ours, "bare": bare, "visible": visible, "b_lt": blt}
        for fn in fns.values():
            fn()  # warm-up: imports, the timestamper's size probe, font loading
        for _ in range(repeat):
            for name, fn in fns.items():
                runs[name] += _timed(fn, 1)
        med = {name: statistics.median(samples) for name, samples in runs.items()}
        ratio = med["ours"] / med["bare"]
        return {
            "pdf_pages": pdf_pages,
            "pdf_bytes": len(pdf),
            "repeat": repeat,
            "ours_s": round(med["ours"], 4),
            "bare_sign_pdf_s": round(med["bare"], 4),
            "ratio": round(ratio, 3),
            "target_ratio": TARGET_RATIO,
            "within_target": ratio <= TARGET_RATIO,
            "visible_seal_s": round(med["visible"], 4),
            "b_lt_s": round(med["b_lt"], 4),
        }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2, ensure_ascii=False))
