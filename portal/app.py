"""The aiohttp application: `create_app(ledger)`.

Serves the C2SP log endpoints (checkpoint, tiles, entry bundles) byte-exact, the log's verifier key,
a health check and the local TSA (`POST /tsa`), and runs the anchoring loop (`ledger.anchoring.anchor`) as a
background task for the application's lifetime. Errors become one JSON shape, `{"error": {"code": ..., "message": ...}}`,
except on a public page a browser asked for, where they are a page in the reader's language.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ledger.anchoring.anchor import Anchorer, clients_for
from ledger.anchoring.push import pushing
from ledger.envelopes.core import Ledger
from ledger.errors import LedgerError
from ledger.storage.publish import publish_forever
from portal.api import evidence as evidenceroutes
from portal.api import openapi
from portal.api import routes as api
from portal.api import scans as scanroutes
from portal.caching import PageCache, TtlCache
from portal.keys import (
    ANCHORER,
    HEAD,
    HEADS,
    KEYS_SEEN,
    LEDGER,
    LOOKUP_LIMIT,
    PAGES,
    PDF_CHECKER,
    SUBMIT,
    TEMPLATES,
    UPLOAD_LIMIT,
    WORKERS,
    Head,
    Submit,
    Workers,
)
from portal.pages import routes as pages
from portal.pages import texts
from portal.pdfcheck import PdfChecker
from portal.ratelimit import RateLimited, RateLimiter, SharedBuckets, networks
from portal.tlog import routes as logroutes
from portal.tlog import tsa as tsaroutes
from verifier.errors import VerificationError

log = logging.getLogger("portal")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _failure(request: web.Request, status: int, code: str, message: str) -> web.Response:
    """The JSON error; for a person's browser on a public page, a page in the reader's language.
    (On those pages the answer depends on Accept: it says so, and is not kept by a cache.)"""
    if not pages.a_page(request):
        return error_response(status, code, message)
    resp = (pages.error_page(request, status, code) if status < 500 and pages.wants_html(request)
            else error_response(status, code, message))
    resp.headers["Vary"] = ", ".join(filter(None, (resp.headers.get("Vary"), "Accept")))
    resp.headers["Cache-Control"] = "no-store"
    return resp


_unavailable_logged = -1e9  # time.monotonic() of the last warning that the database is unavailable


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _failure(request, e.status, e.reason.lower().replace(" ", "_"), e.text or e.reason)
    except RateLimited as e:
        resp = _failure(request, e.status, e.code, str(e))
        resp.headers["Retry-After"] = str(e.retry_after)
        return resp
    except LedgerError as e:
        resp = _failure(request, e.status, e.code, str(e))
        if e.status == 401:  # RFC 9110 §11.6.1: a 401 names the scheme it wants
            resp.headers["WWW-Authenticate"] = 'Bearer realm="ledger api"'
        return resp
    except VerificationError as e:
        return error_response(400, e.code, str(e))
    except sqlite3.OperationalError as e:  # a read found the database gone (PostgreSQL restarting, a disk error)
        global _unavailable_logged
        if time.monotonic() - _unavailable_logged > 10:  # once in a while, not once per request of an outage
            _unavailable_logged = time.monotonic()
            log.warning("the database is unavailable (%s %s): %s", request.method, _route(request), e)
        return _failure(request, 503, "storage_unavailable", "the ledger's database is unavailable; nothing was "
                        "written by this request: retry it")
    except asyncio.CancelledError:
        raise
    except ConnectionResetError:  # the client went away mid-request: nobody to answer, nothing to log
        return web.Response(status=400)
    except Exception:  # logged by route, not path: a path can hold a QR code or an access code
        log.exception("unhandled error on %s %s", request.method, _route(request))
        return error_response(500, "internal_error", "the server failed; the request may be retried")


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request its parser refuses with a traceback holding the offending line, which can be
    an Authorization header: keep one line with the client and the kind of error, never the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "refused a malformed HTTP request from %s (%s, status %s)", (
                record.args[0] if isinstance(record.args, tuple) and record.args else "?", type(exc).__name__,
                exc.code)
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True


_MALFORMED = _MalformedRequests()


CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Content-Security-Policy": CSP}
SERVER = "evidence-ledger"  # the product only: its versions would tell a client which known bugs to try


def stamp(headers: MutableMapping[str, str]) -> None:
    """The headers every answer carries: the security headers (unless a route chose its own) and the
    Server name. `security_headers` stamps the application's answers; `ledger serve` also stamps those
    aiohttp's protocol handler makes itself (a request it cannot parse), which no signal sees."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers["Server"] = SERVER


