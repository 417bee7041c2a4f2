"""`verifier notary check` and `verifier notary lookup` against a real `ledger serve`: the first run pins,
the next verifies growth, anchors and (with --full) every tile; a fork is reported with exit 1 and its
evidence kept; a document registered through the API is found with its trusted time."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from ledger.access.apikeys import create_key
from ledger.envelopes.core import Ledger
from tests.browser_util import BIN, LyingProxies, Tamper, free_port, start_serve, stop_serve
from verifier.checkpoint import parse_checkpoint

DOCUMENT = b"%PDF-1.7 a lease, signed\n"
SHA = hashlib.sha256(DOCUMENT).hexdigest()
TILE = 256


def verifier(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(BIN / "verifier"), *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
        return body


def anchored(base: str, within: float = 20.0) -> int:
    """Wait until the log's latest checkpoint is anchored; its size."""
    deadline = time.monotonic() + within
    while True:
        size = parse_checkpoint(get(base + "/checkpoint")).checkpoint.size
        if json.loads(get(f"{base}/anchors/{size}")):
            return size
        assert time.monotonic() < deadline, "the log did not anchor its checkpoint"
        time.sleep(0.05)


def post_events(base: str, key: str, events: list[dict[str, object]]) -> None:
    req = urllib.request.Request(base + "/api/v1/events", data=json.dumps(events).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 201)


def make_ledger(home: Path) -> str:
    led = Ledger.init(home)
    key = create_key(led.log, "t", ["append", "read"])
    for i in range(3):
        led.append("t", [{"type": "envelope.created", "envelope": f"A{i}", "title": "x"}])
    # a tree of more than one tile: 2 entry bundles, 2 tiles of level 0 and one of level 1 (after growth)
    led.append("t", [{"type": "envelope.created", "envelope": f"M{i}", "title": "x"} for i in range(TILE - 3 + 40)])
    led.close()
    cfg = home / "config.toml"
    cfg.write_text(cfg.read_text().replace("anchor_interval_s = 60.0", "anchor_interval_s = 0.2")
                   .replace("anchor_backoff_max_s = 60.0", "anchor_backoff_max_s = 0.2"))
    return key


def test_a_notary_checks_a_log_it_does_not_run_and_finds_a_document(tmp_path: Path) -> None:
    home, fork_home, state = tmp_path / "home", tmp_path / "fork", tmp_path / "notary"
    key = make_ledger(home)
    shutil.copytree(home, fork_home)  # a copy of the log as it is now: later it grows otherwise
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_serve(home, port, tmp_path / "serve.log")
    try:
        # first run: the log key and the local TSA's root are taken on first use, and said so
        size1 = anchored(base)
        r = verifier("notary", "check", "--log", base, "--state", str(state))
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("WARNING trust on first use") == 2, r.stdout
        assert f"ok size {size1} anchor #1 (local): ok" in r.stdout and "VERIFIED" in r.stdout, r.stdout
        assert (state / "log-key").read_text().strip() == get(base + "/log-key").decode().strip()
        assert (state / "tsa-roots.pem").read_text().startswith("-----BEGIN CERTIFICATE")
        assert parse_checkpoint((state / "checkpoint").read_text()).checkpoint.size == size1
        # the log grows through the API, registering a document by its hash
        post_events(base, key, [{"type": "envelope.created", "envelope": "D", "title": "lease"},
                                {"type": "document.added", "envelope": "D", "document": "main", "sha256": SHA,
                                 "size": len(DOCUMENT), "name": "lease.pdf"}])
        size2 = anchored(base)
        assert size2 == size1 + 2
        r = verifier("notary", "check", "--log", base, "--state", str(state), "--full")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "trust on first use" not in r.stdout, "pinned the first time"
        assert f"ok size {size2} extends the kept size {size1}" in r.stdout, r.stdout
        assert f"ok --full: {size2} entries in 2 entry bundles and 3 tiles" in r.stdout, r.stdout
        assert parse_checkpoint((state / "checkpoint").read_text()).checkpoint.size == size2
        # the document: its entry, and when it existed at the latest, from public routes or with an API key
        for extra in ([], ["--api-key", key]):
            r = verifier("notary", "lookup", "--log", base, "--sha256", SHA, "--state", str(state), *extra)
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"ok entry {size1 + 1} (document.added) names it" in r.stdout, r.stdout
            assert f"FOUND entry {size1 + 1} of localhost/evidence-ledger, which existed no later than" in r.stdout
        r = verifier("notary", "lookup", "--log", base, "--sha256", "ab" * 32, "--state", str(state))
        assert r.returncode == 1 and "not registered" in r.stdout and "NOT FOUND" in r.stdout, r.stdout
        # a TSA root the notary was not given cannot vouch for an anchor, and says so
        other = tmp_path / "other-root.pem"
        shutil.copy(fork_home / "seal" / "seal-root.pem", other)
        r = verifier("notary", "check", "--log", base, "--state", str(state), "--trust-tsa", str(other))
        assert r.returncode == 0 and "its TSA is not one you trust" in r.stdout, r.stdout + r.stderr
    finally:
        stop_serve(proc)
    # unreachable: a clear line, exit 2
    r = verifier("notary", "check", "--log", base, "--state", str(state), "--timeout", "2")
    assert r.returncode == 2 and f"cannot reach the log at {base}" in r.stderr, r.stderr
    # the copy grows otherwise and answers at the same address: a fork, loudly, with its evidence
    fork = Ledger.open(fork_home)
    for i in range(5):
        fork.append("t", [{"type": "envelope.created", "envelope": f"B{i}", "title": "y"}])
    fork.close()
    proc = start_serve(fork_home, port, tmp_path / "fork.log")
    try:
        for _ in range(2):  # and again next time: the kept checkpoint is not replaced by the forked one
            r = verifier("notary", "check", "--log", base, "--state", str(state))
            assert r.returncode == 1, r.stdout + r.stderr
            assert "NOT VERIFIED (fork): FORK of localhost/evidence-ledger" in r.stdout, r.stdout
            assert parse_checkpoint((state / "checkpoint").read_text()).checkpoint.size == size2
        evidence = sorted((state / "forks").iterdir())
        assert len(evidence) == 2
        assert sorted(p.name for p in evidence[0].iterdir()) == ["consistency-proof.txt", "kept.checkpoint",
                                                                 "served.checkpoint", "why.txt"]
        kept = parse_checkpoint((evidence[0] / "kept.checkpoint").read_text()).checkpoint
        served = parse_checkpoint((evidence[0] / "served.checkpoint").read_text()).checkpoint
        assert (kept.size, served.size) == (size2, size1 + 5)
    finally:
        stop_serve(proc)


