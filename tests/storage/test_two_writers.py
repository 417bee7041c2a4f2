"""Two processes writing one ledger: a writer picks up the other's appends and carries on, and a second
`ledger serve` on the same ledger is refused while the first keeps serving."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.access.apikeys import create_key
from ledger.audit.run import audit
from ledger.envelopes.core import Ledger
from tests.cli.test_cli import BIN, run
from tests.envelopes.test_lifecycle import completed, ev
from tests.portal.test_serve_workers import _port, _req
from verifier.checkpoint import parse_checkpoint
from verifier.note import verify_note

T = "t"


def _indexes(acks: list[dict[str, Any]]) -> list[int]:
    return [a["index"] for a in acks]


def _assert_whole(home: Path, indexes: list[int]) -> None:
    """Every acknowledged index once, no gap; the audit passes; the latest checkpoint verifies."""
    led = Ledger.open(home)  # also passes the restored-backup tripwire of the checkpoint file
    try:
        size = led.log.size
        assert sorted(indexes) == list(range(size - len(indexes), size)), "no gap and no duplicate"
        assert len(set(indexes)) == len(indexes)
        rows = led.log.conn.execute("SELECT count(*), count(DISTINCT idx), min(idx), max(idx) "
                                    "FROM envelope_entries").fetchone()
        assert rows == (size, size, 0, size - 1)
        rep = audit(led.log)
        assert rep.ok, rep.problems
        cp = parse_checkpoint(led.log.latest_checkpoint)
        verify_note(cp.note, [led.verifier])
        assert cp.checkpoint.size == size and cp.checkpoint.root == led.log.root_at(size)
    finally:
        led.close()
    r = run(home, "audit")
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr


def test_two_writers_in_turn_and_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Ledger.init(home).close()
    a, b = Ledger.open(home), Ledger.open(home)
    acked: list[int] = []
    try:
        for k in range(24):
            # one writer makes an envelope, the other carries it on: each must see the other's rows
            first, second = (a, b) if k % 2 else (b, a)
            acked += _indexes(first.append(T, completed(f"E{k}")[:6]))
            acked += _indexes(second.append(T, completed(f"E{k}")[6:]))
            acked += _indexes(first.append(T, [ev("copy.printed", f"E{k}", document="d")]))
            if k % 6 == 5:  # a batch that crosses a tile boundary, staged through the sequencer thread
                acked += _indexes(second.append(T, [e for j in range(25) for e in completed(f"B{k}-{j}")]))
        # both at once: each takes the write lock in turn, whoever comes first
        errors: list[BaseException] = []
        lock = threading.Lock()

        def hammer(led: Ledger, name: str) -> None:
            try:
                for j in range(30):
                    acks = led.append(T, completed(f"{name}{j}")[: 1 + j % 11])
                    with lock:
                        acked.extend(_indexes(acks))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=hammer, args=(led, name)) for led, name in ((a, "X"), (b, "Y"))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        # the one that wrote last holds the latest tree; the other catches up at its next write
        acked += _indexes(a.append(T, [ev("envelope.created", "LAST-A", title="t")]))
        acked += _indexes(b.append(T, [ev("envelope.created", "LAST-B", title="t")]))
        assert b.log.size == a.log.size + 1 and a.log.size < b.log.size
    finally:
        a.close()
        b.close()
    assert len(acked) > 1000
    _assert_whole(home, acked)


def _serve(home: Path, port: int, workers: int, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(port),
                             "--workers", str(workers)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def _wait_up(proc: subprocess.Popen[str], home: Path, port: int, workers: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if _req(f"http://127.0.0.1:{port}/healthz")[0] == 200 and (
                    workers == 1 or (home / "writer-events.sock").exists()):
                break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.1)
    if workers > 1:
        time.sleep(0.5)  # let the second worker bind too


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _new_ledger(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    led = Ledger.init(home)
    key = create_key(led.log, T, ["append", "read"])
    led.close()
    return home, key


@pytest.mark.parametrize("workers", [1, 2])
def test_a_cli_append_while_serving_does_not_break_the_server(tmp_path: Path, workers: int) -> None:
    home, key = _new_ledger(tmp_path)
    port = _port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(home, port, workers)
    acked: list[int] = []
    try:
        _wait_up(proc, home, port, workers)
        status, body = _req(base + "/api/v1/envelopes", {"envelope": "S0", "title": "t"}, key)
        assert status == 201, body
        acked.append(body["acks"][0]["index"])
        for round_ in range(3):
            events = tmp_path / f"cli-{round_}.json"
            events.write_text(json.dumps(completed(f"C{round_}")))
            r = run(home, "append", str(events), "--tenant", T)
            assert r.returncode == 0, r.stderr
            acked += [json.loads(line)["index"] for line in r.stdout.splitlines()]
            # the server takes the CLI's entries in by itself, before any write of its own
            deadline = time.monotonic() + 5
            while (size := _req(base + "/healthz")[1]["size"]) != len(acked) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert size == len(acked), (size, len(acked))
            for k in range(3):
                status, body = _req(base + "/api/v1/envelopes", {"envelope": f"S{round_}-{k}", "title": "t"}, key)
                assert status == 201, body
                (ack,) = body["acks"]
                acked.append(ack["index"])
                assert ack["checkpoint_size"] == len(acked) == ack["index"] + 1
            # the server writes on the envelope the CLI made: it reads the rows the CLI wrote
            status, body = _req(base + f"/api/v1/envelopes/C{round_}/copies", {"document": "d"}, key)
            assert status == 201, body
            acked.append(body["acks"][0]["index"])
            status, health = _req(base + "/healthz")
            assert status == 200 and health["size"] == len(acked), health
    finally:
        _stop(proc)
    out = proc.stdout.read() if proc.stdout else ""
    assert "another process appended to this ledger" in out, out
    _assert_whole(home, acked)


def test_a_second_serve_on_the_same_ledger_is_refused(tmp_path: Path) -> None:
    home, key = _new_ledger(tmp_path)
    port = _port()
    base = f"http://127.0.0.1:{port}"
    first = _serve(home, port, 2)
    try:
        _wait_up(first, home, port, 2)
        for args in ((_port(), 1), (port, 2)):  # another port, or the same (SO_REUSEPORT would let it in)
            second = _serve(home, *args)
            try:
                rc = second.wait(timeout=10)
            finally:
                _stop(second)
            out = second.stdout.read() if second.stdout else ""
            assert rc != 0 and len(out.strip().splitlines()) == 1, out
            assert str(home / "serve.lock") in out and "another `ledger serve`" in out, out
        assert (home / "serve.lock").stat().st_mode & 0o777 == 0o600
        for k in range(10):  # the first one serves on, its writer's sockets intact
            status, body = _req(base + "/api/v1/envelopes", {"envelope": f"F{k}", "title": "t"}, key)
            assert status == 201, body
            assert body["acks"][0]["checkpoint_size"] == k + 1
        status, health = _req(base + "/healthz")
        assert health["size"] == 10
    finally:
        _stop(first)
    # once it stopped, the ledger may be served again
    port = _port()
    again = _serve(home, port, 1)
    try:
        _wait_up(again, home, port, 1)
    finally:
        _stop(again)


WRITER = """
import sys, time
from pathlib import Path
from ledger.envelopes.core import Ledger
led = Ledger.open(Path(sys.argv[1]))
n = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    led.append("w", [{"type": "envelope.created", "envelope": f"W{n}", "title": "t"}])
    n += 1
led.close()
print(n)
"""


def test_opening_a_ledger_while_another_process_writes_never_sees_a_false_alarm(tmp_path: Path) -> None:
    """Opening reads the tree, the latest checkpoint and the checkpoint file; another process commits
    (and rewrites the file) meanwhile: none of that may look like damage or a restored backup."""
    import sys

    home = tmp_path / "home"
    Ledger.init(home).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(home), "6"], stdout=subprocess.PIPE, text=True)
    opened = 0
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            led = Ledger.open(home)  # raises IntegrityError on a false alarm
            assert int(led.log.latest_checkpoint.split("\n")[1]) == led.log.size
            led.close()
            opened += 1
    finally:
        out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0 and int(out) > 50, out
    assert opened > 20
    led = Ledger.open(home)
    try:
        assert audit(led.log).ok
    finally:
        led.close()
