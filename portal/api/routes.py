"""The JSON API `/api/v1`: the signing platform's side. Every route needs an API key with a scope.

Writes are acknowledged only once durable (index, leaf hash, checkpoint size). A tenant only ever
sees its own envelopes: every envelope is looked up by (tenant of the key, your reference), so
another tenant's reference is simply unknown.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ledger.access.apikeys import KEY_CACHE_S, ApiKey, authenticate
from ledger.documents import qr
from ledger.envelopes import printing, queries, sealing, seals
from ledger.envelopes.core import Idempotency, uploaded
from ledger.envelopes.events import REF, InputEvent, parse_events
from ledger.errors import LedgerError, NotFoundError, RefusedError
from portal.body import chunks, read_limited
from portal.keys import KEYS_SEEN, LEDGER, PDF_CHECKER, SUBMIT, UPLOAD_LIMIT
from portal.pages.routes import attachment
from verifier.entry import Entry, strict_loads
from verifier.errors import FormatError

routes = web.RouteTableDef()
log = logging.getLogger("portal.api")
PDF_MAGIC = b"%PDF-"
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
RAW_BODY = web.RequestKey("raw_body", bytes)
REPLAYED = web.RequestKey("replayed", bool)




async def _key(request: web.Request, scope: str) -> ApiKey:
    led = request.app[LEDGER]
    header = request.headers.get("Authorization") or ""
    # Only keys that authenticated are cached, under the header itself; bad keys always hit the database.
    seen = request.app[KEYS_SEEN]
    key = seen.get(header, KEY_CACHE_S)
    if key is None:
        key = await asyncio.to_thread(lambda: authenticate(led.log._reader(), header or None, led.verifier))
        seen.put(header, key)
    key.require(scope)
    return key


async def _json(request: web.Request) -> Any:
    led = request.app[LEDGER]
    limit = led.config.max_request_bytes
    if request.content_type != "application/json":
        raise RefusedError("send the body as application/json", code="unsupported_media_type", status=415)
    body = await read_limited(request, limit)
    request[RAW_BODY] = body  # what an Idempotency-Key's fingerprint covers
    return body


JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}  # as a header: aiohttp parses content_type=


def _json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=JSON_TYPE)


def _acks_response(request: web.Request, acks: list[dict[str, Any]]) -> web.Response:
    """Every write's answer: {"acks": [...]}, 201; a retry answered from an Idempotency-Key says so."""
    resp = _json_response({"acks": acks}, status=201)
    if request.get(REPLAYED):
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _ref(request: web.Request) -> str:
    ref = request.match_info["ref"]
    if not REF.fullmatch(ref):
        raise RefusedError("an envelope reference is 1-64 letters, digits, '.', '_', ':' or '-'", code="bad_ref")
    return ref


async def _append(request: web.Request, key: ApiKey, events: Any) -> list[dict[str, Any]]:
    led = request.app[LEDGER]
    parsed = parse_events(events, max_bytes=led.config.max_request_bytes,
                          max_events=led.config.max_events_per_request)
    acks = await _submit(request, key, parsed, _idempotency(request, key, request.get(RAW_BODY, b"")))
    await _seal_on_completion(request, key, acks)
    return acks


def _idempotency(request: web.Request, key: ApiKey, body: bytes) -> Idempotency | None:
    """The request's Idempotency-Key, with a fingerprint of the request: method, path, query and body."""
    chosen = request.headers.get("Idempotency-Key")
    if chosen is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(chosen):
        raise RefusedError("Idempotency-Key must be 1-255 printable ASCII characters, without spaces",
                           code="bad_idempotency_key")
    h = hashlib.sha256(f"{request.method} {request.rel_url.raw_path_qs}\n".encode())
    h.update(body)
    return Idempotency(key.id, chosen, h.hexdigest())


async def _stored(request: web.Request, idem: Idempotency) -> list[dict[str, Any]] | None:
    stored = await asyncio.to_thread(request.app[LEDGER].stored_answer, idem.key_id, idem.key)
    if stored is None:
        return None
    fingerprint, acks = stored
    if fingerprint != idem.fingerprint:
        raise RefusedError("this Idempotency-Key was sent with another request; a new request needs a new key",
                           code="idempotency_mismatch", status=422)
    request[REPLAYED] = True
    return acks


