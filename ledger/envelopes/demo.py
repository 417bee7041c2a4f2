"""Demo data: envelopes in every state, with real PDF documents and printed copies (QR codes)."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from ledger.envelopes.core import Ledger, uploaded
from ledger.envelopes.events import parse_events

TENANT = "demo"


def demo_pdf(title: str, body: str) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    c.setTitle(title)
    c.setFont("Helvetica-Bold", 18)
    c.drawString(72, 760, title)
    c.setFont("Helvetica", 11)
    for i, line in enumerate(body.split("\n")):
        c.drawString(72, 720 - 16 * i, line)
    c.showPage()
    c.save()
    return buf.getvalue()


def _envelope(ledger: Ledger, ref: str, title: str, parties: list[tuple[str, str, int]],
              download: str = "public") -> tuple[list[dict[str, Any]], str]:
    pdf = demo_pdf(title, f"Reference {ref}\nThis agreement is a demonstration document.")
    sha, size = ledger.blobs.put(pdf)
    ev: list[dict[str, Any]] = [
        {"type": "envelope.created", "envelope": ref, "title": title},
        {"type": "document.added", "envelope": ref, "document": "main", "sha256": sha, "size": size,
         "name": f"{ref}.pdf", "download": download},
    ]
    for pid, name, order in parties:
        ev.append({"type": "party.added", "envelope": ref, "party": pid, "role": "signer", "order": order,
                   "name": name})
    ev.append({"type": "envelope.sent", "envelope": ref})
    return ev, sha


def _sign(ref: str, pid: str, sha: str, method: str = "face", channel: str = "app") -> list[dict[str, Any]]:
    signed = hashlib.sha256(f"{sha}:{pid}".encode()).hexdigest()
    return [
        {"type": "party.viewed", "envelope": ref, "party": pid},
        {"type": "party.authenticated", "envelope": ref, "party": pid, "method": method},
        {"type": "party.signed", "envelope": ref, "party": pid, "channel": channel, "document": "main",
         "signed_sha256": signed, "seal": hashlib.sha256(f"seal:{pid}".encode()).hexdigest()},
    ]


def create_demo(ledger: Ledger) -> list[dict[str, str]]:
    """Create the demo envelopes; return one printed copy per envelope: ref, status, code, access code."""
    two = [("lessor", "Zhang San", 1), ("lessee", "Li Si", 2)]
    out: list[dict[str, str]] = []

    def run(ref: str, events: list[dict[str, Any]]) -> None:
        # the demo stored each document's bytes itself (ledger.blobs.put), as an upload does
        parsed = [uploaded(e) if e.type == "document.added" else e for e in parse_events(events)]
        acks = ledger.append(TENANT, parsed)
        code = next((a["code"] for a in acks if "code" in a), "")
        access = next((a["access_code"] for a in acks if "access_code" in a), "")
        out.append({"envelope": ref, "status": ledger.envelope(TENANT, ref)["status"], "code": code,
                    "access_code": access})

    ev, sha = _envelope(ledger, "DEMO-COMPLETED", "Office lease agreement", two)
    ev += _sign("DEMO-COMPLETED", "lessor", sha, "ukey", "ukey") + _sign("DEMO-COMPLETED", "lessee", sha, "sms", "h5")
    ev += [{"type": "envelope.completed", "envelope": "DEMO-COMPLETED"},
           {"type": "copy.printed", "envelope": "DEMO-COMPLETED", "document": "main"}]
    run("DEMO-COMPLETED", ev)

    ev, sha = _envelope(ledger, "DEMO-IN-PROGRESS", "Equipment purchase contract", two, download="code")
    ev += _sign("DEMO-IN-PROGRESS", "lessor", sha)
    ev += [{"type": "copy.printed", "envelope": "DEMO-IN-PROGRESS", "document": "main"}]
    run("DEMO-IN-PROGRESS", ev)

    ev, sha = _envelope(ledger, "DEMO-WITHDRAWN", "Consulting agreement", two)
    ev += [{"type": "copy.printed", "envelope": "DEMO-WITHDRAWN", "document": "main"},
           {"type": "envelope.withdrawn", "envelope": "DEMO-WITHDRAWN", "reason": "Wrong counterparty"}]
    run("DEMO-WITHDRAWN", ev)

    ev, sha = _envelope(ledger, "DEMO-DECLINED", "Freight carriage agreement", two, download="none")
    ev += _sign("DEMO-DECLINED", "lessor", sha)
    ev += [{"type": "copy.printed", "envelope": "DEMO-DECLINED", "document": "main"},
           {"type": "party.authenticated", "envelope": "DEMO-DECLINED", "party": "lessee", "method": "password"},
           {"type": "party.declined", "envelope": "DEMO-DECLINED", "party": "lessee", "reason": "Price changed"}]
    run("DEMO-DECLINED", ev)

    ev, sha = _envelope(ledger, "DEMO-VOID", "Vehicle lease", two)
    ev += _sign("DEMO-VOID", "lessor", sha) + _sign("DEMO-VOID", "lessee", sha, "fingerprint", "mini-program")
    ev += [{"type": "envelope.completed", "envelope": "DEMO-VOID"},
           {"type": "copy.printed", "envelope": "DEMO-VOID", "document": "main"},
           {"type": "void.requested", "envelope": "DEMO-VOID", "party": "lessor", "reason": "Signed in error"},
           {"type": "void.consented", "envelope": "DEMO-VOID", "party": "lessee"},
           {"type": "envelope.voided", "envelope": "DEMO-VOID"}]
    run("DEMO-VOID", ev)
    return out


DEMO_NOTARY = "demo-notary.localhost/w"


def demo_notary(ledger: Ledger) -> tuple[str, int]:
    """A demo notary: a witness key in the ledger folder (made once, listed in `witnesses`), which
    cosigns the latest checkpoint, so the copy pages show a witness. Returns (name, size cosigned)."""
    import os
    import re

    from ledger.anchoring import witness
    from verifier.note import CosignatureSigner, parse_note

    path = ledger.home / "demo-notary.key"
    if path.exists():  # (a key file of PEM alone, as demos made it before, takes the demo's name)
        notary = CosignatureSigner.from_key_file(path.read_bytes(), DEMO_NOTARY)
    else:
        notary, key_file = CosignatureSigner.generate(DEMO_NOTARY)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_file)
    vkey = notary.verifier.to_string()
    if vkey not in ledger.config.witnesses:
        ledger.config = ledger.config.replace(witnesses=(*ledger.config.witnesses, vkey))
        cfg = ledger.home / "config.toml"
        line = f"witnesses = {json.dumps(list(ledger.config.witnesses))}"
        text = cfg.read_text() if cfg.exists() else ""
        text, n = re.subn(r"(?m)^witnesses = .*$", lambda _: line, text)
        cfg.write_text(text if n else text + line + "\n")
    note = parse_note(ledger.log.latest_checkpoint)
    cosigned = note.with_signature(notary.sign(note.text, int(ledger.clock().timestamp()))).to_text()
    witness.store(ledger, cosigned)
    return DEMO_NOTARY, int(note.text.split("\n")[1])
