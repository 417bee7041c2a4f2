"""Acknowledged appends per second through the ledger's own path, on SQLite and on PostgreSQL.

The path is that of `ledger serve` without HTTP: each request's JSON is parsed (`parse_events`) and handed
to `Ledger.asubmit` from one asyncio loop, where `--connections` clients each wait for their answer before
sending the next; the sequencer's thread commits whatever is queued as one transaction with one signed
checkpoint (`batch_max` and `batch_delay_ms` as `ledger init` writes them) and answers only after COMMIT.
On SQLite, WAL with `synchronous=FULL`; on PostgreSQL, `fsync` and `synchronous_commit` on (the cluster of
`bench.scale.servers`, on this machine). Two workloads, the same bytes on either engine:
1. durable appends: one `envelope.created` per request, each for a new envelope;
2. a contract's lifecycle, request by request as a signing platform posts it: created with its document and
   two parties (one request), sent, each party authenticated and signed, completed, a copy printed: 11
   events in 8 requests, each one checked against the envelope's state by the ledger.
Afterwards the log must hold exactly the events acknowledged (nothing more, nothing less).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.common import percentile
from ledger.envelopes.core import Ledger
from ledger.envelopes.events import parse_events

TENANT = "bench"
DOC = hashlib.sha256(b"a 20-page contract").hexdigest()
SIGNED = hashlib.sha256(b"the same, signed").hexdigest()
Requests = Callable[[str], list[list[dict[str, Any]]]]


def created(ref: str) -> list[list[dict[str, Any]]]:
    """Workload 1: one event, one request."""
    return [[{"type": "envelope.created", "envelope": ref, "title": "Lease"}]]


def lifecycle(ref: str) -> list[list[dict[str, Any]]]:
    """Workload 2: the requests of one contract, from creation to a printed copy (11 events)."""
    def ev(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "envelope": ref, **fields}

    def signs(p: str) -> list[list[dict[str, Any]]]:
        return [[ev("party.authenticated", party=p, method="sms")],
                [ev("party.signed", party=p, channel="web", document="d", signed_sha256=SIGNED)]]

    return [[ev("envelope.created", title="Lease"), ev("document.added", document="d", sha256=DOC, size=48213,
                                                       name="lease.pdf"),
             ev("party.added", party="a", role="signer", order=1, name="Landlord"),
             ev("party.added", party="b", role="signer", order=2, name="Tenant")],
            [ev("envelope.sent")], *signs("a"), *signs("b"), [ev("envelope.completed")],
            [ev("copy.printed", document="d")]]


LIFECYCLE_EVENTS = sum(len(r) for r in lifecycle("x"))


async def _load(led: Ledger, requests: Requests, name: str, connections: int, seconds: float) -> dict[str, Any]:
    """`connections` clients, each sending one workload after another for `seconds`."""
    latencies: list[float] = []
    events = [0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def client(c: int) -> None:
        k = 0
        while loop.time() < deadline:
            for body in requests(f"{name}-{c}-{k}"):
                raw = orjson.dumps(body)  # what the API receives, parsed as the API parses it
                t0 = time.perf_counter()
                acks = await led.asubmit(TENANT, parse_events(raw))
                latencies.append(time.perf_counter() - t0)
                events[0] += len(acks)
            k += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(connections)))
    elapsed = time.perf_counter() - t0
    return {"events": events[0], "requests": len(latencies), "seconds": elapsed,
            "events_per_s": events[0] / elapsed, "requests_per_s": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def measure(home: Path, database: str = "", connections: int = 32, seconds: float = 5.0) -> dict[str, Any]:
    """Both workloads on a new ledger in `home` (its database: "" for SQLite, or a postgresql:// URL)."""
    led = Ledger.init(home, database=database or None)
    try:
        size0, batches0 = led.log.size, led.log.transactions
        appends = asyncio.run(_load(led, created, "A", connections, seconds))
        contracts = asyncio.run(_load(led, lifecycle, "L", connections, seconds))
        grown, commits = led.log.size - size0, led.log.transactions - batches0
        if grown != appends["events"] + contracts["events"]:
            raise AssertionError(f"the log grew by {grown} entries, but {appends['events'] + contracts['events']} "
                                 "events were acknowledged")
    finally:
        led.close()
    contracts["contracts_per_s"] = contracts["events_per_s"] / LIFECYCLE_EVENTS
    return {"engine": "postgresql" if database else "sqlite", "connections": connections, "appends": appends,
            "lifecycle": contracts, "commits": commits, "events_per_commit": grown / max(1, commits)}
