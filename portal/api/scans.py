"""`POST /api/v1/envelopes/{ref}/scans`: a scan of a paper copy, signed or sealed by hand, comes back.

The scan (PDF, JPEG or PNG) is streamed to a temporary file of the blob store, size-limited; the QR
code on it names the printed copy (`ledger.documents.scans`), which must be a copy of this envelope;
then the scan is stored under its SHA-256 and `paper.scanned` registers it as a version of that copy's
document. Whatever is refused on the way leaves nothing stored. A retry with the same Idempotency-Key
and the same scan is answered with the first answer.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from aiohttp import web

from ledger.documents import scans
from ledger.envelopes.core import Ledger, uploaded
from ledger.envelopes.events import parse_events
from ledger.errors import RefusedError
from portal.api.routes import _acks_response, _idempotency, _key, _query, _ref, _stored, _submit
from portal.body import chunks
from portal.keys import LEDGER, UPLOAD_LIMIT
from verifier.entry import Entry

routes = web.RouteTableDef()


def _copy_of(led: Ledger, env: str, code: str) -> tuple[str, int] | None:
    """(your reference of the document, copy number) of the printed copy `code`, if it is one of `env`."""
    row = led.log._reader().execute(
        "SELECT r.ref, c.copy FROM copies c JOIN refs r ON r.env = c.env AND r.kind = 'document'"
        " AND r.ordinal = c.document WHERE c.code = ? AND c.env = ?", (code, env)).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def _with_scan(led: Ledger, ack: dict[str, Any]) -> dict[str, Any]:
    """A scan's acknowledgement with what its entry registered: the scan's SHA-256 and size, the copy and
    your reference of the document."""
    data = Entry.from_bytes(led.log.entry(ack["index"], within=ack["checkpoint_size"])).data
    (document,) = led.log._reader().execute(
        "SELECT ref FROM refs WHERE env = ? AND kind = 'document' AND ordinal = ?",
        (ack["env"], data["document"])).fetchone()
    size = led.blobs.open(data["sha256"]).stat().st_size
    return {**ack, "sha256": data["sha256"], "size": size, "copy": data["copy"], "document": document}


@routes.post("/api/v1/envelopes/{ref}/scans")
async def upload_scan(request: web.Request) -> web.Response:
    """Register a scan of a printed copy: the QR code on it names the copy; the scan is stored."""
    key = await _key(request, "append")
    request.app[UPLOAD_LIMIT].check_key(key.id)  # a platform's backend is one client of many uploads
    ref = _ref(request)
    _query(request, ())
    led = request.app[LEDGER]
    content_type = request.content_type
    if content_type not in scans.CONTENT_TYPES:
        raise RefusedError(f"send the scan as {', '.join(scans.CONTENT_TYPES)}", code="unsupported_media_type",
                           status=415)
    info = await asyncio.to_thread(led.envelope, key.tenant, ref)
    if info["status"] not in ("sent", "completed"):
        raise RefusedError(f"paper.scanned on {ref!r}: a scan of a paper copy is registered while the envelope "
                           f"is sent or completed; it is {info['status']}", code="wrong_state", status=409)
    if request.content_length is not None and request.content_length > led.blobs.max_size:
        raise RefusedError(f"the scan is larger than the limit of {led.blobs.max_size} bytes", code="too_large",
                           status=413)
    up = led.blobs.upload()
    try:
        body = bytearray()
        async for chunk in chunks(request):
            up.write(chunk)
            body += chunk
        # the request is the scan itself: a retry must send the same bytes
        idem = _idempotency(request, key, hashlib.sha256(body).digest())
        if idem is not None and (stored := await _stored(request, idem)) is not None:
            up.abort()
            return _acks_response(request, [await asyncio.to_thread(_with_scan, led, stored[0])])
        codes = await asyncio.to_thread(scans.find_codes, bytes(body), content_type)
        if len(codes) > 1:
            raise RefusedError(f"the scan holds the QR codes of {len(codes)} printed copies; send the scan of each "
                               "copy on its own", code="several_copies", status=422)
        copy = await asyncio.to_thread(_copy_of, led, info["env"], codes[0])
        if copy is None:  # unknown, or another envelope's: either way, not said whose
            raise RefusedError(f"the QR code on the scan is not one of a printed copy of envelope {ref!r}; scan a "
                               "copy printed for this envelope", code="wrong_copy", status=422)
        document, copy_no = copy
        (event,) = parse_events({"type": "paper.scanned", "envelope": ref, "document": document,
                                 "sha256": up.h.hexdigest(), "copy": copy_no})
    except BaseException:
        up.abort()
        raise
    await asyncio.to_thread(up.finish)
    acks = await _submit(request, key, [uploaded(event)], idem)  # its bytes are this tenant's: it may print them
    return _acks_response(request, [await asyncio.to_thread(_with_scan, led, acks[0])])
