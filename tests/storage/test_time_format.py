"""Entry times: the system clock's fast path writes exactly what the datetime path writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.clock import utc_now
from ledger.envelopes import core

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS = st.integers(min_value=946_684_800 * 10**9, max_value=7_258_118_400 * 10**9 - 1)  # 2000 to 2199


@settings(max_examples=500, deadline=None)
@given(ns=st.lists(NS, min_size=1, max_size=4))
def test_the_fast_path_writes_what_the_datetime_path_writes(ns: list[int]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        for n in ns:  # several times in a row: the kept second must never leak into another one
            for t in (n, n - 1_000_000, n + 999_999_999, n - 10**9):  # the same second, the next, before
                mp.setattr(core.time, "time_ns", lambda t=t: t)
                moment = EPOCH + timedelta(microseconds=t // 1000)
                assert core.format_time(utc_now) == core.format_time(lambda moment=moment: moment)


def test_the_system_clock_is_read() -> None:
    before = datetime.now(UTC)
    text = core.format_time(utc_now)
    after = datetime.now(UTC)
    stamped = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - timedelta(milliseconds=1) <= stamped <= after
