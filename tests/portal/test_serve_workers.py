"""`ledger serve --workers 2`: two workers on one port and a writer behind them; writes from either
land in one sequence, reads stay fresh, refusals and outages keep their meaning."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger

BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SEEN: set[str] = set()


def _req(url: str, body: object | None = None, key: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                               headers={"Content-Type": "application/json",
                                        **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            SEEN.add(resp.headers.get("X-Ledger-Process", "none"))
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(port),
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if _req(f"http://127.0.0.1:{port}/healthz")[0] == 200 and (home / "writer-events.sock").exists():
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, proc.stdout.read1().decode() if proc.stdout else ""
        time.sleep(0.2)
    time.sleep(1.0)  # let the second worker bind too
    return proc


def test_two_workers_share_a_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    led = Ledger.init(home)
    key = create_key(led.log, "t", ["append", "read"])
    from ledger.envelopes.demo import create_demo

    voided = next(d["code"] for d in create_demo(led) if d["status"] == "voided")
    size0 = led.log.size
    led.close()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from verifier.note import CosignatureSigner, parse_note

    notary = CosignatureSigner("notary.example/w", Ed25519PrivateKey.generate())
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace("witnesses = []", f'witnesses = ["{notary.verifier.to_string()}"]'))
    port = _port()
    proc = _start(home, port)
    base = f"http://127.0.0.1:{port}"
    try:
        # a worker serves a copy's JSON with the log's signed statement of the envelope's events,
        # which only the writer can sign
        from datetime import UTC, datetime, timedelta

        from verifier.head import verify_head
        from verifier.note import Ed25519Verifier

        for _ in range(4):
            status, v = _req(f"{base}/v/{voided}.json")
            assert status == 200, v
            head = verify_head(v["log"]["head"], Ed25519Verifier.from_string(v["log"]["verifier_key"]),
                               now=datetime.now(UTC), max_age=timedelta(minutes=1), size=v["log"]["size"])
            assert head.events == len(v["proofs"]) and head.last_index == v["proofs"][-1]["index"]
        sizes = []
        for k in range(40):  # new connections spread over both processes
            status, body = _req(base + "/api/v1/envelopes", {"envelope": f"W{k}", "title": "t"}, key)
            assert status == 201, body
            sizes.append(body["acks"][0]["checkpoint_size"])
            status, env = _req(base + f"/api/v1/envelopes/W{k}", key=key)
            assert status == 200 and env["status"] == "draft", "a read right after a write sees it"
            status, health = _req(base + "/healthz")
            assert health["size"] >= sizes[-1], "every worker serves the latest checkpoint"
        assert sizes == list(range(size0 + 1, size0 + 41)), "one sequencer: indexes follow each other"
        assert SEEN == {"worker 1", "worker 2"}, f"both workers must have answered, saw {SEEN}"
        # refusals keep their status, code and message across the link
        status, body = _req(base + "/api/v1/envelopes", {"envelope": "W0", "title": "t"}, key)
        assert status == 409 and body["error"]["code"] == "envelope_exists"
        status, body = _req(base + "/api/v1/events", [{"type": "party.viewed", "envelope": "W1", "party": "x"}], key)
        assert status == 404 and body["error"]["code"] == "unknown_party", body
        status, body = _req(base + "/api/v1/events", {"type": "envelope.sent", "envelope": "W1"}, "bad-key")
        assert status == 401, body
        # the writer's sockets are its own: no other user may connect
        for name in ("writer-events.sock", "writer.sock"):
            assert (home / name).stat().st_mode & 0o077 == 0, name
        # a notary's cosignature reaches the writer through a worker, and every worker serves it
        with urllib.request.urlopen(base + "/checkpoint", timeout=10) as resp:
            note = parse_note(resp.read().decode())
        cosigned = note.with_signature(notary.sign(note.text, int(time.time()))).to_text()
        r = urllib.request.Request(base + "/witness/cosign", data=cosigned.encode(), method="POST")
        with urllib.request.urlopen(r, timeout=10) as resp:
            assert json.loads(resp.read())["accepted"] == ["notary.example/w"]
        size = int(note.text.split("\n")[1])
        for _ in range(4):
            with urllib.request.urlopen(f"{base}/checkpoint/{size}", timeout=10) as resp:
                assert "notary.example/w" in resp.read().decode()
        # the TSA's key lives in the writer: workers forward time-stamp requests to it
        from asn1crypto import tsp

        from ledger.anchoring.tsa import build_request

        r = urllib.request.Request(base + "/tsa", data=build_request(b"x", nonce=7),
                                   headers={"Content-Type": "application/timestamp-query"})
        with urllib.request.urlopen(r, timeout=10) as resp:
            assert tsp.TimeStampResp.load(resp.read())["status"]["status"].native == "granted"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    led = Ledger.open(home)
    from ledger.audit.run import audit

    assert led.log.size == size0 + 40 and audit(led.log).ok
    led.close()


def test_a_worker_reads_for_a_newer_tree_only_when_the_writer_published_one(tmp_path: Path) -> None:
    """The writer's latest size is in shared memory: a worker asks its database for a newer checkpoint
    when that size moved (at once, so an acknowledged event is served), else at most once a second."""
    import multiprocessing

    from ledger.envelopes.events import parse_events
    from ledger.storage.log import TileLog
    from portal.serving.server import Published

    led = Ledger.init(tmp_path / "home")
    try:
        published = Published(multiprocessing.get_context("spawn"))
        published.set(led.log.size)
        led.log.on_publish = published.set
        reader = TileLog.open_reader(led.home / "ledger.db")
        reads = []
        real = reader.refresh
        reader.refresh = lambda: (reads.append(1), real())[1]  # type: ignore[method-assign]
        published.refresh(reader, 100.0)
        reads.clear()
        for k in range(10):
            published.refresh(reader, 100.0 + k / 100)
        assert reads == [], "nothing new: no query"
        led.append("t", parse_events([{"type": "envelope.created", "envelope": "E", "title": "x"}]))
        published.refresh(reader, 100.2)
        assert reads == [1] and reader.size == led.log.size == 1, "a new tree is picked up at once"
        published.refresh(reader, 100.3)
        published.refresh(reader, 101.3)
        assert len(reads) == 2, "and the database is read once a second anyway"
        reader.close()
    finally:
        led.close()