def test_the_verifier_command_keeps_its_offline_checks(tmp_path: Path) -> None:
    led = Ledger.init(tmp_path / "home")
    led.append("t", [{"type": "envelope.created", "envelope": "E", "title": "x"}])
    (tmp_path / "cp").write_text(led.log.latest_checkpoint)
    r = verifier("checkpoint", str(tmp_path / "cp"), "--key", led.verifier_key)
    assert r.returncode == 0 and r.stdout.startswith("VERIFIED checkpoint"), r.stdout + r.stderr
    led.close()
    r = verifier("--help")
    assert r.returncode == 0 and "witness serve" in r.stdout and "notary check" in r.stdout and "cosign" in r.stdout
    r = verifier("notary", "lookup", "--log", "ftp://x", "--sha256", SHA)
    assert r.returncode == 2 and "http:// or https://" in r.stderr
    r = verifier("notary", "lookup", "--log", "http://127.0.0.1:9", "--sha256", "nothex")
    assert r.returncode == 2 and "64 hex digits" in r.stderr


def test_what_a_lying_portal_serves_is_caught(tmp_path: Path) -> None:
    """Between the notary and an honest log, a proxy changes one tile, one entry bundle or the anchors'
    tokens: `notary check` says NOT VERIFIED (exit 1) and keeps its checkpoint."""
    home, state = tmp_path / "home", tmp_path / "notary"
    make_ledger(home)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def flip_last(path: str, ctype: str, body: bytes, prefix: str) -> bytes:
        return body[:-1] + bytes([body[-1] ^ 1]) if path.startswith(prefix) and body else body

    def bad_tokens(path: str, ctype: str, body: bytes) -> bytes:
        if not path.startswith("/anchors/"):
            return body
        records = json.loads(body)
        for r in records:
            der = bytearray(base64.b64decode(r["token"]))
            der[-5] ^= 1  # inside the signature
            r["token"] = base64.b64encode(bytes(der)).decode()
        return json.dumps(records).encode()

    rules: dict[str, Tamper] = {"tile": lambda p, c, b: flip_last(p, c, b, "/tile/0/"),
                                "bundle": lambda p, c, b: flip_last(p, c, b, "/tile/entries/"),
                                "anchors": bad_tokens}
    proc = start_serve(home, port, tmp_path / "serve.log")
    proxies = LyingProxies(base, rules)
    proxies.start()
    try:
        size = anchored(base)
        assert verifier("notary", "check", "--log", base, "--state", str(state)).returncode == 0
        for name, code in (("tile", "tile_mismatch"), ("bundle", "tile_mismatch"), ("anchors", "bad_anchor")):
            r = verifier("notary", "check", "--log", proxies.base[name], "--state", str(state), "--full")
            assert r.returncode == 1 and f"NOT VERIFIED ({code})" in r.stdout, (name, r.stdout, r.stderr)
            assert proxies.applied[name], f"the {name} rule changed nothing"
            assert parse_checkpoint((state / "checkpoint").read_text()).checkpoint.size == size
    finally:
        proxies.stop()
        stop_serve(proc)