async def _submit(request: web.Request, key: ApiKey, events: list[InputEvent],
                  idem: Idempotency | None) -> list[dict[str, Any]]:
    """Append, or, for a retry of a request with the same Idempotency-Key, answer what was answered then."""
    if idem is not None and (acks := await _stored(request, idem)) is not None:
        return acks
    try:
        done: list[dict[str, Any]] = await request.app[SUBMIT](key.tenant, events, idem)
        return done
    except RefusedError as e:
        if idem is None or e.code != "idempotency_replay":
            raise
    # a twin of this request, sent at the same time, was acknowledged first: its answer is this one's
    for _ in range(100):
        if (acks := await _stored(request, idem)) is not None:
            return acks
        await asyncio.sleep(0.05)
    raise RefusedError("a request with this Idempotency-Key is still being answered; send it again",
                       code="idempotency_in_progress", status=409)


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
    return _acks_response(request, acks)


@routes.post("/api/v1/envelopes")
async def create_envelope(request: web.Request) -> web.Response:
    key = await _key(request, "append")
    data = await _strict_object(request)
    acks = await _append(request, key, {**data, "type": "envelope.created"})
    return _acks_response(request, acks)


def _query(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, each once and each one this route knows (a typo is refused, not ignored)."""
    q = request.query
    unknown = sorted(set(q) - set(allowed))
    if unknown:
        raise RefusedError(f"unknown query parameter {unknown[0]!r} (this route takes {', '.join(allowed) or 'none'})",
                           code="bad_query")
    twice = sorted(k for k in q if len(q.getall(k)) > 1)
    if twice:
        raise RefusedError(f"query parameter {twice[0]!r} is given more than once", code="bad_query")
    return dict(q)


@routes.get("/api/v1/envelopes")
async def list_envelopes(request: web.Request) -> web.Response:
    """The key's tenant's envelopes, oldest first, filtered by status and creation time, paged."""
    key = await _key(request, "read")
    q = _query(request, ("status", "created_after", "created_before", "cursor", "limit"))
    status = tuple(s for s in q.get("status", "").split(",") if s)
    after, before = (queries.instant(q[k], k) if k in q else None for k in ("created_after", "created_before"))
    page = await asyncio.to_thread(queries.list_envelopes, request.app[LEDGER], key.tenant, status=status,
                                   created_after=after, created_before=before, cursor=q.get("cursor"),
                                   limit=queries.page_size(q.get("limit")))
    return _json_response(page)


@routes.get("/api/v1/seals")
async def list_seals(request: web.Request) -> web.Response:
    """The key's tenant's registered seals, each with its newest uses (`limit`, default 50)."""
    key = await _key(request, "read")
    q = _query(request, ("limit",))
    limit = queries.page_size(q.get("limit"))
    log = request.app[LEDGER].log
    found = await asyncio.to_thread(lambda: seals.list_seals(log._reader(), key.tenant, limit=limit))
    return _json_response({"seals": found})


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


@routes.get("/api/v1/envelopes/{ref}/events")
async def get_envelope_events(request: web.Request) -> web.Response:
    """One envelope's timeline: each event with its log index and leaf hash, paged."""
    key = await _key(request, "read")
    q = _query(request, ("cursor", "limit"))
    page = await asyncio.to_thread(queries.envelope_events, request.app[LEDGER], key.tenant, _ref(request),
                                   cursor=q.get("cursor"), limit=queries.page_size(q.get("limit")))
    return _json_response(page)


@routes.get("/api/v1/envelopes/{ref}/documents")
async def get_documents(request: web.Request) -> web.Response:
    """The envelope's documents, named by your references, with their signed versions."""
    key = await _key(request, "read")
    _query(request, ())
    both = await asyncio.to_thread(queries.documents_and_parties, request.app[LEDGER], key.tenant, _ref(request))
    return _json_response({"envelope": both["envelope"], "documents": both["documents"]})


@routes.get("/api/v1/envelopes/{ref}/parties")
async def get_parties(request: web.Request) -> web.Response:
    """The envelope's parties, named by your references, and where each stands."""
    key = await _key(request, "read")
    _query(request, ())
    both = await asyncio.to_thread(queries.documents_and_parties, request.app[LEDGER], key.tenant, _ref(request))
    return _json_response({"envelope": both["envelope"], "parties": both["parties"]})


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
    return _acks_response(request, acks)


@routes.post("/api/v1/envelopes/{ref}/parties")
async def add_party(request: web.Request) -> web.Response:
    key = await _key(request, "append")
    data = await _strict_object(request)
    acks = await _append(request, key, {**_with_envelope(_ref(request), data), "type": "party.added"})
    return _acks_response(request, acks)


@routes.post("/api/v1/envelopes/{ref}/copies")
async def issue_copy(request: web.Request) -> web.Response:
    """Issue one printed copy of a document: its QR code (JSON: the acknowledgement with the code, its
    URL, the grouped code, the copy number and an SVG of the QR code), or, with `Accept: application/pdf`,
    the print-ready PDF of the document's latest version with that copy's marks stamped on it."""
    key = await _key(request, "append")
    data = await _strict_object(request)
    ref, led = _ref(request), request.app[LEDGER]
    as_pdf = _wants_pdf(request)
    if as_pdf and isinstance(data.get("document"), str):  # no copy is logged that cannot be printed
        await asyncio.to_thread(_printable, led, key.tenant, ref, data["document"])
    acks = await _append(request, key, {**_with_envelope(ref, data), "type": "copy.printed"})
    ack = acks[0]
    ack["qr_url"] = await asyncio.to_thread(led.qr_url, ack["code"])
    ack["code_grouped"] = qr.grouped(ack["code"])
    if as_pdf:
        pdf, name = await asyncio.to_thread(printing.printed_copy, led, key.tenant, ack)
        resp = web.Response(body=pdf, status=201, headers={
            "Content-Type": "application/pdf", "Content-Disposition": attachment(name),
            "Ledger-Index": str(ack["index"]), "Ledger-Leaf-Hash": ack["leaf_hash"], "Ledger-Code": ack["code"],
            "Ledger-Checkpoint-Size": str(ack["checkpoint_size"])})
        if request.get(REPLAYED):
            resp.headers["Idempotent-Replayed"] = "true"
        return resp
    entry = await asyncio.to_thread(lambda: Entry.from_bytes(led.log.entry(ack["index"],
                                                                           within=ack["checkpoint_size"])))
    ack["copy"] = entry.data["copy"]
    ack["qr_svg"] = qr_svg(ack["qr_url"])
    return _acks_response(request, acks)


def _wants_pdf(request: web.Request) -> bool:
    """`Accept: application/pdf` (before any JSON it also accepts)."""
    accept = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    return "application/pdf" in accept and (
        "application/json" not in accept or accept.index("application/pdf") < accept.index("application/json"))


def _printable(led: Any, tenant: str, ref: str, document: str) -> None:
    printing.latest_version(led, *printing.document_of(led, tenant, ref, document))


def qr_svg(url: str) -> str:
    """The QR code of `url` as an SVG path (error correction Q, a quiet zone of four modules)."""
    import qrcode
    import qrcode.image.svg

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, border=4,
                         image_factory=qrcode.image.svg.SvgPathImage)
    code.add_data(url)
    code.make(fit=True)
    return str(code.make_image().to_string(encoding="unicode"))


