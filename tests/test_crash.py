"""Crash safety: SIGKILL a writer at random moments; every acknowledged entry survives, audit passes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.audit import audit
from ledger.core import Ledger
from tests.conftest import ROOT
from verifier.merkle import leaf_hash

KILLS = 24


def test_sigkill_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    rng = random.Random(1234)
    acked: dict[int, str] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(KILLS):
        errors = tmp_path / f"stderr-{round_}.txt"
        with open(errors, "wb") as err:
            child = subprocess.Popen([sys.executable, "-m", "tests.crash_child", str(home), f"r{round_}"],
                                     stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=env)
        assert child.stdout is not None
        # wait for the first acknowledgement, so every round really writes, then kill at a random moment
        first = child.stdout.readline()
        assert first, errors.read_text()
        time.sleep(rng.uniform(0.0, 0.12))
        child.send_signal(signal.SIGKILL)
        lines = [first] + child.stdout.read().splitlines(keepends=True)
        child.wait()
        for line in lines:
            if line.endswith(b"\n"):  # a torn last line was never a complete acknowledgement
                try:
                    a = json.loads(line)
                except ValueError:
                    raise AssertionError(f"bad line {line!r}") from None
                acked[a["index"]] = a["leaf"]
        led = Ledger.open(home)
        try:
            size = led.log.size
            missing = [i for i in acked if i >= size]
            assert not missing, f"round {round_}: acknowledged entries {missing[:5]} lost (size {size})"
            stored = led.log.entries(0, size)
            for i, leaf in acked.items():
                assert leaf_hash(stored[i]).hex() == leaf, f"entry {i} changed"
            rep = audit(led.log)
            assert rep.ok, f"round {round_}: {rep.problems}"
        finally:
            led.close()
    assert len(acked) > KILLS * 10
    print(f"{KILLS} kills, {len(acked)} acknowledged entries, final size {size}")
