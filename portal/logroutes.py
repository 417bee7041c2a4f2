"""C2SP log endpoints: /checkpoint, /tile/<L>/<N>[.p/<W>], /tile/entries/<N>[.p/<W>], /log-key."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ledger.errors import NotFoundError
from portal.keys import LEDGER
from verifier.errors import FormatError
from verifier.tiles import parse_tile_path

routes = web.RouteTableDef()
IMMUTABLE = "public, max-age=31536000, immutable"


@routes.get("/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    led = request.app[LEDGER]
    return web.Response(text=led.log.latest_checkpoint, content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "no-cache, max-age=2"})


@routes.get("/log-key")
async def log_key(request: web.Request) -> web.Response:
    return web.Response(text=request.app[LEDGER].verifier_key + "\n", content_type="text/plain", charset="utf-8")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "size": request.app[LEDGER].log.size})


@routes.get("/tile/{path:.+}")
async def tile(request: web.Request) -> web.Response:
    led = request.app[LEDGER]
    try:
        tp = parse_tile_path(request.match_info["path"])
    except FormatError as e:
        raise NotFoundError(f"not a tile path: {e}", code="bad_tile_path") from None
    log = led.log
    if tp.level is None:
        body = await asyncio.to_thread(log.entry_bundle, tp.index, tp.width)
    else:
        size = log.size
        level_size = size >> (8 * tp.level)
        if (tp.index + 1) * 256 <= level_size:
            want = 256
        elif tp.index * 256 + tp.width <= level_size:
            want = tp.width
        else:
            raise NotFoundError(f"tile {tp.level}/{tp.index} of width {tp.width} is not in the log")
        hashes, _ = await asyncio.to_thread(log.tile, tp.level, tp.index, tp.width)
        body = hashes[: 32 * tp.width] if want == tp.width else hashes
        if tp.width < 256 and len(body) != 32 * tp.width:
            raise NotFoundError("partial tile is not available")
    headers = {"Cache-Control": IMMUTABLE} if tp.width == 256 else {"Cache-Control": "public, max-age=3600"}
    return web.Response(body=body, content_type="application/octet-stream", headers=headers)
