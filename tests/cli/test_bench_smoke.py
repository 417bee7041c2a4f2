"""The benchmarks' HTTP runs against the portal as it is configured by default (a limit the portal
gains must not turn a benchmark into a crash)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.anchor import http_tokens
from bench.portal import verdict
from bench.scale import run as scale
from ledger.envelopes.core import Ledger
from tests.pg import cluster


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


def test_the_scale_bench_runs_every_part_and_holds_each_to_its_target() -> None:
    """`./scripts/bench scale` in miniature, on the tests' PostgreSQL: appends on both engines (every
    acknowledged event checked in the log), pages from one and two hosts, tiles through nginx and the portal."""
    r = scale.measure(cluster(), seconds=1, connections=4, tile_count=2)
    for engine in ("sqlite", "postgresql"):
        assert r[engine]["engine"] == engine
        assert r[engine]["appends"]["events"] > 0 and r[engine]["lifecycle"]["events"] > 0, r[engine]
        assert r[engine]["lifecycle"]["events"] % 1 == 0 and r[engine]["commits"] > 0
    assert r["pages"]["one_host"]["rps"] > 0 and len(r["pages"]["two_hosts"]["per_host"]) == 2
    assert r["pages"]["one_host"]["non_2xx"] == r["pages"]["two_hosts"]["non_2xx"] == 0
    assert r["tiles"]["engine"] == "postgresql" and r["tiles"]["paths"] == 4 and r["tiles"]["ratio"] > 0
    lines = scale.report(r)
    table = "\n".join(lines)
    assert table.count("PostgreSQL >= 25% of SQLite: ") == 2 and "nginx >= 3x the portal: " in table
    assert "GET /v/{code} pages/s" in table