async def security_headers(request: web.Request, resp: web.StreamResponse) -> None:
    """On every answer as it is sent: pages, API, files, errors and redirects alike."""
    stamp(resp.headers)
    path = request.path
    if path.startswith(("/static/", "/texts/")) and resp.status == 200:
        # a page names its scripts with their content's hash (pages.ASSETS): that address never changes
        # content; any other must be asked again, or a browser could pair a new page with an old check
        versioned = request.path_qs in _VERSIONED
        resp.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"


_VERSIONED = frozenset(pages.ASSETS.values())


async def anchoring(app: web.Application) -> AsyncIterator[None]:
    """Run the anchoring loop, with one HTTP session for the TSAs, while the application runs."""
    led = app[LEDGER]
    async with aiohttp.ClientSession() as session:
        clients = clients_for(led, session)
        anchorer = app[ANCHORER] = Anchorer(led, clients)
        task = asyncio.create_task(anchorer.run(), name="anchoring") if clients else None
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


FOLLOW_S = 1.0


async def following(app: web.Application) -> AsyncIterator[None]:
    """The writer looks once a second whether another process (`ledger append`) grew the log, and if
    so takes the new tree in: its checkpoint, proofs and anchoring do not wait for its next write."""
    led = app[LEDGER]

    async def follow() -> None:
        while True:
            await asyncio.sleep(FOLLOW_S)
            try:
                await led.acatch_up()
            except LedgerError as e:  # the next write tries again, and says so to its caller
                log.warning("could not take in another process's appends: %s", e)

    task = asyncio.create_task(follow(), name="following")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def publishing(app: web.Application) -> AsyncIterator[None]:
    """The writer publishes each new checkpoint's tiles to `tiles_folder`, for nginx or a CDN to serve."""
    led = app[LEDGER]
    task = asyncio.create_task(publish_forever(led.log, led.home / led.config.tiles_folder), name="publishing")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _close_pdf_checker(app: web.Application) -> None:
    await app[PDF_CHECKER].close()


STATIC = pages.STATIC


def create_app(ledger: Ledger, *, anchor: bool = True, lookup_rate: float | None = None,
               lookup_burst: int | None = None, extra_middlewares: list[Any] | None = None,
               submit: Submit | None = None, head: Head | None = None,
               lookup_buckets: SharedBuckets | None = None,
               upload_buckets: SharedBuckets | None = None, workers: Workers | None = None) -> web.Application:
    """The portal; `anchor=False` leaves out the anchoring loop (e.g. for a read-only replica).

    `submit` sends events to the sequencer and `head` gets signed envelope heads: by default from
    this process's own ledger; a worker of `ledger serve --workers N` passes its link to the writer.
    `lookup_buckets` and `upload_buckets` hold the rate limits' buckets: by default this application's
    own; the processes of `ledger serve --workers N` share theirs. `workers` says how many processes of
    `ledger serve` are live and how many it runs, for /healthz.
    """
    cfg = ledger.config
    app = web.Application(middlewares=[errors, *(extra_middlewares or [])], client_max_size=cfg.max_request_bytes)
    app.on_response_prepare.append(security_headers)
    server_log = logging.getLogger("aiohttp.server")
    if _MALFORMED not in server_log.filters:
        server_log.addFilter(_MALFORMED)
    app[LEDGER] = ledger
    app[SUBMIT] = submit or ledger.asubmit
    app[HEAD] = head or (lambda env, size: asyncio.to_thread(ledger.envelope_head, env, size))
    app[TEMPLATES] = pages.make_templates()
    proxies = networks(cfg.trusted_proxies)
    app[LOOKUP_LIMIT] = RateLimiter(cfg.lookup_rate if lookup_rate is None else lookup_rate,
                                    cfg.lookup_burst if lookup_burst is None else lookup_burst, lookup_buckets,
                                    proxies)
    app[UPLOAD_LIMIT] = RateLimiter(cfg.upload_rate, cfg.upload_burst, upload_buckets, proxies)
    app[PAGES] = PageCache()
    app[KEYS_SEEN], app[HEADS] = TtlCache(), TtlCache()
    if workers is not None:
        app[WORKERS] = workers
    app[PDF_CHECKER] = PdfChecker()
    app.on_cleanup.append(_close_pdf_checker)
    app.add_routes(logroutes.routes)
    app.add_routes(tsaroutes.routes)
    app.add_routes(pages.routes)
    app.add_routes(api.routes)
    app.add_routes(scanroutes.routes)
    app.add_routes(evidenceroutes.routes)
    app.add_routes(openapi.routes)
    app.add_routes(texts.routes)
    app.router.add_static("/static", STATIC, append_version=False)
    if ledger.writer:
        app.cleanup_ctx.append(following)
    if ledger.writer and cfg.tiles_folder:
        app.cleanup_ctx.append(publishing)
    if anchor and ledger.writer:
        app.cleanup_ctx.append(anchoring)
        app.cleanup_ctx.append(lambda _: pushing(ledger))  # checkpoints to the witnesses in `witness_urls`
    return app
