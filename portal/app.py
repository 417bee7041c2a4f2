"""The aiohttp application: `create_app(ledger)`.

Serves the C2SP log endpoints (checkpoint, tiles, entry bundles) byte-exact, the log's verifier key
and a health check. Errors become one JSON shape, `{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ledger.core import Ledger
from ledger.errors import LedgerError
from portal import logroutes
from portal.keys import LEDGER
from verifier.errors import VerificationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, e.reason.lower().replace(" ", "_"), e.text or e.reason)
    except LedgerError as e:
        return error_response(e.status, e.code, str(e))
    except VerificationError as e:
        return error_response(400, e.code, str(e))


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
    return resp


def create_app(ledger: Ledger) -> web.Application:
    app = web.Application(middlewares=[security_headers, errors], client_max_size=ledger.config.max_request_bytes)
    app[LEDGER] = ledger
    app.add_routes(logroutes.routes)
    return app
