"""The evidence report as a reader gets it: the PDF is rendered to pixels and its text extracted with
pdfium (and poppler's tools), so what is asserted is what a judge sees, copies and searches, not what
the code meant to draw."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import zxingcpp

from ledger.envelopes.wording import DETAILS, EVENTS
from ledger.evidence.report import render_report

PARTIES = [
    (1, "上海示例贸易有限公司", "organization", ["ukey"], "legal@example.cn"),
    (2, "张三", "person", ["face", "sms"], "+86 138 0000 0000"),
    (3, "John Smith", "person", ["passport-manual", "email"], "john@example.com"),
]
# The first 20 events of a completed contract: (type, party, method, channel).
EVENTS_20: list[tuple[str, int | None, str | None, str | None]] = [
    ("envelope.created", None, None, None), ("document.added", None, None, None),
    ("document.added", None, None, None), ("party.added", 1, None, None), ("party.added", 2, None, None),
    ("party.added", 3, None, None), ("envelope.sent", None, None, None), ("party.viewed", 1, None, None),
    ("party.authenticated", 1, "ukey", None), ("party.signed", 1, None, "ukey"), ("party.viewed", 2, None, None),
    ("party.authenticated", 2, "face", None), ("party.authenticated", 2, "sms", None),
    ("party.signed", 2, None, "mini-program"), ("party.viewed", 3, None, None),
    ("party.authenticated", 3, "passport-manual", None), ("party.signed", 3, None, "web"),
    ("envelope.completed", None, None, None), ("document.sealed", None, None, None),
    ("copy.printed", None, None, None),
]
MANIFEST = json.dumps({"format": 1, "files": [{"path": "report.pdf", "sha256": "0" * 64}]}, indent=2).encode()


def h(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def iso(second: int) -> str:
    """A time of the log: 2026-12-06T10:00:00.000Z plus `second` seconds."""
    minutes, s = divmod(second, 60)
    hours, m = divmod(minutes, 60)
    return f"2026-12-06T{10 + hours:02d}:{m:02d}:{s:02d}.{second % 1000:03d}Z"


def make_facts(n_events: int = 20, **over: Any) -> dict[str, Any]:
    events = [EVENTS_20[i] if i < len(EVENTS_20) else ("party.viewed", 1 + i % 3, None, None)
              for i in range(n_events)]
    timeline = [{"index": 104_500 + 7 * i, "seq": i, "time": iso(i * 13), "type": kind, "party": party,
                 "method": method, "channel": channel, "leaf_hash": h("leaf", i)}
                for i, (kind, party, method, channel) in enumerate(events)]
    signed = {e["party"]: e["time"] for e in timeline if e["type"] == "party.signed"}
    size = 104_500 + 7 * n_events + 3

    def signature(n: int) -> dict[str, Any]:
        return {"signer": PARTIES[n][1], "issuer": "CN=Example Sign CA, O=Example CA Ltd, C=CN",
                "serial": f"{0x4F1A2B3C + n:x}", "signing_time": iso(200 + n), "tsa": "TSA of Example",
                "tsa_time": iso(201 + n), "intact": True}

    facts: dict[str, Any] = {
        "lang": "en", "generated": "2026-12-06T12:00:00.000Z", "interim": False, "status": "completed",
        "verdict": {"ok": True, "checks": [
            {"name": "manifest hashes", "ok": True, "detail": "42 files, every SHA-256 matches"},
            {"name": "inclusion proofs", "ok": True, "detail": f"{n_events} entries in checkpoint {size}"},
            {"name": "anchors", "ok": True, "detail": "2 RFC 3161 tokens verify against their TSA roots"},
        ]},
        "envelope": {"ref": "HT-2026-000123", "tenant": "example-trading", "title": "房屋租赁合同 Lease agreement",
                     "env": "env_7QK2M9", "created": iso(0), "portal_url": "https://ledger.example/v/ABCDE12345FGHJK67890"},
        "parties": [{"ordinal": o, "ref": f"p-{o}", "name": name, "role": "signer", "kind": kind, "contact": contact,
                     "order": o, "methods": methods, "signed": signed.get(o)}
                    for o, name, kind, methods, contact in PARTIES],
        "documents": [
            {"ordinal": 1, "ref": "main", "name": "lease.pdf", "sha256": h("doc", 1), "size": 184_233, "pages": 6,
             "versions": [
                 {"kind": "original", "label": "uploaded", "sha256": h("doc", 1), "file": "documents/1-original.pdf",
                  "signatures": []},
                 {"kind": "signed", "label": "signed by party 3", "sha256": h("doc", 1, "signed"),
                  "file": "documents/1-signed-3.pdf", "signatures": [signature(0), signature(1), signature(2)]},
                 {"kind": "sealed", "label": "platform e-seal", "sha256": h("doc", 1, "sealed"),
                  "file": "documents/1-sealed.pdf", "signatures": [signature(2)]},
             ]},
            {"ordinal": 2, "ref": "annex", "name": "附件一 房屋清单.pdf", "sha256": h("doc", 2), "size": 20_011,
             "pages": None,
             "versions": [
                 {"kind": "original", "label": "uploaded", "sha256": h("doc", 2), "file": "documents/2-original.pdf",
                  "signatures": []},
                 {"kind": "scan", "label": "paper copy 1", "sha256": h("doc", 2, "scan"), "file": None,
                  "signatures": []},
             ]},
        ],
        "timeline": timeline,
        "log": {
            "origin": "ledger.example/log", "key": "ledger.example/log+8d2f1c3a+AQm4YrVb0Q8rXcZ3e0l3QyQ0u1g2h3i4j5k6l7m8n9o=",
            "checkpoints": [{"size": size, "root": h("root", size), "file": f"checkpoints/{size}"}],
            "anchors": [
                {"size": size, "tsa": "local", "serial": "1f3a", "gen_time": iso(400),
                 "policy": "1.3.6.1.4.1.57264.3161.1", "file": f"anchors/{size}-local.tsr"},
                {"size": size, "tsa": "freetsa.org", "serial": "04a1b2c3d4", "gen_time": iso(402),
                 "policy": "1.2.3.4.1", "file": f"anchors/{size}-freetsa.tsr"},
            ],
            "cosignatures": [{"size": size, "witness": "notary.example/w1", "time": iso(410)}],
        },
        "proofs": [{"index": e["index"], "size": size, "hashes": [h("proof", e["index"], k) for k in range(17)]}
                   for e in timeline],
        "manifest": MANIFEST,
        "files": 42,
    }
    facts.update(over)
    return facts


def pages_text(pdf: bytes) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [page.get_textpage().get_text_bounded() for page in doc]
    finally:
        doc.close()


def squash(text: str) -> str:
    """Text without whitespace: a cell's words may wrap anywhere."""
    return "".join(text.split())


