"""A ledger on a volume that really fills up (a 20 MiB tmpfs), one event per commit.

Writes fail with a storage error (503) and acknowledge nothing, and nothing acknowledged before is
lost. Once space is freed, the WAL is checkpointed and emptied without waiting for another write, and
the ledger then takes a sustained run of commits (far more WAL than the volume holds, had it not been
checkpointed), its WAL bounded the whole time; idle, the WAL is emptied again; `ledger audit` passes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ledger import cli
from ledger.envelopes.core import Ledger
from ledger.errors import StorageError
from ledger.storage.checkpointer import WAL_HARD_LIMIT
from ledger.storage.schema import DB_NAME
from tests.storage.tmpfs import fill, tmpfs
from verifier.merkle import leaf_hash

T = "tenant-a"
SUSTAINED = 1500  # one event each: about 75 MB of WAL, nearly four times the volume


def _one(led: Ledger, k: int) -> dict[str, Any]:
    (ack,) = led.append(T, [{"type": "envelope.created", "envelope": f"E-{k}", "title": f"Lease {k}"}])
    return ack


def _wal_emptied(wal: Path, within_s: float = 15) -> bool:
    deadline = time.monotonic() + within_s
    while wal.exists() and wal.stat().st_size > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_full_volume_fails_writes_and_freed_space_brings_the_ledger_back_for_good(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    with tmpfs(vol, "20m"):
        home = vol / "home"
        wal = home / (DB_NAME + "-wal")
        led = Ledger.init(home)
        try:
            acked = [_one(led, k) for k in range(200)]
            filler = fill(vol)
            k = len(acked)
            while True:  # the ledger may still use space it holds already; then it is full
                assert k < 5000, "appends kept succeeding on a full volume"
                try:
                    acked.append(_one(led, k))
                except StorageError as e:
                    assert e.status == 503 and "nothing was acknowledged" in str(e), e
                    break
                k += 1
            for _ in range(3):
                try:
                    _one(led, k)
                    raise AssertionError("an append succeeded on a full volume")
                except StorageError as e:
                    assert e.status == 503 and "full" in str(e), e
            assert led.log.size == len(acked), "a failed write moved the published tree"

            filler.unlink()
            assert _wal_emptied(wal), (f"space is back, but the WAL ({wal.stat().st_size} bytes) was not "
                                       "checkpointed and emptied after the failed writes")
            biggest = 0
            for j in range(SUSTAINED):
                acked.append(_one(led, k + j))
                biggest = max(biggest, wal.stat().st_size if wal.exists() else 0)
            assert biggest <= WAL_HARD_LIMIT + (1 << 20), f"the WAL grew to {biggest} bytes"
            assert _wal_emptied(wal), "an idle ledger's WAL was not checkpointed and emptied"
            size = led.log.size
        finally:
            led.close()
        assert size == len(acked) == k + SUSTAINED
        assert cli.main(["--home", str(home), "audit"]) == 0, "ledger audit failed after the full disk"
        led = Ledger.open(home)
        try:
            assert led.log.size == size
            for ack in acked[:: max(1, len(acked) // 200)] + acked[-5:]:  # nothing acknowledged is lost
                assert leaf_hash(led.log.entry(ack["index"])).hex() == ack["leaf_hash"]
            assert led.envelope(T, f"E-{k + SUSTAINED - 1}")["status"] == "draft"
        finally:
            led.close()
