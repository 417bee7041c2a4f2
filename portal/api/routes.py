"""The JSON API `/api/v1`: the signing platform's side. Every route needs an API key with a scope.

Writes are acknowledged only once durable (index, leaf hash, checkpoint size). A tenant only ever
sees its own envelopes: every envelope is looked up by (tenant of the key, your reference), so
another tenant's reference is simply unknown.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ledger.access.apikeys import KEY_CACHE_S, ApiKey, authenticate
from ledger.documents import qr
from ledger.envelopes.core import uploaded
from ledger.envelopes.events import REF, parse_events
from ledger.errors import NotFoundError, RefusedError
from portal.body import chunks, read_limited
from portal.keys import KEYS_SEEN, LEDGER, PDF_CHECKER, SUBMIT, UPLOAD_LIMIT
from verifier.entry import strict_loads
from verifier.errors import FormatError

routes = web.RouteTableDef()
PDF_MAGIC = b"%PDF-"




async def _key(request: web.Request, scope: str) -> ApiKey:
    led = request.app[LEDGER]
    header = request.headers.get("Authorization") or ""
    # Only keys that authenticated are cached, under the header itself; bad keys always hit the database.
    seen = request.app[KEYS_SEEN]
    key = seen.get(header, KEY_CACHE_S)
    if key is None:
        key = await asyncio.to_thread(lambda: authenticate(led.log._reader(), header or None))
        seen.put(header, key)
    key.require(scope)
    return key


async def _json(request: web.Request) -> Any:
    led = request.app[LEDGER]
    limit = led.config.max_request_bytes
    if request.content_type != "application/json":
        raise RefusedError("send the body as application/json", code="unsupported_media_type", status=415)
    return await read_limited(request, limit)


JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}  # as a header: aiohttp parses content_type=


def _json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=JSON_TYPE)


def _ref(request: web.Request) -> str:
    ref = request.match_info["ref"]
    if not REF.fullmatch(ref):
        raise RefusedError("an envelope reference is 1-64 letters, digits, '.', '_', ':' or '-'", code="bad_ref")
    return ref


async def _append(request: web.Request, key: ApiKey, events: Any) -> list[dict[str, Any]]:
    led = request.app[LEDGER]
    parsed = parse_events(events, max_bytes=led.config.max_request_bytes,
                          max_events=led.config.max_events_per_request)
    acks: list[dict[str, Any]] = await request.app[SUBMIT](key.tenant, parsed)
    return acks


def _with_envelope(ref: str, obj: Any) -> Any:
    if isinstance(obj, dict):
        if "envelope" in obj and obj["envelope"] != ref:
            raise RefusedError("the event names another envelope than the URL", code="invalid_event", status=422)
        return {**obj, "envelope": ref}
    return obj


@routes.post("/api/v1/events")
async def post_events(request: web.Request) -> web.Response:
    key = await _key(request, "append")
    acks = await _append(request, key, await _json(request))
    return _json_response({"acks": acks}, status=201)


@routes.post("/api/v1/envelopes")
async def create_envelope(request: web.Request) -> web.Response:
    key = await _key(request, "append")
    data = await _strict_object(request)
    acks = await _append(request, key, {**data, "type": "envelope.created"})
    return _json_response(acks[0], status=201)


async def _strict_object(request: web.Request) -> dict[str, Any]:
    led = request.app[LEDGER]
    try:
        obj = strict_loads(await _json(request), max_bytes=led.config.max_request_bytes)
    except FormatError as e:
        raise RefusedError(str(e), code="invalid_json") from None
    if not isinstance(obj, dict):
        raise RefusedError("the body must be a JSON object", code="invalid_json")
    if "type" in obj:
        raise RefusedError("this route sets the event type itself; leave out 'type'", code="invalid_event",
                           status=422)
    return obj


@routes.get("/api/v1/envelopes/{ref}")
async def get_envelope(request: web.Request) -> web.Response:
    key = await _key(request, "read")
    led = request.app[LEDGER]
    info = await asyncio.to_thread(led.envelope, key.tenant, _ref(request))
    return _json_response(info)


@routes.post("/api/v1/envelopes/{ref}/events")
async def post_envelope_events(request: web.Request) -> web.Response:
    key = await _key(request, "append")
    ref = _ref(request)
    led = request.app[LEDGER]
    try:
        obj = strict_loads(await _json(request), max_bytes=led.config.max_request_bytes)
    except FormatError as e:
        raise RefusedError(str(e), code="invalid_json") from None
    events = [_with_envelope(ref, o) for o in obj] if isinstance(obj, list) else _with_envelope(ref, obj)
    acks = await _append(request, key, events)
    return _json_response({"acks": acks}, status=201)


@routes.post("/api/v1/envelopes/{ref}/parties")
async def add_party(request: web.Request) -> web.Response:
    key = await _key(request, "append")
    data = await _strict_object(request)
    acks = await _append(request, key, {**_with_envelope(_ref(request), data), "type": "party.added"})
    return _json_response(acks[0], status=201)


@routes.post("/api/v1/envelopes/{ref}/copies")
async def issue_copy(request: web.Request) -> web.Response:
    """Issue the QR code of one printed copy of a document."""
    key = await _key(request, "append")
    data = await _strict_object(request)
    acks = await _append(request, key, {**_with_envelope(_ref(request), data), "type": "copy.printed"})
    ack = acks[0]
    ack["qr_url"] = await asyncio.to_thread(request.app[LEDGER].qr_url, ack["code"])
    ack["code_grouped"] = qr.grouped(ack["code"])
    return _json_response(ack, status=201)


@routes.post("/api/v1/envelopes/{ref}/documents")
async def upload_document(request: web.Request) -> web.Response:
    """Upload a PDF (streamed, size-limited, checked) and register it with document.added.

    Everything that can be checked before the bytes are stored is checked first (the query, the
    envelope, the PDF on its temporary file), so a refused upload leaves nothing behind.
    """
    key = await _key(request, "append")
    request.app[UPLOAD_LIMIT].check(request)
    ref = _ref(request)
    q = request.query
    if request.content_type != "application/pdf":
        raise RefusedError("upload the document as application/pdf", code="unsupported_media_type", status=415)
    if "document" not in q or "name" not in q:
        raise RefusedError("give ?document=<your reference>&name=<file name>[&download=public|code|none]",
                           code="invalid_event", status=422)
    fields = {"document": q["document"], "name": q["name"], **({"download": q["download"]} if "download" in q else {})}
    led = request.app[LEDGER]
    # the event as it will be, checked now (its hash and size are filled in once the bytes are stored)
    (checked,) = parse_events({"type": "document.added", "envelope": ref, "sha256": "0" * 64, "size": 0, **fields})
    info = await asyncio.to_thread(led.envelope, key.tenant, ref)
    if info["status"] != "draft":
        raise RefusedError(f"event 0 (document.added on {ref!r}): documents are added while the envelope is a "
                           f"draft; it is {info['status']}", code="wrong_state", status=409)
    if await asyncio.to_thread(lambda: led.log._reader().execute(
            "SELECT 1 FROM refs WHERE env = ? AND kind = 'document' AND ref = ?",
            (info["env"], fields["document"])).fetchone()):
        raise RefusedError(f"event 0: envelope {ref!r} already has a document {fields['document']!r}",
                           code="document_exists", status=409)
    up = led.blobs.upload()
    head = b""
    try:
        async for chunk in chunks(request):
            if len(head) < 1024:
                head += chunk[: 1024 - len(head)]
            up.write(chunk)
        if not head.startswith(PDF_MAGIC):
            raise RefusedError("the upload is not a PDF (it does not start with %PDF-)", code="not_pdf", status=422)
        await asyncio.to_thread(up.flush)
        await request.app[PDF_CHECKER].check(Path(up.tmp))  # in a process of its own, time-limited
    except BaseException:
        up.abort()
        raise
    sha, size = await asyncio.to_thread(up.finish)
    event = replace(checked, fields={**checked.fields, "sha256": sha, "size": size})
    acks = await request.app[SUBMIT](key.tenant, [uploaded(event)])
    return _json_response({**acks[0], "sha256": sha, "size": size}, status=201)


@routes.get(r"/api/v1/entries/{index:\d{1,19}}/proof")
async def entry_proof(request: web.Request) -> web.Response:
    key = await _key(request, "read")
    led = request.app[LEDGER]
    index = int(request.match_info["index"])
    if index >= 1 << 63:  # beyond any log (and beyond SQLite's integers)
        raise NotFoundError(f"entry {index} is not one of your envelopes' entries", code="bad_index")
    tenant = await asyncio.to_thread(led.tenant_of_entry, index)
    if tenant != key.tenant:
        raise NotFoundError(f"entry {index} is not one of your envelopes' entries", code="bad_index")
    proof = await asyncio.to_thread(led.prove, index)
    return web.Response(text=proof.to_text(), content_type="text/plain", charset="utf-8")
