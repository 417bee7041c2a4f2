"""The report an export carries: sealed with the platform's seal (valid for pyHanko and for Debian's
pdfsig), and holding the parties, every event and the verdict, in Chinese and in English."""

from __future__ import annotations

import io
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from ledger.envelopes.wording import EVENTS
from tests.evidence.conftest import World
from verifier.documents.pdfsig import check_pdf
from verifier.entry import Entry


def report_of(bundle: bytes) -> bytes:
    return zipfile.ZipFile(io.BytesIO(bundle)).read("report.pdf")


def text_of(pdf: bytes) -> str:
    doc = pdfium.PdfDocument(pdf)
    try:
        return " ".join(" ".join(doc[i].get_textpage().get_text_range().split()) for i in range(len(doc)))
    finally:
        doc.close()


@pytest.mark.parametrize(("lang", "verdict"), [("en", "VERIFIED"), ("zh-CN", "已验证")])
def test_the_exported_report_is_sealed_and_readable(world: World, tmp_path: Path, lang: str, verdict: str) -> None:
    bundle = world.export("completed", lang)
    pdf = report_of(bundle)
    home = world.led.home
    roots = [(home / "seal" / "seal-root.pem").read_bytes(), (home / "tsa" / "tsa-root.pem").read_bytes()]
    report = check_pdf(pdf, roots=roots, at=datetime.now(UTC))
    (sig,) = report.signatures
    assert report.ok and sig.intact and sig.trusted and sig.timestamp_ok and not sig.changed_after_signing, \
        report.lines()
    (tmp_path / "report.pdf").write_bytes(pdf)
    out = subprocess.run(["pdfsig", "-nocert", str(tmp_path / "report.pdf")], capture_output=True, text=True,
                         timeout=60).stdout
    assert "Signature is Valid" in out, out
    text = text_of(pdf)
    assert verdict in text
    assert ("生命周期重放" in text) == (lang == "zh-CN"), "the self-check's names are in the reader's words"
    # and what each check that passed establishes (the verifier's own detail follows, as it wrote it)
    flat = "".join(text.split())
    for said in ("按合同生命周期规则重放全部事件", "文件上的电子印章完整、可信", "证据包中的每个文件都与清单所列"):
        assert (said in flat) == (lang == "zh-CN"), said
    assert "replay" in text.lower(), "the verifier's own detail is there in both"
    for name in ("Zhang San", "Example Trading Co., Ltd.", "Li Si"):
        assert name in text, name
    # every event of the envelope, in the reader's words, with its log index
    z = zipfile.ZipFile(io.BytesIO(bundle))
    entries = {int(Path(n).stem): Entry.from_bytes(z.read(n)) for n in z.namelist() if n.startswith("entries/")}
    assert {e.type for e in entries.values()} >= {"envelope.created", "party.signed", "envelope.completed",
                                                   "copy.printed", "paper.scanned", "document.sealed"}
    for index, e in entries.items():
        assert str(index) in text and EVENTS[lang][e.type] in text, (index, e.type)


def test_one_changed_byte_in_the_report_breaks_its_seal(world: World, tmp_path: Path) -> None:
    pdf = bytearray(report_of(world.export("completed")))
    at = pdf.index(b"/Producer") if b"/Producer" in pdf else len(pdf) // 3
    pdf[at + 2] ^= 0x01
    home = world.led.home
    roots = [(home / "seal" / "seal-root.pem").read_bytes(), (home / "tsa" / "tsa-root.pem").read_bytes()]
    report = check_pdf(bytes(pdf), roots=roots, at=datetime.now(UTC))
    assert not report.ok
    (tmp_path / "r.pdf").write_bytes(bytes(pdf))
    out = subprocess.run(["pdfsig", "-nocert", str(tmp_path / "r.pdf")], capture_output=True, text=True,
                         timeout=60).stdout
    assert "Signature is Valid" not in out, out
