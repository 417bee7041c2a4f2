"""Two `ledger serve` hosts appending to one PostgreSQL at once under load, one of them SIGKILLed again and
again (wherever it is: in a batch, in COMMIT, writing a tile file) and started again.

Afterwards: every acknowledged event is in the log once, at the index its acknowledgement gave, with its
leaf hash; the audit passes; there is one tree (each checkpoint consistent with the next); and through nginx
an independent C2SP tlog-tiles client (`tests.tiles.test_publish.TilesClient`) checks the whole log.

Tiles: each host publishes to a folder of its own (`tiles_folder`), as two machines without shared storage
would, and each folder is served by an nginx of its own. Both folders come from the one log: a tile's
bytes are fixed by the tree, and a size has one checkpoint in the database, so they must end up byte for
byte the same. (One folder shared by both hosts would work too, one publisher at a time: the writer that
holds the folder's `.lock` publishes, the other's tries are refused with `publisher_busy` and retried with
backoff; see README, "Three hosts".)
"""

from __future__ import annotations

import http.client
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.scale.servers import running_nginx
from ledger.access.apikeys import create_key
from ledger.config import load_config
from ledger.envelopes.core import Ledger
from ledger.storage.publish import TMP_DIR, published_size
from tests.cli.test_cli import BIN
from tests.envelopes.test_lifecycle import completed
from tests.portal.test_serve_workers import _port, _req
from tests.postgresql.test_writers import _check_whole
from tests.storage.test_two_writers import _stop
from tests.tiles.test_publish import TilesClient, _expected_paths
from verifier.merkle import leaf_hash
from verifier.note import Ed25519Verifier

T = "t"
LOAD_S = 18.0  # how long the clients append while the second host is killed again and again
CUT = (OSError, http.client.HTTPException)  # a request cut by the kill, or sent while the host is down


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # what each start logs, kept for a failure's message
        return subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(port),
                                 "--workers", "1"], stdout=out, stderr=subprocess.STDOUT)


def _wait_up(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if _req(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return
        except CUT:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def test_two_hosts_one_killed_again_and_again_keep_one_log(tmp_path: Path, pg_database: str) -> None:
    homes = [tmp_path / "host0", tmp_path / "host1"]
    led = Ledger.init(homes[0], database=pg_database)
    key = create_key(led.log, T, ["append", "read"])
    verifier = Ed25519Verifier.from_string(led.verifier_key)
    led.close()
    shutil.copytree(homes[0], homes[1])  # a second machine: the same log.key and config.toml
    folders = [tmp_path / "tiles0", tmp_path / "tiles1"]
    for home, folder in zip(homes, folders, strict=True):  # each host publishes the log to a folder of its own
        cfg = home / "config.toml"
        text = re.sub(r"(?m)^tiles_folder = .*$", f'tiles_folder = "{folder}"', cfg.read_text())
        # documents registered by their hash only: nothing to seal when a contract completes
        cfg.write_text(re.sub(r"(?m)^seal_on_completion = .*$", "seal_on_completion = false", text))
        assert load_config(home).tiles_folder == str(folder)
    logs = [tmp_path / "host0.log", tmp_path / "host1.log"]
    ports = [_port(), _port()]
    procs = [_serve(h, p, lg) for h, p, lg in zip(homes, ports, logs, strict=True)]
    acked: list[dict[str, Any]] = []
    per_host = [0, 0]
    cut = [0]
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(host: int, name: str) -> None:
        k = 0
        try:
            while not stop.is_set():
                try:  # a whole contract in one request: atomic, so a request cut by the kill is all or nothing
                    status, body = _req(f"http://127.0.0.1:{ports[host]}/api/v1/events", completed(f"{name}{k}"), key)
                except CUT:
                    status, body = 0, {}
                k += 1
                with lock:
                    if status == 201:
                        acked.extend(body["acks"])
                        per_host[host] += 1
                    else:
                        assert status in (0, 503), (status, body)  # cut, or the host not ready yet
                        cut[0] += 1
                if status != 201:
                    time.sleep(0.05)
        except BaseException as e:
            errors.append(e)

    kills = 0
    threads: list[threading.Thread] = []
    try:
        for proc, port, lg in zip(procs, ports, logs, strict=True):
            _wait_up(proc, port, lg)
        threads = [threading.Thread(target=client, args=(h, f"H{h}C{c}-")) for h in (0, 1) for c in range(3)]
        for th in threads:
            th.start()
        rng = random.Random(9162)
        deadline = time.monotonic() + LOAD_S
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 2.0))
            procs[1].send_signal(signal.SIGKILL)  # mid-batch, in COMMIT, mid-publish: wherever it is
            procs[1].wait()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            procs[1] = _serve(homes[1], ports[1], logs[1])
            _wait_up(procs[1], ports[1], logs[1])
        stop.set()
        for th in threads:
            th.join()
        assert not errors, errors
        assert procs[0].poll() is None, logs[0].read_text()[-3000:]
        assert kills >= 5 and cut[0] > 0, (kills, cut)
        assert per_host[0] > 0 and per_host[1] > 0, per_host
        for host, port in enumerate(ports):  # both up, both appending to the one log
            status, body = _req(f"http://127.0.0.1:{port}/api/v1/events", completed(f"LAST{host}"), key)
            assert status == 201, body
            acked.extend(body["acks"])
        size = max(a["index"] for a in acked) + 1
        deadline = time.monotonic() + 10
        while not all(published_size(f) == size for f in folders):  # each writer follows the other's appends
            assert time.monotonic() < deadline, ([published_size(f) for f in folders], size)
            time.sleep(0.05)
        for folder, port in zip(folders, ports, strict=True):
            with running_nginx(folder, f"127.0.0.1:{port}") as ng:
                reader = TilesClient(ng.url)
                assert reader.check_log(verifier) == size
            # every tile came from the folder itself: nginx asked the portal for none (it sets no CSP)
            assert not [p for p, h in reader.headers.items() if "content-security-policy" in h]
            assert not any((folder / TMP_DIR).iterdir()), "a start cleans what a kill left half-written"
        for rel in _expected_paths(size):  # the two folders hold one log's tree, byte for byte
            assert (folders[0] / rel).read_bytes() == (folders[1] / rel).read_bytes(), rel
    finally:
        stop.set()
        for th in threads:
            th.join()
        for p in procs:
            _stop(p)
    led = _check_whole(homes[0], [a["index"] for a in acked], every_entry_acked=False)
    try:
        assert led.log.size == size
        for a in acked:  # each acknowledged event is the entry at its index
            assert leaf_hash(led.log.entry(a["index"])).hex() == a["leaf_hash"], a
        rows = led.log.conn.execute("SELECT count(*), count(DISTINCT env || '/' || seq) FROM envelope_entries")
        assert len(set(rows.fetchone())) == 1, "an event of an envelope twice"
    finally:
        led.close()

