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
from typing import Any

from ledger.audit.run import audit
from ledger.envelopes.core import Ledger
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
        size = _assert_acknowledged_survive(home, acked, round_)
    assert len(acked) > KILLS * 10
    print(f"{KILLS} kills, {len(acked)} acknowledged entries, final size {size}")


def test_sigkill_of_the_writer_behind_workers_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """`ledger serve --workers 2` under load; SIGKILL the writer: every 201 answered before is in the
    log, the workers stop by themselves, and the next `ledger serve` carries on."""
    import socket
    import threading

    from ledger.access.apikeys import create_key

    home = tmp_path / "home"
    led = Ledger.init(home)
    key = create_key(led.log, "t", ["append"])
    led.close()
    rng = random.Random(99)
    acked: dict[int, str] = {}
    lock = threading.Lock()
    for round_ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([str(Path(sys.executable).parent / "ledger"), "--home", str(home), "serve", "--port",
                                 str(port), "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        stop = threading.Event()
        answered = [0]

        try:
            threads = [threading.Thread(target=_post_until, args=(stop, base, key, f"K{round_}-{t}", acked, lock,
                                                                  answered)) for t in range(6)]
            for th in threads:
                th.start()
            deadline = time.monotonic() + 30
            while answered[0] < 20:
                assert time.monotonic() < deadline, "the server never acknowledged"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
            os.kill(proc.pid, signal.SIGKILL)  # the writer: the parent of the workers
            proc.wait()
            time.sleep(0.5)
            stop.set()
            for th in threads:
                th.join()
            deadline = time.monotonic() + 10  # the workers notice and stop by themselves
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    break
                assert time.monotonic() < deadline, "a worker outlived its writer"
                time.sleep(0.2)
        finally:
            stop.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _assert_acknowledged_survive(home, acked, round_)
    assert len(acked) >= 60


def _assert_acknowledged_survive(home: Path, acked: dict[int, str], round_: int) -> int:
    """Every acknowledged entry is in the reopened log, unchanged, and the audit passes; its size."""
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
        return size
    finally:
        led.close()


def _post_until(stop: Any, base: str, key: str, prefix: str, acked: dict[int, str], lock: Any,
                answered: list[int]) -> None:
    """Post one new envelope a request until told to stop; note every acknowledgement."""
    import urllib.error
    import urllib.request

    n = 0
    while not stop.is_set():
        n += 1
        body = json.dumps({"type": "envelope.created", "envelope": f"{prefix}-{n}", "title": "x"})
        req = urllib.request.Request(base + "/api/v1/events", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status == 201:
                    a = json.loads(r.read())["acks"][0]
                    with lock:
                        acked[a["index"]] = a["leaf_hash"]
                        answered[0] += 1
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.05)  # not up yet, or the writer is gone: nothing was acknowledged
