"""The benchmarks' HTTP runs against the portal as it is configured by default (a limit the portal
gains must not turn a benchmark into a crash)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.anchor import http_tokens
from bench.portal import verdict
from ledger.envelopes.core import Ledger


def test_the_tsa_run_gets_tokens_past_the_default_rate_limit(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "home")
    try:
        res = asyncio.run(http_tokens(led, concurrency=4, seconds=1.5))
    finally:
        led.close()
    assert res["tokens"] > led.config.lookup_burst, res  # more than one client's burst: no limit applied


def test_the_portal_bench_says_whether_each_target_was_met() -> None:
    assert verdict(8_000, 12.0, ">= 3,000/s, p99 <= 20 ms") == ": met"
    assert verdict(8_000, 21.0, ">= 3,000/s, p99 <= 20 ms") == ": MISSED"
    assert verdict(4_999, 10.0, ">= 5,000 events/s, p99 <= 50 ms") == ": MISSED"
    assert verdict(50_000, 50.0, ">= 50,000 events/s, p99 <= 50 ms") == ": met"
    assert verdict(60_000, None, ">= 50,000 events/s, p99 <= 50 ms") == ": MISSED", "no latency seen, no pass"
    assert verdict(13_000, 3.0, "") == ""