@routes.post("/api/v1/envelopes/{ref}/documents")
async def upload_document(request: web.Request) -> web.Response:
    """Upload a PDF (streamed, size-limited, checked) and register it with document.added.

    Everything that can be checked before the bytes are stored is checked first (the query, the
    envelope, the PDF on its temporary file), so a refused upload leaves nothing behind.
    """
    key = await _key(request, "append")
    request.app[UPLOAD_LIMIT].check_key(key.id)  # a platform's backend is one client of many uploads
    ref = _ref(request)
    q = request.query
    led = request.app[LEDGER]
    idem = _idempotency(request, key, b"")  # a retry names the same document: the query is the request
    if idem is not None and (stored := await _stored(request, idem)) is not None:
        return _acks_response(request, [await asyncio.to_thread(_with_version, led, stored[0])])
    if request.content_type != "application/pdf":
        raise RefusedError("upload the document as application/pdf", code="unsupported_media_type", status=415)
    if "document" not in q or "name" not in q:
        raise RefusedError("give ?document=<your reference>&name=<file name>[&download=public|code|none]",
                           code="invalid_event", status=422)
    fields = {"document": q["document"], "name": q["name"], **({"download": q["download"]} if "download" in q else {})}
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
    acks = await _submit(request, key, [uploaded(event)], idem)
    return _acks_response(request, [await asyncio.to_thread(_with_version, led, acks[0])])


