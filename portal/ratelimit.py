"""Per-client-IP token buckets for code lookups and uploads; over the limit -> 429 with Retry-After."""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from aiohttp import web

from ledger.errors import LedgerError

MAX_CLIENTS = 100_000


class RateLimited(LedgerError):
    code = "rate_limited"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; retry after {retry_after} s")
        self.retry_after = retry_after


def client_ip(request: web.Request) -> str:
    """The client's address; for a request forwarded by a worker over the writer's Unix socket, the
    address the worker saw (only that socket is trusted to say so)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer == "" and "X-Ledger-Client" in request.headers:
        return request.headers["X-Ledger-Client"] or "unknown"
    return request.remote or "unknown"


class RateLimiter:
    """`rate` requests per second with bursts of `burst`, per client IP. Memory is bounded."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._clock = time.monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, request: web.Request) -> None:
        if self.rate <= 0:
            return
        ip = client_ip(request)
        now = self._clock()
        tokens, last = self._buckets.pop(ip, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[ip] = (tokens, now)
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / self.rate)))
        self._buckets[ip] = (tokens - 1.0, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
