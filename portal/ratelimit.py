"""Per-client-IP token buckets for code lookups and uploads; over the limit -> 429 with Retry-After.

The buckets live in a `SharedBuckets` table in shared memory: `ledger serve --workers N` makes one
per limiter in the parent and hands it to every process, so the configured limit holds for the whole
portal, not per process. The table has a fixed number of slots, so memory is bounded.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Iterable
from multiprocessing.context import BaseContext
from typing import Any

from aiohttp import web

from ledger.errors import LedgerError

SLOTS = 65_536
LOCK_WAIT_S = 0.1
log = logging.getLogger("portal.ratelimit")


class RateLimited(LedgerError):
    code = "rate_limited"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; retry after {retry_after} s")
        self.retry_after = retry_after


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(specs: Iterable[str]) -> Networks:
    """The `trusted_proxies` setting as networks (checked when the config is loaded)."""
    return tuple(ipaddress.ip_network(s, strict=False) for s in specs)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None, proxies: Networks) -> bool:
    return addr is not None and any(addr in n for n in proxies)


def client_ip(request: web.Request, proxies: Networks = ()) -> str:
    """The client's address.

    For a request forwarded by a worker over the writer's Unix socket, the address the worker saw
    (only that socket is trusted to say so). When that address is one of the `trusted_proxies`,
    the client is the last address in `X-Forwarded-For` that is not a trusted proxy (each proxy
    appends the address it saw); an address a proxy did not write cannot be trusted, so a client
    that sends the header itself gains nothing. Without trusted proxies the header is ignored.
    """
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if peer == "" and "X-Ledger-Client" in request.headers:
        peer = request.headers["X-Ledger-Client"] or "unknown"
    else:
        peer = request.remote or "unknown"
    if not proxies or not _trusted(_address(peer), proxies):
        return str(peer)
    hops = [h for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:  # not written by a proxy we trust: the proxy's own address it is
            return str(peer)
        if not _trusted(addr, proxies):
            return str(addr)
    first = _address(hops[0]) if hops else None  # only trusted proxies: the first address, the origin
    return str(first) if first is not None else str(peer)


def client_bucket(ip: str) -> str:
    """Whose bucket a client address takes: an IPv4 address its own, an IPv6 address its /64 (one
    subscriber's network, in which a client can take any address it likes)."""
    addr = _address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr.ipv4_mapped) if isinstance(addr, ipaddress.IPv6Address) else ip


def bucket_key(ip: str) -> int:
    """The same in every process (unlike `hash`): 52 bits of BLAKE2b, which a double holds exactly;
    never 0, which marks an empty slot."""
    return (int.from_bytes(hashlib.blake2b(ip.encode(), digest_size=8).digest(), "big") >> 12) or 1


class SharedBuckets:
    """Token buckets by client IP: `slots` rows of (key, tokens, last), guarded by one lock. With a
    multiprocessing context `ctx` they are in shared memory, and a parent may pass the table to the
    processes it starts from that context; without, they serve this process only.

    A key may sit in one of two slots. A bucket that would be full by now is the same as no bucket,
    so a new key takes an empty or refilled slot; if both hold clients still being held back, it
    takes the one closest to full. One table serves one limiter (one rate and burst)."""

    def __init__(self, slots: int = SLOTS, ctx: BaseContext | None = None) -> None:
        self.slots = slots
        self._rows = ctx.RawArray(ctypes.c_double, 3 * slots) if ctx else (ctypes.c_double * (3 * slots))()
        self._lock: Any = ctx.Lock() if ctx else threading.Lock()
        self._warned = -math.inf
        self._stuck = False

    def take(self, ip: str, rate: float, burst: int, now: float) -> float:
        """Refill `ip`'s bucket to `now` and spend a token if it has one; return the tokens it had."""
        key = bucket_key(ip)
        rows = self._rows

        def refilled(i: int) -> float:  # an empty slot counts as more than full
            return rows[3 * i + 1] + max(0.0, now - rows[3 * i + 2]) * rate if rows[3 * i] else math.inf

        if not self._lock.acquire(False):
            # Held for microseconds, so if it stays held its holder died holding it (a killed worker):
            # better an unlimited portal than a stuck one. Once seen stuck, no request waits for it.
            if self._stuck or not self._lock.acquire(True, LOCK_WAIT_S):
                self._stuck = True
                if time.monotonic() - self._warned > 60:
                    self._warned = time.monotonic()
                    log.error("the rate-limit table stays locked (a portal process died holding it?); "
                              "requests pass unlimited until it is free again")
                return math.inf
        self._stuck = False
        try:
            candidates = (key % self.slots, key // self.slots % self.slots)
            slot = next((i for i in candidates if rows[3 * i] == key), None)
            if slot is None:  # take over the slot whose bucket is closest to full, or empty
                slot = max(candidates, key=refilled)
                rows[3 * slot], rows[3 * slot + 1], rows[3 * slot + 2] = key, burst, now
            tokens = min(float(burst), refilled(slot))
            rows[3 * slot + 1] = tokens - 1.0 if tokens >= 1.0 else tokens
            rows[3 * slot + 2] = now
        finally:
            self._lock.release()
        return tokens


class RateLimiter:
    """`rate` requests per second with bursts of `burst`, per client IP, kept in `buckets` (shared
    with other processes) or in a table of its own. A rate of 0 or less turns the limit off."""

    def __init__(self, rate: float, burst: int, buckets: SharedBuckets | None = None,
                 proxies: Networks = ()) -> None:
        self.rate, self.burst, self.proxies = rate, burst, proxies
        self._clock = time.monotonic
        self._buckets = buckets if buckets is not None else SharedBuckets(SLOTS if rate > 0 else 1)

    def check_key(self, key_id: str) -> None:
        """The same limit per API key: for calls a key authenticated (one platform's backend is one client,
        whatever its addresses; many platforms behind one address are many)."""
        if self.rate <= 0:
            return
        tokens = self._buckets.take(f"key {key_id}", self.rate, self.burst, self._clock())
        if tokens < 1.0:
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / self.rate)))

    def check(self, request: web.Request) -> None:
        if self.rate <= 0:
            return
        tokens = self._buckets.take(client_bucket(client_ip(request, self.proxies)), self.rate, self.burst,
                                    self._clock())
        if tokens < 1.0:
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / self.rate)))
