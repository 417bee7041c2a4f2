"""`ledger export` and `GET /api/v1/envelopes/{ref}/evidence`: one envelope's court-ready evidence bundle.

An export (1) records itself: an `evidence.exported` event is appended to the envelope; (2) chooses the
proof checkpoint: the smallest anchored checkpoint that holds the export's own event (one a witness
also cosigned, if there is one), anchoring the latest checkpoint now if none is anchored yet; when
this process cannot anchor (a worker of `ledger serve --workers N`), the smallest anchored one that
holds every event before the export; (3) gets the log's signed statement that these are all of the
envelope's events (the envelope head) when it can; (4) collects the evidence files
(`ledger.evidence.collect`) and checks them with the offline verifier itself (`verifier.evidence`),
at the time of the export and with the bundle's own keys and roots; (5) renders the report from the
facts and that self-check (`ledger.evidence.report`), seals it with the platform's seal
(`ledger.envelopes.sealing.seal_report`); (6) writes the zip, streaming: small files from memory,
documents from the blob store in chunks, never the whole bundle in memory.

An envelope still in progress is exported too: the bundle and the report say INTERIM. What it does not
do: check who may export (the CLI is the operator; the API checks the key's `export` scope and tenant).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ledger.envelopes import sealing
from ledger.envelopes.core import Ledger, format_time
from ledger.envelopes.events import InputEvent, parse_events
from ledger.errors import LedgerError, NotFoundError, RefusedError
from ledger.evidence.collect import Collected, Member, collect
from ledger.evidence.facts import make_facts
from verifier.evidence.bundle import Trust, check_evidence, parse_time
from verifier.evidence.manifest import MANIFEST, REPORT, VERIFY_MD, Manifest

log = logging.getLogger("ledger.evidence")
LANGS = ("zh-CN", "en")
EXPORTED_BY_CLI = "ledger export (command line)"
_CHUNK = 1 << 20


class NotAnchoredError(LedgerError):
    """No anchored checkpoint holds the envelope's events yet: try again once one is anchored."""

    code = "not_anchored"
    status = 503


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise RefusedError(f"the report's language is one of {', '.join(LANGS)}, not {lang!r}", code="bad_lang")
    return lang


def export_event(ref: str, by: str) -> InputEvent:
    """The `evidence.exported` event an export appends (`by` is kept as a commitment)."""
    (event,) = parse_events({"type": "evidence.exported", "envelope": ref, "by": by})
    return event


def proof_size(led: Ledger, index: int) -> int | None:
    """The smallest anchored checkpoint of this process's tree holding entry `index`, one also cosigned
    by a witness if there is one."""
    r = led.log._reader()
    top = led.log.size
    (size,) = r.execute("SELECT min(a.size) FROM anchors a WHERE a.renews IS NULL AND a.size > ? AND a.size <= ?"
                        " AND EXISTS (SELECT 1 FROM cosignatures c WHERE c.size = a.size)", (index, top)).fetchone()
    if size is None:
        (size,) = r.execute("SELECT min(size) FROM anchors WHERE renews IS NULL AND size > ? AND size <= ?",
                            (index, top)).fetchone()
    return None if size is None else int(size)


def fallback_size(led: Ledger, env: str, index: int) -> int:
    """When the export's own event cannot be anchored now: the anchored checkpoint holding every event
    of the envelope before it. Raises `NotAnchoredError` if there is none."""
    (before,) = led.log._reader().execute("SELECT max(idx) FROM envelope_entries WHERE env = ? AND idx < ?",
                                          (env, index)).fetchone()
    size = proof_size(led, int(before)) if before is not None else None
    if size is None:
        raise NotAnchoredError("no anchored checkpoint holds this envelope's events yet, and this process cannot "
                               "anchor one now; try again once the anchoring loop has run (anchor_interval_s)")
    return size


def anchor_now(led: Ledger) -> None:
    """Anchor the latest checkpoint with every configured TSA, now (for the command line)."""
    import asyncio

    import aiohttp

    from ledger.anchoring.anchor import Anchorer, clients_for

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            anchorer = Anchorer(led, clients_for(led, session))
            if anchorer.clients:
                await anchorer.anchor_now()

    asyncio.run(run())


def sign_head(led: Ledger, env: str, size: int) -> str | None:
    """The envelope head for the proof checkpoint, or None when the envelope has moved on since."""
    try:
        return led.envelope_head(env, size)
    except (RefusedError, NotFoundError):
        return None


