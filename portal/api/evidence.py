"""`GET /api/v1/envelopes/{ref}/evidence`: an envelope's court-ready evidence bundle (zip), streamed.

The key needs the `export` scope and reaches its own tenant's envelopes only (another tenant's
reference is simply unknown: 404). The export is recorded first (`evidence.exported`, through this
process's sequencer or the writer link), the checkpoint holding it is anchored if it is not yet (by the
server's anchoring loop, when this process runs it), and the bundle is built (`ledger.evidence.bundle`)
in a thread; then the zip is streamed, documents read from the blob store as they are sent. Errors
before the first byte are the API's JSON errors; `Ledger-Self-Check` says whether the export's own
check of its evidence passed (the report says so too).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from ledger.anchoring.anchor import Anchorer, clients_for
from ledger.envelopes.core import Ledger
from ledger.errors import NotFoundError, RefusedError
from ledger.evidence.bundle import build, check_lang, export_event, fallback_size, proof_size
from portal.api.routes import _key, _query, _ref
from portal.keys import ANCHORER, HEAD, LEDGER, SUBMIT

routes = web.RouteTableDef()
log = logging.getLogger("portal.api.evidence")
DEFAULT_LANG = "zh-CN"


async def _anchor(request: web.Request, led: Ledger) -> None:
    """Anchor the latest checkpoint now: with the server's anchoring loop, or (a writer without one) a
    short-lived anchorer of its own. A worker cannot: the writer's loop anchors in its own time."""
    anchorer = request.app.get(ANCHORER)
    if anchorer is not None:
        await anchorer.anchor_now()
    elif led.writer:
        async with aiohttp.ClientSession() as session:
            own = Anchorer(led, clients_for(led, session))
            if own.clients:
                await own.anchor_now()


async def _proof_size(request: web.Request, led: Ledger, env: str, index: int) -> int:
    for attempt in range(3):
        if led.writer:
            await led.acatch_up()
        else:
            led.log.refresh()
        size = await asyncio.to_thread(proof_size, led, index)
        if size is not None:
            return size
        if attempt < 2 and (request.app.get(ANCHORER) is not None or led.writer):
            await _anchor(request, led)
        else:
            break
    return await asyncio.to_thread(fallback_size, led, env, index)


@routes.get("/api/v1/envelopes/{ref}/evidence")
async def evidence(request: web.Request) -> web.StreamResponse:
    """The envelope's evidence bundle; `?lang=zh-CN|en` for the report (default zh-CN)."""
    key = await _key(request, "export")
    lang = check_lang(_query(request, ("lang",)).get("lang", DEFAULT_LANG))
    ref, led = _ref(request), request.app[LEDGER]
    env = str((await asyncio.to_thread(led.envelope, key.tenant, ref))["env"])  # 404 before anything is written
    (ack,) = await request.app[SUBMIT](key.tenant, [export_event(ref, f"API key {key.id}")])
    size = await _proof_size(request, led, env, int(ack["index"]))
    try:
        head: str | None = await request.app[HEAD](env, size)
    except (RefusedError, NotFoundError):  # the envelope moved on meanwhile: the bundle goes without
        head = None
    bundle = await asyncio.to_thread(build, led, key.tenant, ref, size=size, head=head, lang=lang)
    resp = web.StreamResponse(headers={
        "Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{bundle.name}"',
        "Cache-Control": "no-store", "Ledger-Self-Check": "passed" if bundle.ok else "failed",
        "Ledger-Index": str(ack["index"]), "Ledger-Leaf-Hash": ack["leaf_hash"]})
    await resp.prepare(request)
    chunks = bundle.chunks()
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        if chunk:
            await resp.write(chunk)
    await resp.write_eof()
    log.info("exported the evidence of envelope %s (%d files, self-check %s)", env, len(bundle.members),
             "passed" if bundle.ok else "FAILED")
    return resp
