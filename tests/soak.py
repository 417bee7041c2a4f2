"""Soak test: mixed load for a set time while the ledger's surroundings fail, then every acknowledged
event is checked and the ledger audited. Not part of the default suite: `./scripts/soak --minutes N`.

What runs, all on loopback, for `--minutes`:
- `ledger serve --workers 2` on a ledger in a small tmpfs (root is needed to mount it);
- load clients posting whole contract lifecycles (created, a document, two parties, sent, each party
  authenticated and signed, completed, a copy printed) through the JSON API, one request per event
  or a request of all of them, and recording every acknowledgement;
- a second ledger whose local TSA (`POST /tsa`) is configured as an external TSA of the first; it is
  stopped and started again and again;
- a notary (a witness key in the config) that cosigns the latest checkpoint every second, and goes
  away now and then;
- chaos: SIGKILL of the writer (the serve is started again), SIGKILL of a worker (the writer restarts
  it), the TSA stopped, the witness away, the disk filled until writes fail and freed again.
At the end: every acknowledged event is at its index with its leaf hash, `ledger audit` passes with the
notary's last checkpoint as an outside checkpoint, and the figures are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
PDF_SHA = hashlib.sha256(b"soak document").hexdigest()


def ledger(home: Path, *args: str) -> str:
    return subprocess.run([str(BIN / "ledger"), "--home", str(home), *args], check=True, capture_output=True,
                          text=True).stdout


def set_config(home: Path, settings: dict[str, object], tables: str = "") -> None:
    """Set top-level keys of config.toml (replacing the lines `ledger init` wrote), then add `tables`."""
    path = home / "config.toml"
    lines = path.read_text().splitlines()
    for key, value in settings.items():
        line = f"{key} = {json.dumps(value)}"
        at = [i for i, text in enumerate(lines) if text.split("=", 1)[0].strip() == key]
        if at:
            lines[at[0]] = line
        else:
            lines.insert(0, line)
    path.write_text("\n".join(lines) + "\n" + tables)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return dict(json.loads(r.read()))
    except (OSError, ValueError):
        return None


class Serve:
    """One `ledger serve` that can be killed and started again."""

    def __init__(self, home: Path, port: int, log: Path, workers: int) -> None:
        self.home, self.port, self.log, self.workers = home, port, log, workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, "ab") as out:
                args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
                if self.workers > 1:
                    args += ["--workers", str(self.workers)]
                self.proc = subprocess.Popen([str(BIN / "ledger"), "--home", str(self.home), *args],
                                             stdout=out, stderr=subprocess.STDOUT)
            while self.proc.poll() is None and time.monotonic() < deadline:
                if healthy(self.port) is not None:
                    self.starts += 1
                    return
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
            if time.monotonic() > deadline:
                raise SystemExit(f"`ledger serve` in {self.home} did not come up; see {self.log}")
            time.sleep(0.5)  # the old one's lock or port is still held: try again

    def workers_pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Figures:
    acks: list[tuple[int, str]] = field(default_factory=list)  # (index, leaf hash) of every acknowledgement
    requests: Counter[str] = field(default_factory=Counter)
    chaos: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def lifecycle(ref: str) -> list[dict[str, object]]:
    return [
        {"type": "envelope.created", "envelope": ref, "title": f"Soak contract {ref}"},
        {"type": "document.added", "envelope": ref, "document": "d", "sha256": PDF_SHA, "size": 13,
         "name": "contract.pdf"},
        {"type": "party.added", "envelope": ref, "party": "a", "role": "signer", "order": 1, "name": "Zhang San"},
        {"type": "party.added", "envelope": ref, "party": "b", "role": "signer", "order": 2, "name": "Li Si",
         "kind": "organization"},
        {"type": "envelope.sent", "envelope": ref},
        {"type": "party.authenticated", "envelope": ref, "party": "a", "method": "face"},
        {"type": "party.signed", "envelope": ref, "party": "a", "channel": "app", "document": "d",
         "signed_sha256": PDF_SHA},
        {"type": "party.authenticated", "envelope": ref, "party": "b", "method": "ukey"},
        {"type": "party.signed", "envelope": ref, "party": "b", "channel": "ukey", "document": "d",
         "signed_sha256": PDF_SHA},
        {"type": "envelope.completed", "envelope": ref},
        {"type": "copy.printed", "envelope": ref, "document": "d"},
    ]


def client(n: int, port: int, key: str, stop: threading.Event, figures: Figures) -> None:
    """Post lifecycles until told to stop: whole (one request) or event by event, at random."""
    rng = random.Random(n)
    conn: http.client.HTTPConnection | None = None
    k = 0
    while not stop.is_set():
        ref = f"S{n}-{k}"
        k += 1
        events = lifecycle(ref)
        batches = [events] if rng.random() < 0.5 else [[e] for e in events]
        for batch in batches:
            if stop.is_set():
                return
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/api/v1/events", body=json.dumps(batch),
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read()
            except (OSError, http.client.HTTPException):
                with figures.lock:
                    figures.requests["connection failed"] += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.2)
                break  # this envelope may or may not have its event: go on with a new one
            with figures.lock:
                figures.requests[str(r.status)] += 1
            if r.status not in (200, 201):
                if r.status >= 500 or r.status == 429:
                    time.sleep(0.2)
                break
            answer = json.loads(body)
            acks = answer["acks"] if isinstance(answer, dict) and "acks" in answer else answer
            acks = acks if isinstance(acks, list) else [acks]
            with figures.lock:
                figures.acks += [(int(a["index"]), str(a["leaf_hash"])) for a in acks]
            time.sleep(rng.uniform(0, 0.02))  # a platform's pace, not a benchmark's


def notary(port: int, key_file: bytes, name: str, stop: threading.Event, away: threading.Event,
           figures: Figures, kept: Path) -> None:
    """Cosign the latest checkpoint every second (when not away), and keep the last one cosigned."""
    from verifier.note import CosignatureSigner, parse_note

    signer = CosignatureSigner.from_key_file(key_file, name)
    while not stop.wait(1.0):
        if away.is_set():
            continue
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/checkpoint", timeout=5) as r:
                text = r.read().decode()
            note = parse_note(text)
            cosigned = note.with_signature(signer.sign(note.text, int(time.time()))).to_text()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/witness/cosign", data=cosigned.encode(),
                                         method="POST")
            with urllib.request.urlopen(req, timeout=5):
                pass
            kept.write_text(text)
            with figures.lock:
                figures.chaos["cosigned"] += 1
        except (OSError, ValueError):
            with figures.lock:
                figures.chaos["cosign failed"] += 1


def fill(volume: Path) -> int:
    """Fill the volume until a write fails; returns the bytes written."""
    written = 0
    fd = os.open(volume / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    written += os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--volume-mib", type=int, default=1024)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="soak-"))
    volume = scratch / "volume"
    volume.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.volume_mib}m", "tmpfs", str(volume)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"soak: cannot mount a tmpfs (run as root): {mounted.stderr.strip()}", file=sys.stderr)
        return 2
    home, tsa_home = volume / "home", scratch / "tsa"
    main_serve = tsa_serve = None
    figures = Figures()
    stop, away = threading.Event(), threading.Event()
    try:
        from verifier.note import CosignatureSigner

        # the external TSA: another ledger's local TSA over HTTP
        ledger(tsa_home, "init", "--origin", "soak.localhost/tsa")
        set_config(tsa_home, {"lookup_rate": 0.0})
        tsa_port, port = free_port(), free_port()
        tsa_serve = Serve(tsa_home, tsa_port, scratch / "tsa.log", 1)
        tsa_serve.start()
        witness, key_file = CosignatureSigner.generate("soak-notary.localhost/w")
        ledger(home, "init", "--origin", "soak.localhost/log")
        set_config(home, {"witnesses": [witness.verifier.to_string()], "anchor_interval_s": 2.0,
                          "anchor_backoff_max_s": 2.0, "lookup_rate": 0.0, "upload_rate": 0.0},
                   f'[[tsa]]\nname = "remote"\nurl = "http://127.0.0.1:{tsa_port}/tsa"\n'
                   f'roots = ["{tsa_home / "tsa" / "tsa-root.pem"}"]\ntimeout_s = 2.0\n')
        key = ledger(home, "keys", "create", "--tenant", "soak", "--scopes", "append,read").strip()
        main_serve = Serve(home, port, scratch / "serve.log", 2)
        main_serve.start()
        kept = scratch / "notary.checkpoint"
        threads = [threading.Thread(target=client, args=(n, port, key, stop, figures), daemon=True)
                   for n in range(args.clients)]
        threads.append(threading.Thread(target=notary, args=(port, key_file, witness.verifier.name, stop, away, figures, kept),
                                        daemon=True))
        for t in threads:
            t.start()
        started = time.monotonic()
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(rng.uniform(3, 8))
            if os.environ.get("SOAK_DEBUG"):
                print(dict(figures.requests), shutil.disk_usage(volume), sorted(
                    (f.stat().st_size, f.name) for f in home.iterdir() if f.is_file())[-3:], flush=True)
            what = rng.choice(["kill writer", "kill worker", "kill worker", "tsa down", "witness away", "disk full"])
            figures.chaos[what] += 1
            print(f"[{time.monotonic() - started:6.0f} s] {what}; acknowledged so far: {len(figures.acks)}", flush=True)
            if what == "kill writer":
                main_serve.kill()
                time.sleep(rng.uniform(0.5, 2))
                main_serve.start()
            elif what == "kill worker":
                pids = main_serve.workers_pids()
                if pids:
                    os.kill(rng.choice(pids), signal.SIGKILL)
            elif what == "tsa down":
                tsa_serve.kill()
                time.sleep(rng.uniform(2, 6))
                tsa_serve.start()
            elif what == "witness away":
                away.set()
                time.sleep(rng.uniform(2, 6))
                away.clear()
            else:
                written = fill(volume)
                figures.chaos["bytes filled"] += written
                time.sleep(rng.uniform(2, 5))
                (volume / "filler").unlink()
        stop.set()
        for t in threads:
            t.join(timeout=60)
        # service must be back after the last chaos: a few more lifecycles must be acknowledged
        before = len(figures.acks)
        if healthy(port) is None:
            main_serve.start()
        after_stop = threading.Event()
        threading.Timer(5, after_stop.set).start()
        client(999, port, key, after_stop, figures)
        recovered = len(figures.acks) - before
        main_serve.stop()
        return report(home, figures, kept, started, recovered, main_serve.starts, args)
    finally:
        stop.set()
        for s in (main_serve, tsa_serve):
            if s is not None:
                s.stop()
        subprocess.run(["umount", "-l", str(volume)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def report(home: Path, figures: Figures, kept: Path, started: float, recovered: int, starts: int,
           args: argparse.Namespace) -> int:
    from ledger.audit.run import audit_home
    from ledger.envelopes.core import Ledger
    from verifier.merkle import leaf_hash

    led = Ledger.open_reader(home)
    lost = []
    try:
        for index, leaf in figures.acks:
            try:
                ok = index < led.log.size and leaf_hash(led.log.entry(index)).hex() == leaf
            except Exception:
                ok = False
            if not ok:
                lost.append(index)
        size = led.log.size
        anchors = led.log.conn.execute("SELECT tsa, count(*) FROM anchors GROUP BY tsa").fetchall()
    finally:
        led.close()
    rep = audit_home(home, [kept] if kept.exists() else [])
    seconds = time.monotonic() - started
    print(f"\nsoak: {seconds:.0f} s, {args.clients} clients, seed {args.seed}")
    print(f"acknowledged events: {len(figures.acks)} ({len(figures.acks) / seconds:.0f}/s), all present: "
          f"{'yes' if not lost else f'NO, {len(lost)} lost (first: {lost[:5]})'}; log size {size}")
    print("requests by answer: " + ", ".join(f"{k}: {v}" for k, v in sorted(figures.requests.items())))
    print("chaos: " + ", ".join(f"{k}: {v}" for k, v in sorted(figures.chaos.items()))
          + f"; serve started {starts} times")
    print("anchors: " + ", ".join(f"{t}: {n}" for t, n in anchors))
    print(f"after the last failure: {recovered} more events acknowledged in 5 s")
    print(f"audit: {'passed' if rep.ok else 'FAILED'} ({rep.size} entries, {rep.checkpoints} checkpoints, "
          f"{rep.anchors} anchors, {rep.cosignatures} cosignatures, {rep.outside} outside checkpoint(s))")
    for problem in rep.problems[:20]:
        print(f"  PROBLEM: {problem}")
    return 0 if not lost and rep.ok and recovered > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
