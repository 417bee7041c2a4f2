"""C2SP log endpoints: /checkpoint, /tile/<L>/<N>[.p/<W>], /tile/entries/<N>[.p/<W>], /log-key; and
for notaries (`ledger.anchoring.witness`, `ledger.anchoring.push`): /checkpoint/<size> with its cosignatures,
/checkpoint/cosigned, /proof/consistency/<old>/<new>, /anchors/<size>, and POST /witness/cosign."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from aiohttp import web

from ledger.anchoring import push, witness
from ledger.envelopes.core import Ledger
from ledger.errors import NotFoundError, RefusedError
from ledger.storage.log import TileLog
from ledger.storage.publish import published_size
from portal.body import read_limited
from portal.caching import TtlCache
from portal.keys import LEDGER, LOOKUP_LIMIT, WORKERS
from verifier.errors import FormatError
from verifier.note import MAX_NOTE_SIZE
from verifier.tiles import TilePath, parse_tile_path, tile_path

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
    log = request.app[LEDGER].log
    body: dict[str, object] = {"ok": True, "size": log.size}
    if WORKERS in request.app:  # under `ledger serve`: how many of its processes serve the port
        body["workers"] = request.app[WORKERS]()
    if log.replica is not None:  # where pages read, and why: its lag (measured at most once a second)
        body["replica"] = (await asyncio.to_thread(log.replica.status)).to_json()
    if (sessions := log.sessions()) is not None:  # PostgreSQL: the readers' pools of sessions, in use
        body["sessions"] = sessions
    return web.json_response(body)


@routes.get("/tile/{path:.+}")
async def tile(request: web.Request) -> web.Response:
    led = request.app[LEDGER]
    try:
        tp = parse_tile_path(request.match_info["path"])
    except FormatError as e:
        raise NotFoundError(f"not a tile path: {e}", code="bad_tile_path") from None
    if tp.width == 256 and led.config.tiles_url and TILES_FALLBACK not in request.headers:
        _redirect_if_published(led, tp.level, tp.index)
    body = await asyncio.to_thread(_tile_bytes, led.log, tp)
    # immutable, partial ones too: a path names one width of one tile, whose hashes never change
    resp = web.Response(body=body, content_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})
    if tp.level is None:
        # an entry bundle is sent gzip-compressed to a client that accepts it (tlog-tiles: SHOULD), so a
        # cache that keeps it must tell the two answers apart, for ever: both carry Vary
        resp.headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("Accept-Encoding", "").lower():
            resp.enable_compression(web.ContentCoding.gzip)
    return resp


def _tile_bytes(log: TileLog, tp: TilePath) -> bytes:
    """A tile's or entry bundle's bytes, read where `reading()` finds a tree that holds them (a replica
    that has not got them yet leaves them to the primary)."""
    with log.reading(min_size=(tp.index * 256 + tp.width) << (8 * (tp.level or 0))):
        if tp.level is None:
            return log.entry_bundle(tp.index, tp.width)
        level_size = log.size >> (8 * tp.level)
        if (tp.index + 1) * 256 <= level_size:
            want = 256
        elif tp.index * 256 + tp.width <= level_size:
            want = tp.width
        else:
            raise NotFoundError(f"tile {tp.level}/{tp.index} of width {tp.width} is not in the log")
        hashes, _ = log.tile(tp.level, tp.index, tp.width)
    body = hashes[: 32 * tp.width] if want == tp.width else hashes
    if tp.width < 256 and len(body) != 32 * tp.width:
        raise NotFoundError("partial tile is not available")
    return body


# Tiles as files (`tiles_url`, `ledger.storage.publish`): a full tile or entry bundle never changes, so
# once the writer has published it to `tiles_folder` the portal sends its reader there (302). Partial tiles
# and /checkpoint stay here, fresh: the folder's lag behind the database (up to a poll of the writer) must
# not hold a reader back from the latest tree, and a partial tile of a checkpoint the folder skipped is not
# there. nginx's example configuration asks the portal for a file it does not have, with this header: the
# portal then answers itself, so a folder that lost files is no redirect loop.
TILES_FALLBACK = "X-Ledger-Tiles"
TILES_REDIRECT_CACHE = "public, max-age=3600"
_PUBLISHED: TtlCache[Path, int] = TtlCache(16)


def _redirect_if_published(led: Ledger, level: int | None, index: int) -> None:
    """Raise 302 Found to `<tiles_url>/tile/...` when that full tile is in the tree published in `tiles_folder`."""
    end = (index + 1) << (8 * ((level or 0) + 1))  # the tile's end index (tlog-tiles)
    folder = led.home / led.config.tiles_folder
    size = _PUBLISHED.get(folder, 0.5)
    if size is None or (size < end and _PUBLISHED.get(folder, 0.05) is None):  # a tile just published, perhaps
        size = published_size(folder)
        _PUBLISHED.put(folder, size)
    if end <= size:
        raise web.HTTPFound(f"{led.config.tiles_url}/{tile_path(level, index)}",
                            headers={"Cache-Control": TILES_REDIRECT_CACHE})


def _sizes(request: web.Request, *names: str) -> list[int]:
    size = request.app[LEDGER].log.size
    out = [int(request.match_info[n]) for n in names]
    for n in out:
        if n > size:
            raise NotFoundError(f"the log has {size} entries; it published no tree of size {n}", code="bad_size")
    return out


@routes.get(r"/checkpoint/{size:\d{1,19}}")
async def checkpoint_at(request: web.Request) -> web.Response:
    """A checkpoint this log published, with the witness cosignatures kept for it (they may grow)."""
    (size,) = _sizes(request, "size")
    note = await asyncio.to_thread(witness.cosigned_checkpoint, request.app[LEDGER], size)
    return web.Response(text=note, content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-cache"})


@routes.get("/checkpoint/cosigned")
async def checkpoint_cosigned(request: web.Request) -> web.Response:
    """The latest checkpoint a witness cosigned, with every cosignature kept for it (404 while there is none)."""
    note = await asyncio.to_thread(push.latest_cosigned, request.app[LEDGER])
    return web.Response(text=note, content_type="text/plain", charset="utf-8", headers={"Cache-Control": "no-cache"})


@routes.get(r"/anchors/{size:\d{1,19}}")
async def anchors(request: web.Request) -> web.Response:
    """The RFC 3161 anchors (and renewals) kept for the checkpoint of that size, as JSON: a list of
    `{"id", "tsa", "renews", "gen_time", "serial", "token"}` (the token base64 DER), `[]` while there is none.
    An anchor time-stamps the checkpoint's body; a renewal, the token it renews (`verifier.anchored`)."""
    (size,) = _sizes(request, "size")
    records = await asyncio.to_thread(push.anchors_at, request.app[LEDGER], size)
    return web.json_response([r.to_json() for r in records], headers={"Cache-Control": "no-cache"})


