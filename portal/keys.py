"""Typed application keys shared by the portal's route modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import jinja2
from aiohttp import web

from ledger.access.apikeys import ApiKey
from ledger.anchoring.anchor import Anchorer
from ledger.envelopes.core import Idempotency, Ledger
from ledger.envelopes.events import InputEvent
from portal.caching import PageCache, TtlCache
from portal.pdfcheck import PdfChecker
from portal.ratelimit import RateLimiter

LEDGER = web.AppKey("ledger", Ledger)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
LOOKUP_LIMIT = web.AppKey("lookup_limit", RateLimiter)
UPLOAD_LIMIT = web.AppKey("upload_limit", RateLimiter)
PAGES = web.AppKey("pages", PageCache)
ANCHORER = web.AppKey("anchorer", Anchorer)
PDF_CHECKER = web.AppKey("pdf_checker", PdfChecker)
# How this process sends a tenant's events to the sequencer: the ledger itself, or the writer link.
class Submit(Protocol):
    def __call__(self, tenant: str, events: list[InputEvent],
                 idem: Idempotency | None = None) -> Awaitable[list[dict[str, Any]]]: ...


SUBMIT = web.AppKey[Submit]("submit")
# How this process gets the log's signed statement of an envelope's last event (`verifier.head`).
Head = Callable[[str, int], Awaitable[str]]
HEAD = web.AppKey[Head]("head")
# API keys that authenticated, by Authorization header; signed envelope heads, by (env, tree size)
KEYS_SEEN = web.AppKey[TtlCache[str, ApiKey]]("keys_seen")
HEADS = web.AppKey[TtlCache[tuple[str, int], str]]("heads")
# How many processes of `ledger serve` serve the port, and how many it runs: {"live": n, "configured": m}
Workers = Callable[[], dict[str, int]]
WORKERS = web.AppKey[Workers]("workers")