@routes.post("/api/v1/envelopes/{ref}/documents/{document}/seal")
async def seal_document(request: web.Request) -> web.Response:
    """Seal the document's latest version with the platform's e-seal (PAdES B-LT, local TSA time-stamp) and
    register the sealed PDF as a version of the document (`document.sealed`)."""
    key = await _key(request, "append")
    _query(request, ())
    ref, led, document = _ref(request), request.app[LEDGER], request.match_info["document"]
    if not REF.fullmatch(document):
        raise RefusedError("a document reference is 1-64 letters, digits, '.', '_', ':' or '-'", code="bad_ref")
    idem = _idempotency(request, key, b"")
    if idem is not None and (stored := await _stored(request, idem)) is not None:
        return _acks_response(request, [await asyncio.to_thread(_with_version, led, stored[0])])
    event, _ = await asyncio.to_thread(sealing.sealed_version, led, key.tenant, ref, document)
    acks = await _submit(request, key, [event], idem)
    return _acks_response(request, [await asyncio.to_thread(_with_version, led, acks[0])])


async def _seal_on_completion(request: web.Request, key: ApiKey, acks: list[dict[str, Any]]) -> None:
    """When an envelope completes, the platform's seal on each of its documents whose bytes the ledger
    holds. The completion stands whatever happens here: a document that cannot be sealed is logged."""
    led = request.app[LEDGER]
    if not led.config.seal_on_completion or request.get(REPLAYED):
        return
    for ack in acks:
        if ack.get("type") != "envelope.completed":
            continue
        for document in await asyncio.to_thread(_document_refs, led, ack["env"]):
            try:
                event, _ = await asyncio.to_thread(sealing.sealed_version, led, key.tenant, ack["envelope"],
                                                   document)
                await request.app[SUBMIT](key.tenant, [event])
            except LedgerError as e:
                log.warning("envelope %s completed, but a document of it was not sealed: %s", ack["env"], e)


def _document_refs(led: Any, env: str) -> list[str]:
    rows = led.log._reader().execute("SELECT ref FROM refs WHERE env = ? AND kind = 'document' ORDER BY ordinal",
                                     (env,))
    return [str(r) for (r,) in rows]


def _with_version(led: Any, ack: dict[str, Any]) -> dict[str, Any]:
    """The acknowledgement of stored bytes (an upload, a seal) with the SHA-256 its entry registered and
    the size (the entry's, or the stored file's)."""
    data = Entry.from_bytes(led.log.entry(ack["index"], within=ack["checkpoint_size"])).data
    size = data["size"] if "size" in data else led.blobs.path(data["sha256"]).stat().st_size
    return {**ack, "sha256": data["sha256"], "size": size}


async def _own_entry(request: web.Request, key: ApiKey) -> int:
    led = request.app[LEDGER]
    index = int(request.match_info["index"])
    if index >= 1 << 63:  # beyond any log (and beyond SQLite's integers)
        raise NotFoundError(f"entry {index} is not one of your envelopes' entries", code="bad_index")
    tenant = await asyncio.to_thread(led.tenant_of_entry, index)
    if tenant != key.tenant:
        raise NotFoundError(f"entry {index} is not one of your envelopes' entries", code="bad_index")
    return index


@routes.get(r"/api/v1/entries/{index:\d{1,19}}/proof")
async def entry_proof(request: web.Request) -> web.Response:
    """A C2SP tlog-proof of one of your entries (text); with `?entry=1`, JSON of the proof and the entry."""
    key = await _key(request, "read")
    with_entry = _query(request, ("entry",)).get("entry", "0")
    if with_entry not in ("0", "1", "true", "false"):
        raise RefusedError("entry must be 1 (or true) to add the entry's bytes, 0 (or false) not to",
                           code="bad_query")
    index = await _own_entry(request, key)
    led = request.app[LEDGER]
    proof = await asyncio.to_thread(led.prove, index)
    if with_entry in ("0", "false"):
        return web.Response(text=proof.to_text(), content_type="text/plain", charset="utf-8")
    entry = await asyncio.to_thread(led.log.entry, index, within=proof.checkpoint.checkpoint.size)
    return _json_response({"index": index, "entry": base64.b64encode(entry).decode(), "proof": proof.to_text()})


@routes.get(r"/api/v1/entries/{index:\d{1,19}}/anchored")
async def entry_anchored(request: web.Request) -> web.Response:
    """One of your entries' trusted time: the anchored proof `ledger prove --anchored` prints (JSON)."""
    key = await _key(request, "read")
    tsa = _query(request, ("tsa",)).get("tsa")
    led = request.app[LEDGER]
    if tsa is not None and tsa not in led.config.tsa_names:
        raise NotFoundError(f"no TSA {tsa!r} is configured (configured: {', '.join(led.config.tsa_names) or 'none'})",
                            code="unknown_tsa")
    index = await _own_entry(request, key)
    bundle = await asyncio.to_thread(request.app[LEDGER].prove_anchored, index, tsa)
    return _json_response(bundle.to_json())
