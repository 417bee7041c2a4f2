"""The commands print only their own words on standard error: a refusal is its one line, a success has
none (or, from `ledger serve`, its own log lines), whatever the libraries they load would say at import
(pyHanko's import of cryptography's deprecated DSA classes, say). Run as the console scripts, each in a
process of its own, so that every import happens as it does for a user."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ledger.anchoring.tsa import LocalTsa
from tests.browser_util import free_port
from tests.cli.test_cli import BIN
from tests.cli.test_serve_settings import environment, ledger, stop

# A line of `ledger serve`'s log: "2026-01-01 12:00:00,000 portal.serving.server WARNING ..."
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [\w.]+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) .*")


def foreign(stderr: str) -> list[str]:
    """The lines of standard error that are no command's own: warnings, tracebacks, their source lines."""
    return [line for line in stderr.splitlines()
            if "Warning" in line or "Traceback" in line or line.startswith((" ", "/"))]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "data"
    r = ledger(h, "init")
    assert r.returncode == 0 and foreign(r.stderr) == [], r.stderr
    r = ledger(h, "append", input='{"type": "envelope.created", "envelope": "E", "title": "x"}')
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return h


def test_anchor_and_status_say_nothing_on_standard_error(home: Path) -> None:
    for args in (["anchor"], ["anchor", "--json"], ["status"], ["status", "--json"]):
        r = ledger(home, *args)
        assert r.returncode == 0, r.stderr
        assert r.stderr == "", f"`ledger {' '.join(args)}` wrote on standard error:\n{r.stderr}"


def test_a_refusal_after_pyhanko_is_loaded_is_one_line(home: Path) -> None:
    with open(home / "config.toml", "a") as f:  # an external TSA whose root certificate is not there
        f.write('\n[[tsa]]\nname = "acme"\nurl = "https://tsa.example.test/"\nroots = ["missing-root.pem"]\n')
    r = ledger(home, "anchor")
    assert r.returncode == 1
    assert r.stderr.startswith("ledger: error (bad_config): TSA 'acme': cannot read certificate") and \
           r.stderr.count("\n") == 1, r.stderr


def test_serve_refusing_to_start_is_one_line(home: Path) -> None:
    """The refusal comes once the portal (and so pyHanko) is loaded: the ledger is opened to be served."""
    cfg = home / "config.toml"
    cfg.write_text(re.sub(r"(?m)^origin = .*$", 'origin = "other.example/log"', cfg.read_text()))
    r = ledger(home, "serve", "--port", str(free_port()))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("ledger: refused (bad_origin): ") and r.stderr.count("\n") == 1, r.stderr


def test_serve_with_workers_logs_only_its_own_lines(home: Path, tmp_path: Path) -> None:
    """Each worker is a process of its own, which loads the portal (and pyHanko) again."""
    port = free_port()
    err = tmp_path / "serve.err"
    with open(err, "w") as f:
        proc = subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(port),
                                 "--workers", "2"],
                                stdout=subprocess.DEVNULL, stderr=f, env=environment())
    try:
        deadline = time.monotonic() + 30
        while not _up(port, workers=2):  # each worker has imported what it serves with
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, f"the workers did not come up:\n{err.read_text()}"
            time.sleep(0.2)
    finally:
        stop(proc)
    lines = err.read_text().splitlines()
    assert lines and all(LOG_LINE.fullmatch(line) for line in lines), "\n".join(lines)


def _up(port: int, workers: int) -> bool:
    """Does the port answer (only workers answer on it), from every worker where /healthz counts them?"""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            body = json.loads(r.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    return int(body.get("workers", {}).get("live", workers)) >= workers


def test_verifier_timestamp_says_nothing_on_standard_error(home: Path, tmp_path: Path) -> None:
    body = b"localhost/evidence-ledger\n1\nAAAA\n"
    (tmp_path / "body").write_bytes(body)
    (tmp_path / "r.tsr").write_bytes(LocalTsa.load(home / "tsa").issue_token(body))
    r = subprocess.run([str(BIN / "verifier"), "timestamp", str(tmp_path / "r.tsr"), "--data", str(tmp_path / "body"),
                        "--root", str(home / "tsa" / "tsa-root.pem")], capture_output=True, text=True, timeout=60,
                       env=environment())
    assert r.returncode == 0 and r.stdout.rstrip().splitlines()[-1].startswith("VERIFIED"), r.stdout + r.stderr
    assert r.stderr == "", r.stderr
