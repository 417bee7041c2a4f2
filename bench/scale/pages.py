"""`GET /v/{code}` pages per second from one `ledger serve` host, and from two hosts sharing one PostgreSQL.

A ledger with the demo envelopes is made on PostgreSQL and its folder copied, as a second machine would hold
it (the same `log.key` and `config.toml`, which names the database; `lookup_rate = 0`: the load comes from
one address). Each host is `ledger serve --workers 1`: one process. wrk (`bench.portal`) reads the demo's
copy pages round-robin, each page warmed first (later views come from the page cache):
1. one host, all `--connections` on it;
2. both hosts at once, one wrk per host with half the connections each; the figure is their sum.
On one machine the two hosts share its cores with PostgreSQL and the load generators: the second run
measures what a second process (on a second core, if there is one free) adds, not what a second machine
would; the machine's busy cores are printed beside it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any

from bench.portal import BIN, PAGES_LUA, _ledger, _machine, _port, _wait, _wrk

CORES = os.cpu_count() or 1


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(port),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _both(urls: list[str], args: argparse.Namespace, script: str, work: Path, pids: list[int]) -> dict[str, Any]:
    """One wrk per host at once; the sum of their rates, the worse of their tail latencies."""
    out: list[dict[str, Any]] = [{} for _ in urls]
    errors: list[BaseException] = []

    def one(k: int) -> None:
        try:
            out[k] = _wrk(urls[k], args, script, work / f"w{k}", pids[k])
        except BaseException as e:
            errors.append(e)

    (busy0, all0) = _machine()
    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (busy1, all1) = _machine()
    if errors:
        raise errors[0]
    return {"rps": sum(r["rps"] for r in out), "p50_ms": max(r["p50_ms"] or 0 for r in out),
            "p99_ms": max(r["p99_ms"] or 0 for r in out), "non_2xx": sum(r["non_2xx"] for r in out),
            "per_host": [r["rps"] for r in out], "busy_cores": (busy1 - busy0) / (all1 - all0) * CORES}


def measure(database: str, work: Path, connections: int = 32, seconds: int = 5) -> dict[str, Any]:
    """Pages from one host, then from two, on the PostgreSQL database `database` (empty)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package wrk): ./scripts/system-deps --bench")
    first, second = work / "host0", work / "host1"
    _ledger(first, "init", "--database", database)
    cfg = first / "config.toml"
    cfg.write_text(re.sub(r"(?m)^lookup_rate = .*$", "lookup_rate = 0.0", cfg.read_text()))
    codes = re.findall(r"/v/([0-9A-Z]{20})", _ledger(first, "demo"))
    shutil.copytree(first, second)
    cfg = second / "config.toml"  # one host anchors with the local TSA, as README's "Three hosts" says
    cfg.write_text(re.sub(r"(?m)^local_tsa = .*$", "local_tsa = false", cfg.read_text()))
    ports = [_port(), _port()]
    procs = [_serve(home, port) for home, port in zip((first, second), ports, strict=True)]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url in urls:
            _wait(url + "/healthz")
            for c in codes:  # rendered once per host, then from its page cache
                urllib.request.urlopen(f"{url}/v/{c}").read()
        script = PAGES_LUA % {"codes": ",".join(f'"{c}"' for c in codes)}
        for k in range(2):
            (work / f"w{k}").mkdir()
        one_args = argparse.Namespace(threads=1, connections=connections, seconds=seconds)
        (busy0, all0) = _machine()
        one = _wrk(urls[0] + "/v/" + codes[0], one_args, script, work / "w0", procs[0].pid)
        (busy1, all1) = _machine()
        one["busy_cores"] = (busy1 - busy0) / (all1 - all0) * CORES
        half = argparse.Namespace(threads=1, connections=max(1, connections // 2), seconds=seconds)
        two = _both([u + "/v/" + codes[0] for u in urls], half, script, work, [p.pid for p in procs])
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=15)
    return {"pages": len(codes), "connections": connections, "seconds": seconds, "one_host": one, "two_hosts": two,
            "ratio": two["rps"] / one["rps"] if one["rps"] else None}