def has(text: str, needle: str) -> bool:
    return squash(needle) in squash(text)


@pytest.fixture(scope="module")
def en() -> bytes:
    return render_report(make_facts(), lang="en")


@pytest.fixture(scope="module")
def zh() -> bytes:
    return render_report(make_facts(lang="zh-CN"), lang="zh-CN")


def test_the_cover_is_drawn_with_its_verdict_and_qr_code(en: bytes) -> None:
    doc = pdfium.PdfDocument(en)
    image = doc[0].render(scale=1).to_pil().convert("RGB")
    doc.close()
    raw = image.tobytes()
    pixels = list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    dark = sum(1 for r, g, b in pixels if r + g + b < 200)
    green = sum(1 for r, g, b in pixels if abs(r - 0x1B) < 12 and abs(g - 0x6E) < 12 and abs(b - 0x3A) < 12)
    assert dark > 5_000, "the cover is (nearly) blank"  # text and the QR code's modules
    assert green > 20_000, "the green VERIFIED banner is missing"
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [make_facts()["envelope"]["portal_url"]]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_report_holds_every_party_event_and_index(lang: str, en: bytes, zh: bytes) -> None:
    pdf = en if lang == "en" else zh
    facts = make_facts()
    text = "\n".join(pages_text(pdf))
    assert has(text, "VERIFIED" if lang == "en" else "已验证")
    assert not has(text, "NOT VERIFIED" if lang == "en" else "未通过验证")
    for party in facts["parties"]:
        assert has(text, party["name"])
        for method in party["methods"]:
            assert has(text, DETAILS[lang][method])
    for event in facts["timeline"]:
        assert has(text, EVENTS[lang][event["type"]]), event["type"]
        assert str(event["index"]) in text
    for words in (facts["envelope"]["ref"], facts["envelope"]["title"], "lease.pdf", "附件一 房屋清单.pdf",
                  facts["documents"][0]["sha256"], facts["log"]["anchors"][1]["serial"], "notary.example/w1",
                  facts["log"]["key"], "verifier verify bundle.zip", "openssl ts -verify",
                  "anchors/104643-freetsa.tsr", facts["proofs"][5]["hashes"][16], facts["timeline"][19]["leaf_hash"]):
        assert has(text, words), words


