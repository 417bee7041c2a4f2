"""Rate limits hold for the whole portal: the processes of `ledger serve --workers N` share one table
of token buckets, so a client spreading its requests over several connections gets no more."""

from __future__ import annotations

import multiprocessing
import re
import time
import urllib.error
import urllib.request
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web

from ledger.envelopes.core import Ledger
from portal.ratelimit import RateLimited, RateLimiter, SharedBuckets
from tests.portal.test_serve_workers import _port, _start


class _Request:
    transport = None
    headers: dict[str, str] = {}

    def __init__(self, ip: str) -> None:
        self.remote = ip


def _from(ip: str) -> web.Request:
    return cast(web.Request, _Request(ip))


def _allowed(limiter: RateLimiter, ip: str) -> bool:
    try:
        limiter.check(_from(ip))
    except RateLimited as e:
        assert e.retry_after >= 1
        return False
    return True


@pytest.mark.parametrize("ctx", [None, multiprocessing.get_context("spawn")], ids=["local", "shared"])
def test_limiters_sharing_a_table_share_the_limit(ctx: BaseContext | None) -> None:
    table = SharedBuckets(slots=64, ctx=ctx)
    workers = [RateLimiter(1.0, 5, table), RateLimiter(1.0, 5, table)]
    now = [1000.0]
    for w in workers:
        w._clock = lambda: now[0]
    answers = [_allowed(workers[k % 2], "203.0.113.1") for k in range(12)]
    assert answers == [True] * 5 + [False] * 7, "five in all, whichever process answers"
    assert all(_allowed(workers[k % 2], "203.0.113.2") for k in range(5)), "another client has its own bucket"
    with pytest.raises(RateLimited) as refused:
        workers[0].check(_from("203.0.113.1"))
    assert refused.value.retry_after == 1
    now[0] += 2.5  # two and a half tokens come back
    assert [_allowed(workers[k % 2], "203.0.113.1") for k in range(3)] == [True, True, False]
    now[0] += 100  # back to the full burst, no more
    assert sum(_allowed(workers[k % 2], "203.0.113.1") for k in range(8)) == 5


def test_slow_refill_gives_a_long_retry_after() -> None:
    limiter = RateLimiter(0.1, 1, SharedBuckets(slots=16))
    limiter._clock = lambda: 50.0
    limiter.check(_from("198.51.100.1"))
    with pytest.raises(RateLimited) as refused:
        limiter.check(_from("198.51.100.1"))
    assert refused.value.retry_after == 10


def test_a_zero_rate_turns_the_limit_off() -> None:
    limiter = RateLimiter(0, 1)
    assert all(_allowed(limiter, "198.51.100.1") for _ in range(100))


@pytest.mark.parametrize("ctx", [None, multiprocessing.get_context("spawn")], ids=["local", "shared"])
def test_memory_is_bounded_and_eviction_never_fails(ctx: BaseContext | None) -> None:
    table = SharedBuckets(slots=8, ctx=ctx)
    limiter = RateLimiter(1.0, 2, table)
    now = [0.0]
    limiter._clock = lambda: now[0]
    for n in range(2000):  # far more clients than slots: each new one takes over a slot
        assert _allowed(limiter, f"10.0.{n // 256}.{n % 256}")
        assert _allowed(limiter, f"10.0.{n // 256}.{n % 256}")
        assert not _allowed(limiter, f"10.0.{n // 256}.{n % 256}")
        now[0] += 0.001
    assert len(table._rows) == 3 * 8


def test_a_held_back_client_stays_held_back_while_there_is_room() -> None:
    limiter = RateLimiter(1.0, 2, SharedBuckets())
    limiter._clock = lambda: 0.0
    assert [_allowed(limiter, "192.0.2.1") for _ in range(3)] == [True, True, False]
    for n in range(1000):
        assert _allowed(limiter, f"10.1.{n // 256}.{n % 256}")
    assert not _allowed(limiter, "192.0.2.1")


def _spend(table: SharedBuckets, ip: str, times: int) -> None:
    seen = [table.take(ip, 0.001, 5, time.monotonic()) for _ in range(times)]
    assert [round(t) for t in seen] == [3, 2], seen  # the parent spent two tokens before


def test_a_spawned_process_spends_the_same_buckets() -> None:
    ctx = multiprocessing.get_context("spawn")
    table = SharedBuckets(slots=64, ctx=ctx)
    ip = "198.51.100.9"
    assert round(table.take(ip, 0.001, 5, time.monotonic())) == 5
    assert round(table.take(ip, 0.001, 5, time.monotonic())) == 4
    child = ctx.Process(target=_spend, args=(table, ip, 2))
    child.start()
    child.join(timeout=20)
    assert child.exitcode == 0, "the child saw other buckets"
    assert 1.0 <= table.take(ip, 0.001, 5, time.monotonic()) < 1.1
    assert table.take(ip, 0.001, 5, time.monotonic()) < 1.0, "the child's spending counts here too"


def test_two_workers_enforce_one_limit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    rate, burst = 0.5, 6
    cfg = home / "config.toml"
    text = cfg.read_text()
    for key, value in (("lookup_rate", str(rate)), ("lookup_burst", str(burst))):
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    cfg.write_text(text)
    port = _port()
    proc = _start(home, port)
    url = f"http://127.0.0.1:{port}/d/{'0' * 64}"  # a rate-limited lookup
    answered, refused, workers = 0, 0, set()
    try:
        started = time.monotonic()
        for _ in range(40):  # each on a new connection: they spread over both workers
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    assert resp.status == 200
                    answered += 1
                    workers.add(resp.headers["X-Ledger-Process"])
            except urllib.error.HTTPError as e:
                assert e.code == 429 and int(e.headers["Retry-After"]) >= 1, e.code
                refused += 1
                workers.add(e.headers["X-Ledger-Process"])
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert answered <= burst + rate * elapsed + 1, f"{answered} answered in {elapsed:.1f} s, burst {burst}"
    assert answered >= burst and refused == 40 - answered
    assert workers == {"worker 1", "worker 2"}, f"both workers must have answered, saw {workers}"


def test_a_lock_left_held_lets_requests_through(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A process killed inside the table's lock leaves it held: the portal keeps answering, unlimited."""
    from portal import ratelimit

    table = SharedBuckets(slots=8, ctx=multiprocessing.get_context("spawn"))
    limiter = RateLimiter(0.01, 1, table)
    assert _allowed(limiter, "203.0.113.9") and not _allowed(limiter, "203.0.113.9")
    table._lock.acquire()  # as if its holder had died
    monkeypatch.setattr(ratelimit, "LOCK_WAIT_S", 1.0)
    started = time.monotonic()
    assert all(_allowed(limiter, "203.0.113.9") for _ in range(20))
    assert time.monotonic() - started < 5, "every request waited for the stuck lock, not just the first"
    assert sum("stays locked" in r.message for r in caplog.records) == 1, "one error, not one per request"
    table._lock.release()
    assert not _allowed(limiter, "203.0.113.9"), "limited again once the table is free"
