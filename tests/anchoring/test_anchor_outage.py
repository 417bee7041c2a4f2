"""A TSA outage never blocks appends, and anchoring catches up when the TSA is back (DESIGN.md §5).

The anchoring loop runs as it does in the server, with a short interval (0.2 s) and backoff cap
(0.4 s), against the OpenSSL-backed HTTP TSA of tests.anchoring.test_anchor switched to hang, answer 500
or send garbage, then back to healthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ledger.anchoring.anchor import Anchorer, anchoring_status, clients_for
from ledger.anchoring.tsa_client import Stamp, TsaUnavailableError
from ledger.envelopes.core import Ledger
from tests.anchoring.test_anchor import HttpTsa, configure, created, start_http_tsa
from verifier.anchored import verify_anchored

pytestmark = pytest.mark.slow
Server = Callable[..., Awaitable[TestServer]]
INTERVAL, BACKOFF_MAX = 0.2, 0.4


@pytest.fixture
async def http_tsa(tmp_path: Path, aiohttp_server: Server) -> AsyncIterator[tuple[HttpTsa, str]]:
    tsa, url = await start_http_tsa(tmp_path / "openssl-tsa", aiohttp_server)
    yield tsa, url
    tsa.mode = "ok"


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `condition()` holds; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.parametrize("mode", ["hang", "500", "garbage"])
async def test_outage_blocks_no_append_and_anchoring_catches_up(tmp_path: Path, http_tsa: tuple[HttpTsa, str],
                                                                mode: str) -> None:
    tsa, url = http_tsa
    Ledger.init(tmp_path / "home").close()
    cfg = tmp_path / "home" / "config.toml"
    cfg.write_text(cfg.read_text().replace("local_tsa = true", "local_tsa = false"))
    led = configure(tmp_path / "home", tsa.config(url, timeout_s=2.0))
    tsa.mode = mode
    async with aiohttp.ClientSession() as session:
        anchorer = Anchorer(led, clients_for(led, session), interval_s=INTERVAL, backoff_max_s=BACKOFF_MAX)
        assert list(anchorer.clients) == ["openssl"]
        loop = asyncio.create_task(anchorer.run())
        try:
            health = anchorer.health["openssl"]
            latencies, in_flight = [], []
            for i in range(60):  # the TSA is down (or hanging for up to its 2 s timeout) all along
                in_flight.append(health.task is not None)
                start = time.monotonic()
                await asyncio.wait_for(asyncio.to_thread(led.append, "t", created(1, start=i)), timeout=10)
                latencies.append(time.monotonic() - start)
                await asyncio.sleep(0.005)
            # waiting for the TSA would take its 2 s timeout; the bound leaves room for a loaded machine
            assert max(latencies) < 1.0, f"an append waited {max(latencies):.2f} s for the TSA"
            if mode == "hang":  # appends went on while a request to the TSA hung (the loop polls every
                # INTERVAL, so the request starts within the first few appends; any later one will do)
                assert any(in_flight[1:]) and tsa.requests >= 1
            if mode == "hang":
                await wait_for(lambda: health.failures >= 1, timeout=4)
            assert health.failures >= 1 and health.anchored_size == 0
            await wait_for(lambda: health.task is None)
            (status,) = anchoring_status(led)
            assert status["consecutive_failures"] >= 1 and status["unanchored"] == 60
            assert status["last_error"] and status["last_success"] is None
            tsa.mode = "ok"
            healed_after = await wait_for(lambda: health.anchored_size == led.log.size)
            # the next try comes within the backoff cap; the rest is OpenSSL and verification (slack for load)
            assert healed_after < BACKOFF_MAX + 2.5
        finally:
            loop.cancel()
            await asyncio.wait_for(asyncio.gather(loop, return_exceptions=True), timeout=10)
    try:
        # the one anchor of the latest checkpoint covers every entry appended during the outage
        assert led.log.conn.execute("SELECT size FROM anchors").fetchall() == [(60,)]
        (status,) = anchoring_status(led)
        assert status["consecutive_failures"] == 0 and status["unanchored"] == 0 and status["last_success"]
        at = datetime.now(UTC) + timedelta(days=1)
        for index in (0, 31, 59):
            bundle = led.prove_anchored(index).to_text()
            assert verify_anchored(bundle, led.log.signer.verifier, [tsa.root.read_bytes()], at=at).ok
    finally:
        led.close()


class DownTsa:
    """A TSA that is never there, recording when it was asked."""

    name, local, description = "down", False, "a TSA that is down"

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def stamp(self, data: bytes) -> Stamp:
        self.calls.append(time.monotonic())
        raise TsaUnavailableError("connection refused")


async def test_retries_back_off_exponentially_up_to_the_cap(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "home")
    try:
        led.append("t", created(1))
        down = DownTsa()
        anchorer = Anchorer(led, [down], interval_s=INTERVAL, backoff_max_s=BACKOFF_MAX)
        loop = asyncio.create_task(anchorer.run())
        await asyncio.sleep(1.6)
        loop.cancel()
        await asyncio.wait_for(asyncio.gather(loop, return_exceptions=True), timeout=10)
        gaps = [b - a for a, b in zip(down.calls, down.calls[1:], strict=False)]
        assert 3 <= len(down.calls) <= 7, down.calls
        # min(1 s, interval) first, then doubling, capped (the bounds leave room for a loaded machine)
        assert INTERVAL - 0.02 <= gaps[0] < INTERVAL + 0.3, gaps
        assert all(BACKOFF_MAX - 0.02 <= g < BACKOFF_MAX + 0.3 for g in gaps[1:]), gaps
        health = anchorer.health["down"]
        assert health.failures == len(down.calls)
        # after an hour down (thousands of failures) the next try is still at most the cap away
        health.failures = 10_000
        await anchorer._failed(health, 1, TsaUnavailableError("still down"))
        assert health.next_due - time.monotonic() <= BACKOFF_MAX
        status = {s["tsa"]: s for s in anchoring_status(led)}["down"]
        assert status["consecutive_failures"] == 10_001
        assert status["kind"] == "no longer configured"  # known from tsa_status, not from config.toml
    finally:
        led.close()


async def test_the_loop_stops_when_cancelled_as_it_wakes(tmp_path: Path) -> None:
    """A cancellation that arrives in the same turn as a wake-up still stops the loop (on Python 3.11,
    asyncio.wait_for could swallow it, and shutting the portal down then hung forever)."""
    led = Ledger.init(tmp_path / "home")
    try:
        anchorer = Anchorer(led, [DownTsa()], interval_s=3600, backoff_max_s=3600)
        for _ in range(20):
            loop = asyncio.create_task(anchorer.run())
            await asyncio.sleep(0.01)  # waiting for a wake-up now
            anchorer._wake.set()
            loop.cancel()
            done, _ = await asyncio.wait([loop], timeout=5)
            assert loop in done, "the anchoring loop went on after being cancelled"
    finally:
        led.close()