def test_english_times_are_utc_and_chinese_times_beijing_time(en: bytes, zh: bytes) -> None:
    en_text, zh_text = "\n".join(pages_text(en)), "\n".join(pages_text(zh))
    # Report generated at 2026-12-06T12:00:00.000Z
    assert has(en_text, "2026-12-06 12:00:00 (UTC) · 2026-12-06T12:00:00Z")
    assert has(zh_text, "2026-12-06 20:00:00 (北京时间) · 2026-12-06T12:00:00Z")
    assert has(zh_text, "已完成 - 各方均已签署") and has(en_text, "COMPLETED - signed by every party")


def test_every_page_has_its_number_and_the_reference(en: bytes, zh: bytes) -> None:
    for pdf, page in ((en, "page {x} of {y}"), (zh, "第 {x} 页 共 {y} 页")):
        pages = pages_text(pdf)
        assert len(pages) >= 4
        for x, text in enumerate(pages, 1):
            assert has(text, page.format(x=x, y=len(pages))), (x, text[-200:])
            assert has(text, "HT-2026-000123")


def test_the_font_is_embedded(tmp_path: Path, en: bytes, zh: bytes) -> None:
    for name, pdf in (("en", en), ("zh", zh)):
        (tmp_path / f"{name}.pdf").write_bytes(pdf)
        out = subprocess.run(["pdffonts", str(tmp_path / f"{name}.pdf")], capture_output=True, text=True,
                             check=True).stdout
        rows = out.splitlines()[2:]
        assert any("WenQuanYiMicroHei" in row for row in rows), out
        for row in rows:  # name type... emb sub uni object ID: every font embedded, with a ToUnicode map
            emb, sub, uni = row.split()[-5:-2]
            assert (emb, uni) == ("yes", "yes"), row


def test_the_manifest_is_attached_byte_for_byte(tmp_path: Path, en: bytes) -> None:
    doc = pdfium.PdfDocument(en)
    try:
        assert doc.count_attachments() == 1
        attachment = doc.get_attachment(0)
        assert attachment.get_name() == "manifest.json"
        assert bytes(attachment.get_data()) == MANIFEST
    finally:
        doc.close()
    (tmp_path / "r.pdf").write_bytes(en)
    subprocess.run(["pdfdetach", "-saveall", "-o", str(tmp_path), str(tmp_path / "r.pdf")], check=True)
    assert (tmp_path / "manifest.json").read_bytes() == MANIFEST


def test_an_interim_report_says_so() -> None:
    facts = make_facts(12, interim=True, status="sent")
    for lang, words in (("en", "INTERIM - the contract is still in progress"), ("zh-CN", "中期报告 - 合同仍在签署中")):
        cover = pages_text(render_report(facts, lang=lang))[0]
        assert has(cover, words)
        assert has(cover, "IN PROGRESS" if lang == "en" else "签署中")


def test_a_failed_self_check_says_not_verified_and_which_check() -> None:
    facts = make_facts()
    facts["verdict"] = {"ok": False, "checks": [
        *facts["verdict"]["checks"], {"name": "anchor 104643-freetsa", "ok": False, "detail": "imprint mismatch"}]}
    for lang, verdict, failed in (("en", "NOT VERIFIED", "FAILED"), ("zh-CN", "未通过验证", "未通过")):
        pdf = render_report(facts, lang=lang)
        cover = pages_text(pdf)[0]
        assert has(cover, verdict) and has(cover, failed) and has(cover, "imprint mismatch")
        assert has(cover, "1 of 4 checks failed" if lang == "en" else "4 项检查中有 1 项未通过")


