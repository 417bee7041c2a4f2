"""The time in a witness cosignature: one far ahead of the log's clock is refused, and any time already
kept (a row stored before that rule) still renders on copy pages and in `ledger status`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import cli as ledger_cli
from ledger.anchoring.witness import witness_status
from ledger.envelopes.core import Ledger
from ledger.envelopes.demo import create_demo
from portal.app import create_app
from verifier.note import CosignatureSigner, parse_note

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
NOTARY = CosignatureSigner("notary.example/w1", Ed25519PrivateKey.generate())
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
FAR = 2**62  # within the spec's uint64 (and SQLite's int64), but past the year 9999


def _clock() -> datetime:
    return NOW


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.init(tmp_path / "home", clock=_clock)
    ledger.config = ledger.config.replace(witnesses=(NOTARY.verifier.to_string(),))
    yield ledger
    ledger.close()


def cosign_at(note: str, unix_time: int) -> str:
    n = parse_note(note)
    return n.with_signature(NOTARY.sign(n.text, unix_time)).to_text()


def test_the_margin_is_a_few_minutes() -> None:
    from ledger.anchoring.witness import MAX_COSIGNATURE_AHEAD

    assert 60 <= MAX_COSIGNATURE_AHEAD.total_seconds() <= 15 * 60


async def test_a_cosignature_from_the_future_is_refused(aiohttp_client: Client, led: Ledger) -> None:
    led.append("t", [{"type": "envelope.created", "envelope": "E", "title": "x"}])
    client = await aiohttp_client(create_app(led))
    cp = led.log.latest_checkpoint
    now = int(NOW.timestamp())

    async def refused(t: int) -> None:
        r = await client.post("/witness/cosign", data=cosign_at(cp, t))
        got = await r.json()
        assert (r.status, got["error"]["code"]) == (422, "future_cosignature"), (t, got)
        assert "notary.example/w1" in got["error"]["message"] and "ahead of this log's clock" in got["error"]["message"]

    for t in (FAR, 2**63 - 1, now + 3600):  # (2**63 and more do not verify: bad_cosignature)
        await refused(t)
    from ledger.anchoring.witness import MAX_COSIGNATURE_AHEAD

    ahead = int(MAX_COSIGNATURE_AHEAD.total_seconds())
    await refused(now + ahead + 1)
    assert led.log.conn.execute("SELECT count(*) FROM cosignatures").fetchone() == (0,)
    # a notary whose clock runs a minute fast is still heard; so is one at the edge of the margin
    r = await client.post("/witness/cosign", data=cosign_at(cp, now + 60))
    assert r.status == 200, await r.text()
    assert (await r.json())["accepted"] == ["notary.example/w1"]
    assert led.log.conn.execute("SELECT time FROM cosignatures").fetchall() == [(now + 60,)]
    led.append("t", [{"type": "envelope.created", "envelope": "F", "title": "y"}])
    r = await client.post("/witness/cosign", data=cosign_at(led.log.latest_checkpoint, now + ahead))
    assert r.status == 200, await r.text()


async def test_a_far_future_row_already_kept_does_not_break_pages_or_status(aiohttp_client: Client, led: Ledger,
                                                                              tmp_path: Path) -> None:
    codes = {d["status"]: d["code"] for d in create_demo(led)}
    size = led.log.size
    line = parse_note(cosign_at(led.log.latest_checkpoint, FAR)).signatures[-1].line().rstrip("\n")
    # kept before future times were refused: the table is append-only, so such a row stays
    led.log.conn.execute("INSERT INTO cosignatures(size, witness, time, line, received) VALUES (?, ?, ?, ?, ?)",
                         (size, NOTARY.verifier.name, FAR, line, NOW.isoformat()))
    client = await aiohttp_client(create_app(led))
    r = await client.get(f"/v/{codes['voided']}")
    assert r.status == 200, await r.text()
    assert f"notary.example/w1: cosigned at Unix time {FAR}" in await r.text()
    r = await client.get(f"/v/{codes['voided']}.json")
    assert r.status == 200
    assert (await r.json())["witnesses"] == [{"witness": "notary.example/w1", "size": size, "time": f"Unix time {FAR}"}]
    assert witness_status(led) == [{"witness": "notary.example/w1", "size": size, "time": f"Unix time {FAR}"}]
    assert (await client.get(f"/checkpoint/{size}")).status == 200


def test_ledger_status_shows_a_far_future_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    led = Ledger.init(home, clock=_clock)
    led.append("t", [{"type": "envelope.created", "envelope": "E", "title": "x"}])
    line = parse_note(cosign_at(led.log.latest_checkpoint, FAR)).signatures[-1].line().rstrip("\n")
    led.log.conn.execute("INSERT INTO cosignatures(size, witness, time, line, received) VALUES (?, ?, ?, ?, ?)",
                         (led.log.size, NOTARY.verifier.name, FAR, line, NOW.isoformat()))
    led.close()
    cfg = home / "config.toml"
    text = cfg.read_text()
    assert "\nwitnesses = []\n" in text
    cfg.write_text(text.replace("\nwitnesses = []\n", f'\nwitnesses = ["{NOTARY.verifier.to_string()}"]\n'))
    assert ledger_cli.main(["--home", str(home), "status", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["witnesses"] == [{"witness": "notary.example/w1", "size": 1, "time": f"Unix time {FAR}"}]
    assert ledger_cli.main(["--home", str(home), "status"]) == 0
    assert f"last at Unix time {FAR}" in capsys.readouterr().out


def test_times_a_calendar_can_show_render_as_rfc3339() -> None:
    from ledger.anchoring.witness import _utc_text

    assert _utc_text(0) == "1970-01-01T00:00:00Z"
    assert _utc_text(int(NOW.timestamp())) == "2026-03-01T12:00:00Z"
    assert _utc_text(253402300799) == "9999-12-31T23:59:59Z"
    for t in (253402300800, FAR, 2**63 - 1, 2**64 - 1):
        assert _utc_text(t) == f"Unix time {t}"