@routes.get(r"/proof/consistency/{old:\d{1,19}}/{new:\d{1,19}}")
async def consistency(request: web.Request) -> web.Response:
    """RFC 9162 consistency proof between two published tree sizes: one base64 hash a line, the form
    `verifier consistency --proof` reads.

    Both sizes must be those of checkpoints this log published: a notary holds checkpoints, and a
    proof from a tree nobody was shown proves nothing to anyone (404 `unpublished_size`)."""
    old, new = _sizes(request, "old", "new")
    if not 0 < old <= new:
        raise RefusedError("a consistency proof needs 0 < old <= new", code="bad_size")
    log = request.app[LEDGER].log
    for n in sorted({old, new} - {log.size}):  # the latest size is published by definition
        try:
            await asyncio.to_thread(log.checkpoint_at, n)
        except NotFoundError:
            raise NotFoundError(f"this log published no checkpoint of size {n}: ask for a proof between the "
                                "sizes of two checkpoints it published", code="unpublished_size") from None
    hashes = await asyncio.to_thread(log.consistency_proof, old, new)
    body = "".join(base64.b64encode(h).decode() + "\n" for h in hashes)
    return web.Response(text=body, content_type="text/plain", charset="utf-8", headers={"Cache-Control": IMMUTABLE})


@routes.post("/witness/cosign")
async def cosign(request: web.Request) -> web.Response:
    """A notary posts a checkpoint of this log with its cosignature line(s)."""
    request.app[LOOKUP_LIMIT].check(request)
    body = await read_limited(request, MAX_NOTE_SIZE, "a cosigned checkpoint")
    size, names = await witness.accept(request.app[LEDGER], body)
    return web.json_response({"size": size, "accepted": names})
