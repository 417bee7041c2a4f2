"""The local TSA over HTTP (RFC 3161 §3.4) and the anchoring status.

- `POST /tsa`: body `application/timestamp-query` (a DER TimeStampReq, at most 64 KiB), answer
  `application/timestamp-reply` (a DER TimeStampResp). A request that is not DER, or asks for what
  this TSA does not do, is answered with a rejection TimeStampResp and its PKIFailureInfo
  (RFC 3161 §2.4.2); anything that is not an RFC 3161 exchange at all (wrong content type, too
  large, no local TSA) gets the portal's JSON error.
- `GET /tsa`: what the local TSA is (a local TSA, not an accredited one), its policy, and the health
  of every TSA that anchors this ledger.
- `GET /tsa/certs`: the local TSA's certificate and root, PEM, for `openssl ts -verify -CAfile`.

What it does not do: sign (`ledger.anchoring.tsa`), anchor (`ledger.anchoring.anchor`) or authenticate callers (the
code-lookup rate limit applies to `POST /tsa`, per client address).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ledger.anchoring.anchor import anchoring_status
from ledger.anchoring.tsa import MAX_REQUEST_BYTES, LocalTsa
from ledger.errors import NotFoundError, RefusedError
from portal.body import read_limited
from portal.keys import LEDGER, LOOKUP_LIMIT

routes = web.RouteTableDef()
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


def _local_tsa(request: web.Request) -> LocalTsa:
    led = request.app[LEDGER]
    if led.local_tsa_error is not None:
        raise led.local_tsa_error
    tsa = led.local_tsa
    if tsa is None:
        raise NotFoundError("this ledger runs no local TSA (local_tsa = false)", code="no_local_tsa")
    return tsa


@routes.post("/tsa")
async def timestamp(request: web.Request) -> web.Response:
    request.app[LOOKUP_LIMIT].check(request)  # each token is a signature and a durable serial number
    tsa = _local_tsa(request)
    if request.content_type != QUERY_TYPE:
        raise RefusedError(f"send a DER TimeStampReq as {QUERY_TYPE} (RFC 3161 §3.4), not "
                           f"{request.content_type or 'no content type'}", code="unsupported_media_type", status=415)
    query = await read_limited(request, MAX_REQUEST_BYTES, "a time-stamp query")
    reply = await asyncio.to_thread(tsa.respond, query)
    return web.Response(body=reply, content_type=REPLY_TYPE, headers={"Cache-Control": "no-store"})


@routes.get("/tsa")
async def about(request: web.Request) -> web.Response:
    led = request.app[LEDGER]
    local = None
    if led.local_tsa is not None:
        local = {"name": led.local_tsa.name, "kind": "local TSA, not accredited", "accredited": False,
                 "policy": led.local_tsa.policy_oid, "endpoint": "/tsa", "certificates": "/tsa/certs"}
    return web.json_response({"local_tsa": local, "anchoring": await asyncio.to_thread(anchoring_status, led)})


@routes.get("/tsa/certs")
async def certificates(request: web.Request) -> web.Response:
    paths = _local_tsa(request).paths
    pem = paths.cert.read_bytes() + paths.root_cert.read_bytes()
    return web.Response(body=pem, content_type="application/pem-certificate-chain")


@routes.get(r"/seal-ca/{name:seal-ca\.crl|seal-root\.pem}")
async def seal_ca(request: web.Request) -> web.Response:
    """The local seal CA's CRL (the address its seal certificates name) and its root: what a validator
    needs to check the platform's seal. The CA is labelled "not accredited"."""
    led = request.app[LEDGER]
    name = request.match_info["name"]
    path = led.home / "seal" / name
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise NotFoundError("this ledger has no seal CA yet", code="no_seal") from None
    kind = "application/pkix-crl" if name.endswith(".crl") else "application/x-pem-file"
    return web.Response(body=body, content_type=kind, headers={"Cache-Control": "public, max-age=300"})
