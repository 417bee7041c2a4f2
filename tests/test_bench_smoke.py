"""The benchmarks' HTTP runs against the portal as it is configured by default (a limit the portal
gains must not turn a benchmark into a crash)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.anchor import http_tokens
from ledger.core import Ledger


def test_the_tsa_run_gets_tokens_past_the_default_rate_limit(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "home")
    try:
        res = asyncio.run(http_tokens(led, concurrency=4, seconds=1.5))
    finally:
        led.close()
    assert res["tokens"] > led.config.lookup_burst, res  # more than one client's burst: no limit applied
