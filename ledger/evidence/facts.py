"""The facts the evidence report states (`ledger.evidence.report.render_report(facts, lang=...)`).

Everything here comes from the collected bundle and from the verifier's own check of it: the entries
(the timeline, parties, documents, the replayed status), the openings (names, contacts, the title:
None where an opening was erased), the checkpoints, anchors and cosignatures, the inclusion proofs, the
PDF signature checks of the included versions, and the self-check's verdict. Times are RFC 3339 UTC
with milliseconds, as in entries. The shape is the report's contract: keep it in step with report.py.

What it does not do: render (report.py) or check (verifier.evidence).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from asn1crypto import tsp

from ledger.evidence.collect import Collected
from verifier.evidence.bundle import Evidence
from verifier.evidence.manifest import Manifest

LABELS = {
    "en": {"original": "Original", "signed": "Signed by {who}", "sealed": "Sealed by the platform",
           "scan": "Scan of printed copy {copy}", "scan_any": "Scan of a printed copy", "party": "party {n}"},
    "zh-CN": {"original": "原件", "signed": "{who}签署版", "sealed": "平台电子印章版", "scan": "第{copy}份纸质副本扫描件",
              "scan_any": "纸质副本扫描件", "party": "第{n}方"},
}


def ms(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds, as entries hold times."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms_text(text: str) -> str:
    try:
        return ms(datetime.fromisoformat(text.replace("Z", "+00:00"))) or text
    except ValueError:
        return text


def _policy(tsr: bytes) -> str:
    try:
        content = tsp.TimeStampResp.load(tsr)["time_stamp_token"]["content"]
        tst = content["encap_content_info"]["content"].parsed
        return str(tst["policy"].dotted)
    except Exception:  # noqa: BLE001  # a token the check refused: the report shows it as failed
        return ""


def _pages(data: bytes) -> int | None:
    try:
        import pypdfium2

        doc = pypdfium2.PdfDocument(data)
        try:
            return len(doc)
        finally:
            doc.close()
    except Exception:  # noqa: BLE001  # not a PDF a reader opens: no page count
        return None


def make_facts(col: Collected, ev: Evidence, *, lang: str, generated: str, manifest_bytes: bytes,
               files: int) -> dict[str, Any]:
    """The facts dict of the report (see report.py's `render_report`)."""
    m = col.manifest
    assert m is not None
    words = LABELS.get(lang, LABELS["en"])
    entries = col.entries
    opened = col.openings

    def opening(commitment: Any, key: str) -> Any:
        return opened.get(commitment, {}).get(key) if isinstance(commitment, str) else None

    created = next((e for _, e in entries if e.type == "envelope.created"), None)
    parties: list[dict[str, Any]] = []
    for _, e in entries:
        d = e.data
        if e.type == "party.added":
            n = d["party"]
            parties.append({"ordinal": n, "ref": col.refs.get(("party", n)), "name": opening(d["identity"], "name"),
                            "role": d["role"], "kind": d.get("kind"), "contact": opening(d["identity"], "contact"),
                            "order": d.get("order"), "methods": [], "signed": None})
    by_no = {p["ordinal"]: p for p in parties}
    for _, e in entries:
        p = by_no.get(e.data.get("party"))
        if p is None:
            continue
        if e.type == "party.authenticated" and e.data["method"] not in p["methods"]:
            p["methods"].append(e.data["method"])
        elif e.type == "party.signed" and p["signed"] is None:
            p["signed"] = e.time
    return {
        "lang": lang, "generated": generated, "interim": m.interim, "status": ev.status or m.envelope.status,
        "verdict": {"ok": ev.ok, "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in ev.checks]},
        "envelope": {"ref": m.envelope.ref, "tenant": m.envelope.tenant,
                     "title": opening(created.data.get("title"), "title") if created else None,
                     "env": m.envelope.env, "created": created.time if created else "",
                     "portal_url": m.envelope.portal_url},
        "parties": parties,
        "documents": _documents(col, m, ev, words, by_no, opening),
        "timeline": [{"index": idx, "seq": e.seq, "time": e.time, "type": e.type, "party": e.data.get("party"),
                      "method": e.data.get("method"), "channel": e.data.get("channel"), "leaf_hash": e.leaf.hex()}
                     for idx, e in entries],
        "log": {"origin": m.log.origin, "key": m.log.verifier_key,
                "checkpoints": [{"size": c.size, "root": _root(col, c.body), "file": c.note} for c in m.log.checkpoints],
                "anchors": [{"size": a.size, "tsa": a.tsa, "serial": a.serial, "gen_time": _ms_text(a.gen_time),
                             "policy": _policy(col.read(a.file, 1 << 20)), "file": a.file} for a in m.log.anchors],
                "cosignatures": [{"size": size, "witness": w, "time": ms(datetime.fromtimestamp(t, UTC))}
                                 for w, size, t in ev.witnessed]},
        "proofs": [dict(p) for p in ev.proofs],
        "manifest": manifest_bytes,
        "files": files,
    }


def _root(col: Collected, body_file: str) -> str:
    import base64

    lines = col.read(body_file, 1 << 16).decode().split("\n")
    return base64.b64decode(lines[2]).hex() if len(lines) > 2 else ""


def _documents(col: Collected, m: Manifest, ev: Evidence, words: dict[str, str], parties: dict[int, dict[str, Any]],
               opening: Any) -> list[dict[str, Any]]:
    added = {e.data["document"]: e.data for _, e in col.entries if e.type == "document.added"}
    out = []
    for d in m.documents:
        data = added.get(d.ordinal, {})
        versions = []
        pages = None
        for v in d.versions:
            rep = ev.pdfs.get(v.file) if v.file else None
            if v.kind == "original" and v.file is not None and v.file.endswith(".pdf"):
                pages = _pages(col.read(v.file, 1 << 30))
            who = parties.get(v.party or 0, {}).get("name") or words["party"].format(n=v.party)
            label = (words["signed"].format(who=who) if v.kind == "signed" else
                     words["scan"].format(copy=v.copy) if v.kind == "scan" and v.copy else
                     words["scan_any"] if v.kind == "scan" else words[v.kind])
            versions.append({"kind": v.kind, "label": label, "sha256": v.sha256, "file": v.file, "signatures": [
                {"signer": s.signer, "issuer": s.issuer, "serial": str(s.serial), "signing_time": ms(s.signing_time),
                 "tsa": s.tsa, "tsa_time": ms(s.tsa_time), "intact": s.intact}
                for s in (rep.signatures if rep else ())]})
        out.append({"ordinal": d.ordinal, "ref": col.refs.get(("document", d.ordinal)),
                    "name": opening(data.get("name"), "name"), "sha256": d.sha256, "size": int(data.get("size", 0)),
                    "pages": pages, "versions": versions})
    return out
