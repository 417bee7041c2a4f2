"""`python -m bench anchor`: the local TSA over HTTP, token verification, and the anchoring loop's cost.

1. Tokens per second: `POST /tsa` on a running app (aiohttp on 127.0.0.1, anchoring loop off),
   `--concurrency` aiohttp clients for `--seconds`; every answer must be a granted TimeStampResp.
2. Verification: `verifier.timestamp.verify_timestamp` on `--tokens` tokens (imprint, nonce,
   chain, EKU ...), median and p99.
3. Anchoring CPU: a ledger sustaining about `--rate` appends/s (raw 200-byte entries from a producer
   thread, through the sequencer) while the anchoring loop runs with the local TSA every
   `--interval` s, on its own event-loop thread and thread pool. The CPU time of those threads
   (`time.pthread_getcpuclockid`) over wall time is the loop's cost, as a percentage of one core;
   it is also scaled to the default 60 s interval. The sequencer's share (one row per anchor) is
   not counted: it is one small INSERT in a transaction the appends pay for anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import report
from bench.common import percentile
from ledger.anchoring.anchor import Anchorer
from ledger.anchoring.tsa import build_request
from ledger.anchoring.tsa_client import LocalTsaClient
from ledger.envelopes.core import Ledger
from portal.app import create_app
from verifier._cms import TimeStampResp
from verifier.note import parse_note
from verifier.timestamp import verify_timestamp

QUERY = {"Content-Type": "application/timestamp-query"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench anchor", description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=16, help="concurrent POST /tsa clients (default 16)")
    p.add_argument("--seconds", type=float, default=5.0, help="length of the HTTP run (default 5)")
    p.add_argument("--tokens", type=int, default=300, help="tokens verified (default 300)")
    p.add_argument("--rate", type=int, default=10_000, help="appends per second to sustain (default 10000)")
    p.add_argument("--duration", type=float, default=10.0, help="length of the anchoring run (default 10)")
    p.add_argument("--interval", type=float, default=1.0, help="anchoring interval in that run (default 1 s)")
    return p.parse_args(argv)


async def http_tokens(led: Ledger, concurrency: int, seconds: float) -> dict[str, Any]:
    # no rate limit: the load comes from one address (the portal limits POST /tsa per client)
    runner = web.AppRunner(create_app(led, anchor=False, lookup_rate=0.0), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/tsa"
    query = build_request(parse_note(led.log.latest_checkpoint).text.encode(), nonce=12345)
    done, latencies = 0, []
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with session.post(url, data=query, headers=QUERY) as resp:
                reply = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"POST /tsa answered {resp.status}: {reply[:200]!r}")
            latencies.append((time.perf_counter() - t0) * 1000)
            if TimeStampResp.load(reply)["status"]["status"].native != "granted":
                raise RuntimeError("the local TSA refused a good request")
            done += 1

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            start = time.perf_counter()
            await asyncio.gather(*(client(session) for _ in range(concurrency)))
            wall = time.perf_counter() - start
    finally:
        await runner.cleanup()
    return {"tokens": done, "tokens_per_s": done / wall, "median_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 99), "concurrency": concurrency}


def verification(led: Ledger, count: int) -> dict[str, Any]:
    assert led.local_tsa is not None
    data = parse_note(led.log.latest_checkpoint).text.encode()
    roots = [led.local_tsa.root_der]
    tokens = [(n, led.local_tsa.issue_token(data, nonce=n)) for n in range(1, count + 1)]
    samples = []
    for nonce, token in tokens:
        t0 = time.perf_counter()
        ok = verify_timestamp(token, data=data, trusted_roots=roots, nonce=nonce).ok
        samples.append((time.perf_counter() - t0) * 1000)
        if not ok:
            raise RuntimeError("a local TSA token did not verify")
    return {"tokens": count, "median_ms": statistics.median(samples), "p99_ms": percentile(samples, 99)}


class _AnchorThread(threading.Thread):
    """The anchoring loop on its own event loop and thread pool, so its CPU time can be read apart."""

    def __init__(self, led: Ledger, interval: float) -> None:
        super().__init__(name="bench-anchoring", daemon=True)
        self.led, self.interval = led, interval
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bench-anchoring-pool")
        self.stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()
        self.anchorer: Anchorer | None = None

    def run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(self.pool)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        assert self.led.local_tsa is not None
        self.stop = asyncio.Event()
        self.anchorer = Anchorer(self.led, [LocalTsaClient(self.led.local_tsa, self.led.clock)],
                                 interval_s=self.interval)
        task = asyncio.create_task(self.anchorer.run())
        self.ready.set()
        await self.stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def cpu_seconds(self) -> float:
        threads = [self, *self.pool._threads]
        return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for t in threads if t.ident)

    def finish(self) -> None:
        assert self.loop is not None and self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.join()
        self.pool.shutdown()


def anchoring_cost(led: Ledger, rate: int, duration: float, interval: float) -> dict[str, Any]:
    anchoring = _AnchorThread(led, interval)
    anchoring.start()
    anchoring.ready.wait()
    payload = os.urandom(200)
    seq = led.sequencer
    assert seq is not None, "a writer's ledger has a sequencer"
    before_size = led.log.size
    cpu0, t0 = anchoring.cpu_seconds(), time.perf_counter()
    submitted, last = 0, None
    while (elapsed := time.perf_counter() - t0) < duration:
        target = int(elapsed * rate)
        futures: list[Future[Any]] = [seq.submit(payload + i.to_bytes(8, "big"))
                                      for i in range(submitted, target)]
        submitted = target
        last = futures[-1] if futures else last
        time.sleep(0.001)
    if last is not None:
        last.result()
    wall = time.perf_counter() - t0
    cpu = anchoring.cpu_seconds() - cpu0
    anchorer = anchoring.anchorer
    anchoring.finish()
    anchors = led.log.conn.execute("SELECT count(*) FROM anchors WHERE tsa = 'local'").fetchone()[0]
    per_anchor = cpu / max(anchors, 1)
    return {"appends_per_s": (led.log.size - before_size) / wall, "wall_s": wall, "cpu_s": cpu,
            "anchors": anchors, "interval_s": interval, "cpu_percent": 100 * cpu / wall,
            "cpu_ms_per_anchor": 1000 * per_anchor, "cpu_percent_at_60s": 100 * per_anchor / 60,
            "failures": anchorer.health["local"].failures if anchorer else None}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print(report.machine_header(report.machine_info()))
    scratch = Path(tempfile.mkdtemp(prefix="bench-anchor-"))
    try:
        led = Ledger.init(scratch / "home")
        led.append("bench", [{"type": "envelope.created", "envelope": "b-1", "title": "bench"}])
        try:
            http = asyncio.run(http_tokens(led, args.concurrency, args.seconds))
            print(f"local TSA over HTTP (POST /tsa, {http['concurrency']} concurrent clients, {args.seconds:.0f} s): "
                  f"{http['tokens_per_s']:,.0f} tokens/s ↑; latency median {http['median_ms']:.1f} ms, "
                  f"p99 {http['p99_ms']:.1f} ms ↓", flush=True)
            ver = verification(led, args.tokens)
            print(f"token verification ({ver['tokens']} tokens, all 9 checks): median {ver['median_ms']:.2f} ms, "
                  f"p99 {ver['p99_ms']:.2f} ms ↓", flush=True)
            cost = anchoring_cost(led, args.rate, args.duration, args.interval)
            verdict = "meets" if cost["cpu_percent_at_60s"] < 5 else "MISSES"
            print(f"anchoring loop while appending {cost['appends_per_s']:,.0f} entries/s for {cost['wall_s']:.0f} s "
                  f"(interval {cost['interval_s']:g} s, {cost['anchors']} anchors, {cost['failures']} failures): "
                  f"{cost['cpu_percent']:.2f}% of one core ↓, {cost['cpu_ms_per_anchor']:.1f} ms CPU per anchor; "
                  f"at the default 60 s interval {cost['cpu_percent_at_60s']:.3f}% of one core ({verdict} the "
                  "target of 5%)")
        finally:
            led.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