def test_250_events_split_over_pages_with_repeated_headers() -> None:
    facts = make_facts(250)
    started = time.perf_counter()
    pdf = render_report(facts, lang="en")
    assert time.perf_counter() - started < 8
    pages = pages_text(pdf)
    timeline_pages = [p for p in pages if has(p, "Log index") and has(p, "Leaf hash") and "Seq." in p]
    assert len(timeline_pages) >= 5
    text = "\n".join(pages)
    for event in facts["timeline"]:
        assert str(event["index"]) in text
    appendix_pages = [p for p in pages if has(p, "Inclusion proof hashes")]
    assert len(appendix_pages) >= 10
    assert has(pages[-1], facts["proofs"][-1]["hashes"][16])


def test_hostile_text_is_shown_literally() -> None:
    facts = make_facts()
    facts["parties"][0]["name"] = "<b>Mallory</b> & Co <font size=40>x</font> &amp; &#169;"
    facts["parties"][1]["name"] = "\u202eevil.exe\u202c and שלום"
    facts["parties"][2]["name"] = "Dr. " + "Verylongname" * 40  # 480 characters, no space to break at
    facts["envelope"]["title"] = "Line one\nline two\x00\x07 ]]> <![CDATA[ x ]]>"
    facts["envelope"].update(tenant="租户" * 3000, ref="REF-" + "長" * 3000, env="环境" * 3000)
    facts["parties"][1]["contact"] = "联系" * 3000
    for lang in ("en", "zh-CN"):
        pdf = render_report(facts, lang=lang)
        text = "\n".join(pages_text(pdf))
        assert has(text, "<b>Mallory</b> & Co <font size=40>x</font> &amp; &#169;")
        assert has(text, "[U+202E]evil.exe[U+202C] and [U+05E9][U+05DC][U+05D5][U+05DD]")
        assert has(text, "Dr. " + "Verylongname" * 20)
        assert has(text, "Line one line two[U+0000][U+0007] ]]> <![CDATA[ x ]]>")
        assert has(text, "… [+5600]")  # the tenant, cut; the bundle holds it whole


def test_missing_values_and_no_parties() -> None:
    facts = make_facts(3, status="draft", interim=True, parties=[], documents=[], proofs=[])
    facts["envelope"].update(title=None, portal_url=None)
    facts["log"].update(anchors=[], cosignatures=[])
    facts["timeline"][0].update(party=None, method=None, channel=None)
    for lang, none in (("en", "No party has been added"), ("zh-CN", "该合同尚未添加参与方")):
        text = "\n".join(pages_text(render_report(facts, lang=lang)))
        assert has(text, none)
        assert has(text, "—")


def test_unknown_words_are_shown_as_the_log_has_them() -> None:
    facts = make_facts(1)
    facts["timeline"][0].update(type="future.event", method="iris-scan", party=7)
    facts["status"] = "archived"
    text = "\n".join(pages_text(render_report(facts, lang="zh-CN")))
    assert has(text, "future.event") and has(text, "iris-scan") and has(text, "archived")
    assert has(text, "7. 参与方 7")


def test_a_report_of_20_events_renders_quickly() -> None:
    """Well under half a second each, once the font is registered (once per process)."""
    render_report(make_facts(), lang="zh-CN")
    for lang in ("en", "zh-CN"):
        runs = [copy.deepcopy(make_facts(lang=lang)) for _ in range(3)]
        started = time.perf_counter()
        for facts in runs:
            render_report(facts, lang=lang)
        mean = (time.perf_counter() - started) / len(runs)
        assert mean < 0.5, f"{lang}: {mean:.3f} s a report"


def test_an_unknown_language_is_refused() -> None:
    from ledger.errors import RefusedError

    with pytest.raises(RefusedError, match="no report wording for language 'fr'"):
        render_report(make_facts(), lang="fr")
