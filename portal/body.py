"""Reading a request body: whole up to a limit, or in chunks; never waiting for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from ledger.errors import RefusedError

IDLE_S = 30.0  # a client that sends nothing for this long while its body is awaited is answered 408


async def chunks(request: web.Request, size: int = 1 << 16) -> AsyncIterator[bytes]:
    """The body in chunks as they arrive; 408 when none comes for `IDLE_S` (a stalled client must not
    hold a connection, and an upload's temporary file, for ever)."""
    content = request.content
    while True:
        if content.is_eof():  # all of it has come: no wait, and no timer to set (the usual small body)
            chunk = await content.readany() if size <= 0 else await content.read(size)
        else:
            try:
                async with asyncio.timeout(IDLE_S):
                    chunk = await content.readany() if size <= 0 else await content.read(size)
            except TimeoutError:
                raise RefusedError(f"no part of the body came for {IDLE_S:g} s", code="request_timeout",
                                   status=408) from None
        if not chunk:
            return
        yield chunk


async def read_limited(request: web.Request, limit: int, what: str = "the request body") -> bytes:
    """The whole body, however it arrives (one `read(n)` returns only what is buffered so far);
    413 as soon as it is known to be larger than `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise RefusedError(f"{what} is at most {limit} bytes", code="too_large", status=413)
    body = bytearray()
    async for chunk in chunks(request, 0):
        body += chunk
        if len(body) > limit:
            raise RefusedError(f"{what} is at most {limit} bytes", code="too_large", status=413)
    return bytes(body)
