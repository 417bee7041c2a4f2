"""Demo data: envelopes in every state, with real PDF documents and printed copies (QR codes).

Made once per ledger: run again, `create_demo` writes nothing for the envelopes that are there and reads
their latest printed copies back, so their QR URLs are printed with the current `public_url`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
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


def demo_signed_pdf(sha: str, party: str) -> bytes:
    """The demo's stand-in for a party's signed PDF of a document: a file of its own, registered as the
    version that party signed (`party.signed`'s `signed_sha256`)."""
    return demo_pdf("Signed copy", f"Document SHA-256 {sha[:32]}\nSigned electronically by party {party}")


def _sign(ref: str, pid: str, sha: str, method: str = "face", channel: str = "app",
          ledger: Ledger | None = None) -> list[dict[str, Any]]:
    pdf = demo_signed_pdf(sha, pid)
    signed = ledger.blobs.put(pdf)[0] if ledger is not None else hashlib.sha256(pdf).hexdigest()
    return [
        {"type": "party.viewed", "envelope": ref, "party": pid},
        {"type": "party.authenticated", "envelope": ref, "party": pid, "method": method},
        {"type": "party.signed", "envelope": ref, "party": pid, "channel": channel, "document": "main",
         "signed_sha256": signed, "seal": hashlib.sha256(f"seal:{pid}".encode()).hexdigest()},
    ]


_TWO = [("lessor", "Zhang San", 1), ("lessee", "Li Si", 2)]


DEMO_SEAL = "Lessor Co., Ltd. 合同专用章"


def demo_seal(ledger: Ledger) -> str:
    """The demo tenant's physical contract seal (a drawn impression), registered once; its fingerprint."""
    from ledger.documents.sealstamp import draw_seal, png_bytes
    from ledger.envelopes import seals

    image = png_bytes(draw_seal("Lessor Co., Ltd."))
    fingerprint = hashlib.sha256(image).hexdigest()
    if seals.seal_of(ledger.log.conn, TENANT, fingerprint) is None:
        seals.register(ledger.log, ledger.blobs, TENANT, kind="physical", name=DEMO_SEAL, image=image,
                       parties=["lessor"])
    return fingerprint


def _completed(ledger: Ledger, ref: str) -> list[dict[str, Any]]:
    ev, sha = _envelope(ledger, ref, "Office lease agreement", _TWO)
    ev += _sign(ref, "lessor", sha, "ukey", "ukey", ledger) + [
        {"type": "seal.used", "envelope": ref, "party": "lessor", "seal": demo_seal(ledger), "kind": "physical"}]
    ev += _sign(ref, "lessee", sha, "sms", "h5", ledger)
    return ev + [{"type": "envelope.completed", "envelope": ref},
                 {"type": "copy.printed", "envelope": ref, "document": "main"}]


def _in_progress(ledger: Ledger, ref: str) -> list[dict[str, Any]]:
    ev, sha = _envelope(ledger, ref, "Equipment purchase contract", _TWO, download="code")
    return ev + _sign(ref, "lessor", sha, ledger=ledger) + [
        {"type": "copy.printed", "envelope": ref, "document": "main"}]


def _withdrawn(ledger: Ledger, ref: str) -> list[dict[str, Any]]:
    ev, _ = _envelope(ledger, ref, "Consulting agreement", _TWO)
    return ev + [{"type": "copy.printed", "envelope": ref, "document": "main"},
                 {"type": "envelope.withdrawn", "envelope": ref, "reason": "Wrong counterparty"}]


def _declined(ledger: Ledger, ref: str) -> list[dict[str, Any]]:
    ev, sha = _envelope(ledger, ref, "Freight carriage agreement", _TWO, download="none")
    return ev + _sign(ref, "lessor", sha, ledger=ledger) + [
        {"type": "copy.printed", "envelope": ref, "document": "main"},
        {"type": "party.authenticated", "envelope": ref, "party": "lessee", "method": "password"},
        {"type": "party.declined", "envelope": ref, "party": "lessee", "reason": "Price changed"}]


def _void(ledger: Ledger, ref: str) -> list[dict[str, Any]]:
    ev, sha = _envelope(ledger, ref, "Vehicle lease", _TWO)
    ev += _sign(ref, "lessor", sha, ledger=ledger) + _sign(ref, "lessee", sha, "fingerprint", "mini-program", ledger)
    return ev + [{"type": "envelope.completed", "envelope": ref},
                 {"type": "copy.printed", "envelope": ref, "document": "main"},
                 {"type": "void.requested", "envelope": ref, "party": "lessor", "reason": "Signed in error"},
                 {"type": "void.consented", "envelope": ref, "party": "lessee"},
                 {"type": "envelope.voided", "envelope": ref}]


DEMOS = (("DEMO-COMPLETED", _completed), ("DEMO-IN-PROGRESS", _in_progress), ("DEMO-WITHDRAWN", _withdrawn),
         ("DEMO-DECLINED", _declined), ("DEMO-VOID", _void))
# The access codes the ledger gave the demo's documents: it shows each once and keeps only its hash, so the
# demo keeps them here (mode 0600, in the ledger folder) to show them with its copies every time.
ACCESS_CODES = "demo-access-codes.json"


def create_demo(ledger: Ledger) -> list[dict[str, str]]:
    """Create the demo envelopes the ledger does not have yet (none written for those it has); return the
    latest printed copy of each, as the database holds it: ref, status, code, access code ("" if none)."""
    codes = _kept_access_codes(ledger)
    out: list[dict[str, str]] = []
    for ref, events in DEMOS:
        if _row(ledger, ref) is None:
            # the demo stored each document's bytes itself (ledger.blobs.put), as an upload does
            parsed = [uploaded(e) if e.type in ("document.added", "party.signed") else e
                      for e in parse_events(events(ledger, ref))]
            access = next((a["access_code"] for a in ledger.append(TENANT, parsed) if "access_code" in a), "")
            if access:
                codes[ref] = access
                _keep_access_codes(ledger, codes)
        status, code = _row(ledger, ref) or ("", "")
        out.append({"envelope": ref, "status": status, "code": code, "access_code": codes.get(ref, "")})
    return out


def _row(ledger: Ledger, ref: str) -> tuple[str, str] | None:
    """A demo envelope's status and the code of its latest printed copy ("" if none), or None if it is not there."""
    row = ledger.log._reader().execute(
        "SELECT e.status, coalesce((SELECT c.code FROM copies c WHERE c.env = e.env ORDER BY c.idx DESC LIMIT 1), '')"
        " FROM envelopes e WHERE e.tenant = ? AND e.ref = ?", (TENANT, ref)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def _kept_access_codes(ledger: Ledger) -> dict[str, str]:
    path = ledger.home / ACCESS_CODES
    try:
        kept = json.loads(path.read_text()) if path.exists() else _from_demo_txt(ledger.home / "demo.txt")
    except (OSError, ValueError):  # unreadable: the demo goes on without showing them
        return {}
    return {k: v for k, v in kept.items() if isinstance(v, str)} if isinstance(kept, dict) else {}


def _from_demo_txt(path: Path) -> dict[str, str]:
    """The access codes in the `ledger demo` output `./scripts/run` kept as demo.txt in ledgers it made before."""
    text = path.read_text() if path.exists() else ""
    return dict(re.findall(r"(?m)^\S+\s+(DEMO-[A-Z-]+)\s.*access code ([0-9A-Z]+)\s*$", text))


def _keep_access_codes(ledger: Ledger, codes: dict[str, str]) -> None:
    fd = os.open(ledger.home / ACCESS_CODES, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(codes, f, indent=2)


DEMO_NOTARY = "demo-notary.localhost/w"


def demo_notary(ledger: Ledger) -> tuple[str, int]:
    """A demo notary: a witness key in the ledger folder (made once, listed in `witnesses`), which
    cosigns the latest checkpoint, so the copy pages show a witness. Returns (name, size cosigned)."""
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