@dataclass
class Export:
    """A built bundle: its files in zip order, the zip's manifest, and the self-check's outcome."""

    name: str
    members: list[Member]
    manifest: Manifest
    ok: bool
    generated: str

    def chunks(self) -> Iterator[bytes]:
        """The zip, in pieces of about 1 MiB; documents are read from the blob store as they are written."""
        sink = _Sink()
        stamp = _zip_time(self.generated)
        with zipfile.ZipFile(sink, "w", allowZip64=True) as zf:
            for m in self.members:
                info = zipfile.ZipInfo(m.path, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED if m.compressed else zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                info.file_size = m.size
                with zf.open(info, "w") as out:
                    if m.data is not None:
                        out.write(m.data)
                    elif m.blob is not None:
                        with open(m.blob, "rb") as f:
                            while chunk := f.read(_CHUNK):
                                out.write(chunk)
                                if len(sink.buf) >= _CHUNK:
                                    yield sink.take()
                if len(sink.buf) >= _CHUNK:
                    yield sink.take()
        yield sink.take()

    def write(self, f: BinaryIO) -> int:
        n = 0
        for chunk in self.chunks():
            f.write(chunk)
            n += len(chunk)
        return n


class _Sink(io.RawIOBase):
    """A write-only, unseekable file the zip is written into and taken out of in pieces."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.buf += b
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


def _zip_time(generated: str) -> tuple[int, int, int, int, int, int]:
    t = parse_time(generated) or datetime(1980, 1, 1)
    return (max(t.year, 1980), t.month, t.day, t.hour, t.minute, t.second)


def _render(facts: dict[str, Any], lang: str) -> bytes:
    try:
        report = importlib.import_module("ledger.evidence.report")
    except ModuleNotFoundError as e:
        if e.name != "ledger.evidence.report":
            raise
        raise LedgerError("this installation cannot render the evidence report (ledger.evidence.report is "
                          "missing)", code="no_report") from None
    return bytes(report.render_report(facts, lang=lang))


def _seal(led: Ledger, pdf: bytes) -> bytes:
    seal_report = getattr(sealing, "seal_report", None)
    if seal_report is None:
        raise LedgerError("this installation cannot seal the evidence report "
                          "(ledger.envelopes.sealing.seal_report is missing)", code="no_report_seal")
    return bytes(seal_report(led, pdf))


def _portal_url(led: Ledger, env: str) -> str | None:
    row = led.log._reader().execute("SELECT code FROM copies WHERE env = ? ORDER BY idx DESC LIMIT 1",
                                    (env,)).fetchone()
    return led.qr_url(str(row[0])) if row else None


def build(led: Ledger, tenant: str, ref: str, *, size: int, head: str | None, lang: str) -> Export:
    """Collect, self-check, report, seal: the bundle of envelope `ref` about the proof checkpoint `size`."""
    generated = format_time(led.clock)
    env = str(led.envelope(tenant, ref)["env"])
    col: Collected = collect(led, tenant, ref, size=size, head=head, lang=lang, generated=generated,
                             portal_url=_portal_url(led, env))
    inner = col.manifest
    assert inner is not None
    at = parse_time(generated)
    assert at is not None
    _, ev = check_evidence(inner, col, Trust(log_key=led.verifier), at)
    if not ev.ok:
        log.warning("the evidence of envelope %s does not pass its own check: %s", env,
                    "; ".join(c.line() for c in ev.checks if not c.ok)[:2000])
    inner_bytes = inner.to_bytes()
    facts = make_facts(col, ev, lang=lang, generated=generated, manifest_bytes=inner_bytes,
                       files=len(inner.files) + 2)
    report = _seal(led, _render(facts, lang))
    outer = inner.with_report(report, hashlib.sha256(report).hexdigest(), hashlib.sha256(inner_bytes).hexdigest())
    manifest_bytes = outer.to_bytes()
    first = [Member(MANIFEST, hashlib.sha256(manifest_bytes).hexdigest(), len(manifest_bytes), data=manifest_bytes),
             col.members[VERIFY_MD],
             Member(REPORT, hashlib.sha256(report).hexdigest(), len(report), data=report)]
    rest = [m for p, m in sorted(col.members.items(), key=lambda x: (x[0].startswith("documents/"), x[0]))
            if p != VERIFY_MD]
    return Export(f"{ref}-evidence.zip", first + rest, outer, ev.ok, generated)


def export(led: Ledger, tenant: str, ref: str, *, lang: str, by: str = EXPORTED_BY_CLI) -> Export:
    """Everything an export does, on the command line's ledger (a writer): record, anchor, build."""
    check_lang(lang)
    env = str(led.envelope(tenant, ref)["env"])  # an unknown envelope is refused before anything is written
    (ack,) = led.append(tenant, [export_event(ref, by)])
    index = int(ack["index"])
    size = proof_size(led, index)
    if size is None:
        anchor_now(led)
        size = proof_size(led, index)
    if size is None:
        size = fallback_size(led, env, index)
    return build(led, tenant, ref, size=size, head=sign_head(led, env, size), lang=lang)


def write_file(bundle: Export, path: Path) -> int:
    """Write the zip to `path` (mode 0600: it holds the openings) through a temporary file beside it."""
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            n = bundle.write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
