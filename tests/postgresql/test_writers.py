"""Several hosts writing one PostgreSQL ledger: whole batches interleave, the tree never forks, a host killed
mid-batch leaves nothing half-written and the others go on.

Each "host" is a process with a ledger folder of its own (a copy of the first: the same log key and
config.toml, which names the database), as two machines running `ledger serve` against one PostgreSQL
would have.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger.audit.run import audit
from ledger.envelopes.core import Ledger
from verifier.checkpoint import parse_checkpoint
from verifier.merkle import verify_consistency
from verifier.note import verify_note

WRITER = """
import json, sys, threading, time
from pathlib import Path
from ledger.envelopes.core import Ledger
led = Ledger.open(Path(sys.argv[1]))
name, rounds, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = threading.Lock()

def work(t):
    for j in range(rounds):
        env = f"{name}-{t}-{j}"
        events = [{"type": "envelope.created", "envelope": env, "title": "t"}]
        events += [{"type": "party.added", "envelope": env, "party": f"p{k}", "role": "cc", "name": "n"}
                   for k in range(j % 7)]
        acks = led.append("w", events)
        with out:
            print(json.dumps([[a["index"], a["checkpoint_size"]] for a in acks]), flush=True)

ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
led.close()
"""


def _hosts(tmp_path: Path, database: str, n: int) -> list[Path]:
    first = tmp_path / "host0"
    Ledger.init(first, database=database).close()
    homes = [first]
    for k in range(1, n):
        shutil.copytree(first, tmp_path / f"host{k}")
        homes.append(tmp_path / f"host{k}")
    return homes


def _writer(home: Path, name: str, rounds: int, threads: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(home), name, str(rounds), str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _acks(out: str) -> list[tuple[int, int]]:
    acks: list[tuple[int, int]] = []
    for line in out.splitlines():
        try:
            acks += [(int(i), int(s)) for i, s in json.loads(line)]
        except ValueError:
            break  # a line cut by the kill: its events were acknowledged to nobody
    return acks


def _check_whole(home: Path, acked: list[int], *, every_entry_acked: bool) -> Ledger:
    """Every ack once; one tree whose checkpoints each extend the one before; the audit passes."""
    led = Ledger.open(home)
    size = led.log.size
    assert len(set(acked)) == len(acked), "an index acknowledged twice"
    assert all(0 <= i < size for i in acked)
    if every_entry_acked:
        assert sorted(acked) == list(range(size))
    rows = led.log.conn.execute("SELECT count(*), count(DISTINCT idx), min(idx), max(idx) "
                                "FROM envelope_entries").fetchone()
    assert tuple(rows) == (size, size, 0, size - 1)
    sizes = [s for (s,) in led.log.conn.execute("SELECT size FROM checkpoints ORDER BY size")]
    for a, b in zip(sizes[1:], sizes[2:], strict=False):
        verify_consistency(a, b, led.log.root_at(a), led.log.root_at(b), led.log.consistency_proof(a, b))
    (head_size, head_root) = led.log.conn.execute("SELECT size, root FROM log_head").fetchone()
    assert (head_size, bytes(head_root)) == (size, led.log.root_at(size))
    cp = parse_checkpoint(led.log.latest_checkpoint)
    verify_note(cp.note, [led.verifier])
    assert cp.checkpoint.size == size
    rep = audit(led.log)
    assert rep.ok, rep.problems
    return led


def test_two_hosts_appending_at_once_interleave_whole_batches(tmp_path: Path, pg_database: str) -> None:
    homes = _hosts(tmp_path, pg_database, 2)
    procs = [_writer(home, f"H{k}", 40, 3) for k, home in enumerate(homes)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(_acks(out))
    acked = [i for acks in outs for i, _ in acks]
    assert len(acked) == 2 * 3 * sum(1 + j % 7 for j in range(40))
    # both hosts committed between each other's batches (the point of the test), each batch whole:
    # a checkpoint size belongs to one host's batch only
    by_size: dict[int, set[int]] = {}
    for k, acks in enumerate(outs):
        for _, s in acks:
            by_size.setdefault(s, set()).add(k)
    assert all(len(hosts) == 1 for hosts in by_size.values())
    owners = [next(iter(by_size[s])) for s in sorted(by_size)]
    switches = sum(a != b for a, b in zip(owners, owners[1:], strict=False))
    assert switches >= 2, owners
    _check_whole(homes[0], acked, every_entry_acked=True).close()
    _check_whole(homes[1], acked, every_entry_acked=True).close()  # opens cleanly on either host


def test_a_host_killed_mid_batch_leaves_nothing_half_written(tmp_path: Path, pg_database: str) -> None:
    homes = _hosts(tmp_path, pg_database, 3)
    steady = _writer(homes[0], "S", 150, 2)
    victims = [_writer(homes[1], "V1", 10_000, 3), _writer(homes[2], "V2", 10_000, 3)]
    time.sleep(2.5)
    for v in victims:
        v.send_signal(signal.SIGKILL)  # wherever it is: staging, inside a transaction, in COMMIT
    out, err = steady.communicate(timeout=300)
    assert steady.returncode == 0, err
    acked = [i for i, _ in _acks(out)]
    killed = [i for v in victims for i, _ in _acks(v.communicate()[0])]
    assert killed, "the killed hosts had appended something before"
    led = _check_whole(homes[0], acked + killed, every_entry_acked=False)
    try:
        # what the killed hosts committed and never told is whole too (audited above); the others go on
        led.append("w", [{"type": "envelope.created", "envelope": "AFTER", "title": "t"}])
    finally:
        led.close()
