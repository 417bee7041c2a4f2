"""Print-ready copies and downloaded copies of an envelope's documents.

A printed copy is the latest version of the document whose bytes the ledger holds (the original, or a
newer version uploaded since, a scan excepted), with that copy's QR code, the printed domain, the
grouped code and "copy k, printed <time>" stamped as an incremental update (`ledger.documents.stamp`),
and the tenant's watermark (`[[printing]]` in config.toml). A download of a void contract carries the
large "作废 / VOID" mark with the void date on every page, and the tenant's watermark when it asks
for it. The copy itself (its code, number and time) is the `copy.printed` entry's: this module only
draws what the log says.

What it does not do: append the `copy.printed` event (the caller does, through the sequencer), or
decide who may print or download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger.config import PrintConfig
from ledger.documents.qr import grouped
from ledger.documents.stamp import StampLayout, VoidMark, Watermark, mark_download, stamp_copy
from ledger.envelopes.core import Ledger
from ledger.errors import RefusedError
from verifier.entry import Entry


@dataclass(frozen=True)
class Source:
    """The bytes a copy is made from: which version, its SHA-256 and its registered name."""

    sha256: str
    name: str
    pdf: bytes


def document_of(led: Ledger, tenant: str, ref: str, document_ref: str) -> tuple[str, int]:
    """The envelope's id and the ordinal of the document the platform names `document_ref`."""
    env = str(led.envelope(tenant, ref)["env"])
    row = led.log._reader().execute("SELECT ordinal FROM refs WHERE env = ? AND kind = 'document' AND ref = ?",
                                    (env, document_ref)).fetchone()
    if row is None:
        raise RefusedError(f"envelope {ref!r} has no document {document_ref!r}", code="unknown_document", status=404)
    return env, int(row[0])


def latest_version(led: Ledger, env: str, document: int) -> Source:
    """The newest registered version of a document whose bytes are in the blob store (not a scan: a scan
    is a picture of a copy, not a copy to print again)."""
    r = led.log._reader()
    row = r.execute("SELECT sha256, idx FROM documents WHERE env = ? AND document = ?", (env, document)).fetchone()
    if row is None:
        raise RefusedError(f"the envelope has no document {document}", code="unknown_document", status=404)
    candidates = [(int(row[1]), str(row[0]))] + [(int(i), str(sha)) for sha, i in r.execute(
        "SELECT sha256, idx FROM versions WHERE env = ? AND document = ? AND kind != 'scan'", (env, document))]
    held = held_by(led, env)
    for _, sha in sorted(candidates, reverse=True):
        if sha in held and led.blobs.path(sha).is_file():
            name = _name(led, env, int(row[1]))
            return Source(sha, name, led.blobs.open(sha).read_bytes())
    raise RefusedError("the ledger holds no bytes of this document: it was registered by its hash only; upload it "
                       "(POST /api/v1/envelopes/{ref}/documents) to print or download copies", code="no_bytes",
                       status=409)


def held_by(led: Ledger, env: str) -> set[str]:
    """The SHA-256s of the bytes an envelope may serve: those its tenant sent (an upload, a scan) or the
    ledger made for it (a sealed version). Every hash in the log is public: another tenant's file that
    happens to be in the shared blob store is never one of them."""
    return {sha for (sha,) in led.log._reader().execute("SELECT sha256 FROM holdings WHERE env = ?", (env,))}


def _name(led: Ledger, env: str, idx: int) -> str:
    data = Entry.from_bytes(led.log.entry(idx, within=led.log.newest_size())).data
    row = led.log._reader().execute("SELECT value FROM openings WHERE env = ? AND commitment = ?",
                                    (env, data["name"])).fetchone()
    return str(json.loads(row[0]).get("name", "")) if row else ""


def layout_of(p: PrintConfig) -> StampLayout:
    return StampLayout(corner=p.corner, qr_mm=p.qr_mm, margin_mm=p.margin_mm, pages=p.pages)  # type: ignore[arg-type]


def watermark_of(p: PrintConfig) -> Watermark | None:
    if not p.watermark:
        return None
    return Watermark(p.watermark, font_size=p.watermark_size, colour=p.watermark_colour,
                     opacity=p.watermark_opacity, angle=p.watermark_angle, tiled=p.watermark_tiled)


def printed_copy(led: Ledger, tenant: str, ack: dict[str, Any]) -> tuple[bytes, str]:
    """The print-ready PDF of the copy a `copy.printed` acknowledgement names, and a file name for it."""
    if ack.get("type") != "copy.printed" or "code" not in ack:
        raise ValueError("not the acknowledgement of a printed copy")
    entry = Entry.from_bytes(led.log.entry(ack["index"], within=ack["checkpoint_size"]))
    document, copy_no = int(entry.data["document"]), int(entry.data["copy"])
    source = latest_version(led, entry.env, document)
    p = led.config.printing_for(tenant)
    pdf = stamp_copy(source.pdf, qr_url=led.qr_url(ack["code"]), code_grouped=grouped(ack["code"]),
                     domain=led.config.public_host, copy_no=copy_no, printed_at=entry.time, layout=layout_of(p),
                     watermark=watermark_of(p), max_bytes=led.config.max_document_bytes)
    stem = (source.name[:-4] if source.name.lower().endswith(".pdf") else source.name) or "document"
    return pdf, f"{stem}-copy-{copy_no}.pdf"


def downloaded_copy(led: Ledger, tenant: str, view: dict[str, Any]) -> bytes:
    """The document a copy's page offers for download, as it is downloaded: the registered original, with
    the VOID mark once the contract is void, and the tenant's watermark if it asks for one on downloads."""
    pdf = led.blobs.open(view["document"]["sha256"]).read_bytes()
    p = led.config.printing_for(tenant)
    void = VoidMark(view["times"].get("voided", "")[:10]) if view["status"] == "voided" else None
    watermark = watermark_of(p) if p.watermark_downloads else None
    return mark_download(pdf, watermark=watermark, void=void, max_bytes=led.config.max_document_bytes)


def tenant_of(led: Ledger, env: str) -> str:
    row = led.log._reader().execute("SELECT tenant FROM envelopes WHERE env = ?", (env,)).fetchone()
    return str(row[0]) if row else ""
