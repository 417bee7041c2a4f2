"""The writer pushes each new checkpoint to the witnesses in `witness_urls` (C2SP tlog-witness) and keeps
their cosignatures; a witness that is down or silent never slows an append, and one push catches up."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ledger.anchoring import push
from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.errors import LedgerError
from portal.app import create_app
from tests.browser_util import free_port
from tests.notary.procs import WitnessProcess
from verifier.checkpoint import verify_checkpoint
from verifier.note import CosignatureVerifier

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
NAME = "notary.example/w1"


@pytest.fixture
def led(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.init(tmp_path / "home")
    yield ledger
    ledger.close()


def cosigned_size(led: Ledger, name: str = NAME) -> int:
    return push._kept_size(led, name)


async def wait_for(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def append(led: Ledger, n: int = 1) -> float:
    """Append n events one request at a time; the slowest acknowledgement, in seconds."""
    slowest = 0.0
    for _ in range(n):
        t0 = time.monotonic()
        await asyncio.to_thread(led.append, "t", [{"type": "envelope.created", "envelope": f"E{led.log.size}",
                                                   "title": "x"}])
        slowest = max(slowest, time.monotonic() - t0)
    return slowest


async def test_the_writer_pushes_checkpoints_and_keeps_the_cosignatures(
        aiohttp_client: Client, led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push, "BACKOFF_MAX_S", 0.5)
    witness = WitnessProcess(tmp_path / "witness", [led.verifier_key]).start()
    try:
        led.config = led.config.replace(witnesses=(witness.vkey,), witness_urls=((NAME, witness.url),))
        client = await aiohttp_client(create_app(led))
        baseline = await append(led, 3)
        await wait_for(lambda: cosigned_size(led) == led.log.size)
        cosigner = CosignatureVerifier.from_string(witness.vkey)
        r = await client.get("/checkpoint/cosigned")
        assert r.status == 200
        cp = verify_checkpoint(await r.text(), led.verifier, witnesses=[cosigner], witness_quorum=1).checkpoint
        assert cp.size == led.log.size
        # the witness goes down: appends go on at their speed
        witness.stop()
        down = await append(led, 5)
        assert down < max(0.5, 5 * baseline), f"an append took {down:.3f} s with the witness down"
        await asyncio.sleep(0.3)  # a few failed pushes, backing off
        assert cosigned_size(led) == cp.size
        # back: one push of the latest checkpoint catches up
        before = witness.output().count("cosigned")
        witness.start()
        await wait_for(lambda: cosigned_size(led) == led.log.size)
        assert witness.output().count("cosigned") == before + 1, witness.output()
        assert f"at size {led.log.size} (held {cp.size})" in witness.output()
        r = await client.get(f"/checkpoint/{led.log.size}")
        verify_checkpoint(await r.text(), led.verifier, witnesses=[cosigner], witness_quorum=1)
    finally:
        witness.stop()


async def test_a_witness_that_never_answers_delays_no_append(aiohttp_client: Client, led: Ledger,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A witness that takes the connection and never answers: the push times out, appends do not notice,
    and a witness that lost its state (a new one at that address) is told the size by 409 and caught up."""
    monkeypatch.setattr(push, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(push, "BACKOFF_MAX_S", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    witness = WitnessProcess(tmp_path / "witness", [led.verifier_key], port=port)
    led.config = led.config.replace(witnesses=(witness.vkey,), witness_urls=((NAME, witness.url),))
    await aiohttp_client(create_app(led))
    try:
        slowest = await append(led, 10)
        assert slowest < 0.5, f"an append took {slowest:.3f} s while a witness hung"
        assert cosigned_size(led) == 0
    finally:
        silent.close()
    try:
        witness.start()
        await wait_for(lambda: cosigned_size(led) == led.log.size)
    finally:
        witness.stop()


async def test_a_409_size_is_taken_and_a_witness_ahead_is_reported(led: Ledger, tmp_path: Path) -> None:
    import aiohttp

    witness = WitnessProcess(tmp_path / "witness", [led.verifier_key]).start()
    try:
        led.config = led.config.replace(witnesses=(witness.vkey,), witness_urls=((NAME, witness.url),))
        await append(led, 4)
        async with aiohttp.ClientSession() as session:
            pusher = push.Pusher(led, session)
            (target,) = pusher.targets
            target.size = 2  # a wrong belief: the witness holds nothing
            assert await pusher.push(target) == led.log.size
            await append(led, 2)
            target.size = 1  # wrong again: 409 says 4, the retry carries the proof from 4
            assert await pusher.push(target) == led.log.size == cosigned_size(led)
            target.size = led.log.size + 5
            with pytest.raises(push.PushError, match="rolled back, or forked"):
                await pusher.push(target)
    finally:
        witness.stop()


def test_witness_urls_in_the_config_are_checked(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from verifier.note import CosignatureSigner

    vkey = CosignatureSigner(NAME, Ed25519PrivateKey.generate()).verifier.to_string()
    cfg = home / "config.toml"
    cfg.write_text(f'witnesses = ["{vkey}"]\n\n[witness_urls]\n"{NAME}" = "http://127.0.0.1:{free_port()}"\n')
    assert dict(load_config(home).witness_urls)[NAME].startswith("http://127.0.0.1:")
    cfg.write_text(f'witnesses = ["{vkey}"]\nwitness_urls = {{ "{NAME}" = "https://w.example/prefix" }}\n')
    assert load_config(home).witness_urls == ((NAME, "https://w.example/prefix"),)
    for text, words in ((f'witness_urls = {{ "{NAME}" = "http://x" }}\n', "not the name of a key in witnesses"),
                        (f'witnesses = ["{vkey}"]\nwitness_urls = {{ "{NAME}" = "ftp://x" }}\n', "http://"),
                        (f'witnesses = ["{vkey}"]\nwitness_urls = {{ "{NAME}" = "http://u:p@x" }}\n', "credentials"),
                        (f'witnesses = ["{vkey}"]\nwitness_urls = {{ "{NAME}" = 7 }}\n', "table"),
                        ('witness_urls = ["http://x"]\n', "table")):
        cfg.write_text(text)
        with pytest.raises(LedgerError, match=words):
            load_config(home)
    # `ledger init` writes the key, empty, in a form that reads back
    led = Ledger.init(tmp_path / "new")
    assert "witness_urls = {}" in (tmp_path / "new" / "config.toml").read_text()
    assert load_config(tmp_path / "new").witness_urls == ()
    led.close()
