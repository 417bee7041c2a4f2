"""Reading a request body whole, up to a limit."""

from __future__ import annotations

from aiohttp import web

from ledger.errors import RefusedError


async def read_limited(request: web.Request, limit: int, what: str = "the request body") -> bytes:
    """The whole body, however it arrives (one `read(n)` returns only what is buffered so far);
    413 as soon as it is known to be larger than `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise RefusedError(f"{what} is at most {limit} bytes", code="too_large", status=413)
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise RefusedError(f"{what} is at most {limit} bytes", code="too_large", status=413)
    return bytes(body)
