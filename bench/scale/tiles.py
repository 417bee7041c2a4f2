"""`python -m bench tiles`: full-tile reads per second through nginx (tiles as files) and through the portal.

A log of `--tiles` x 256 entries is made and published to a folder (`ledger.storage.publish`); then the
same set of paths, every full level-0 tile and every full entry bundle, is read round-robin at
`--connections` concurrent keep-alive connections for `--seconds`:
1. from Debian's nginx serving the folder with `deploy/nginx/tiles.conf` (`--nginx-workers` processes);
2. from the portal, `ledger serve --workers N`, which reads each tile from its database (and its cache).
The load generator is wrk when installed (`scripts/system-deps --bench`), else a Python client (aiohttp),
which is then the bottleneck of the nginx run: its figure is a floor. The target: nginx >= 3x the portal.
`measure()` returns the figures for `./scripts/bench scale` (`bench.scale.run`), which keeps the log in PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import batch
from bench.portal import BIN, _port, _wait, _wrk
from bench.scale.servers import running_nginx
from ledger.envelopes.core import Ledger
from ledger.storage.publish import Publisher
from verifier.tiles import tile_path

TARGET = 3.0  # nginx serves at least this many times the portal's tile reads per second

PATHS_LUA = """
local paths = {%(paths)s}
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def _paths(tiles: int) -> list[str]:
    return ["/" + tile_path(level, n) for n in range(tiles) for level in (0, None)]


async def _python_load(base: str, paths: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """Requests per second of `connections` kept-alive aiohttp clients reading `paths` round-robin."""
    done, bad = [0], [0]
    deadline = time.monotonic() + seconds

    async def one(k: int, session: aiohttp.ClientSession) -> None:
        i = k
        while time.monotonic() < deadline:
            async with session.get(base + paths[i % len(paths)]) as r:
                await r.read()
                if r.status != 200:
                    bad[0] += 1
            done[0] += 1
            i += connections

    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                     auto_decompress=False) as session:
        await asyncio.gather(*(one(k, session) for k in range(connections)))
    return {"rps": done[0] / (time.monotonic() - t0), "non_2xx": bad[0], "p50_ms": None, "p99_ms": None}


def _load(base: str, paths: list[str], args: argparse.Namespace, work: Path, pid: int) -> dict[str, Any]:
    if shutil.which("wrk"):
        script = PATHS_LUA % {"paths": ",".join(f'"{p}"' for p in paths)}
        return _wrk(base + paths[0], args, script, work, pid)
    return asyncio.run(_python_load(base, paths, args.connections, args.seconds))


def _same_bytes(a: str, b: str, paths: list[str]) -> None:
    for p in paths[:: max(1, len(paths) // 16)]:
        x, y = urllib.request.urlopen(a + p).read(), urllib.request.urlopen(b + p).read()
        if x != y:
            raise AssertionError(f"{p}: nginx and the portal serve different bytes")


def measure(tiles: int = 256, seconds: int = 5, connections: int = 32, threads: int = 1, workers: int = 1,
            nginx_workers: int = 1, database: str = "") -> dict[str, Any]:
    """Tile reads per second through nginx and through the portal, and their ratio; the log in SQLite, or in
    the PostgreSQL `database` (an empty one)."""
    args = argparse.Namespace(seconds=seconds, connections=connections, threads=threads)
    work = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    serve: subprocess.Popen[bytes] | None = None
    try:
        home, folder = work / "home", work / "tiles"
        led = Ledger.init(home, database=database or None)
        try:
            for b in range(-(-tiles * 256 // 1000)):
                led.log.append_batch(batch(b, min(1000, tiles * 256 - b * 1000), stream="tiles"))
            with Publisher(led.log, folder) as pub:
                files = pub.publish()
        finally:
            led.close()
        port = _port()
        serve = subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(port),
                                  "--workers", str(workers)], stdout=subprocess.DEVNULL)
        portal = f"http://127.0.0.1:{port}"
        _wait(portal + "/healthz")
        paths = _paths(tiles)
        with running_nginx(folder, f"127.0.0.1:{port}", workers=nginx_workers) as ng:
            _same_bytes(ng.url, portal, paths)
            for p in paths:  # warm both: the portal's tile cache, the page cache nginx reads through
                urllib.request.urlopen(portal + p).read()
            via_nginx = _load(ng.url, paths, args, work, ng.proc.pid)
            via_portal = _load(portal, paths, args, work, serve.pid)
        return {"engine": "postgresql" if database else "sqlite", "tiles": tiles, "paths": len(paths),
                "files_published": files, "connections": connections,
                "seconds": seconds, "portal_workers": workers, "nginx_workers": nginx_workers,
                "client": "wrk" if shutil.which("wrk") else "python (aiohttp)",
                "nginx": via_nginx, "portal": via_portal,
                "ratio": via_nginx["rps"] / via_portal["rps"] if via_portal["rps"] else None}
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench tiles", description=__doc__.split("\n")[0])
    p.add_argument("--tiles", type=int, default=256, help="full level-0 tiles in the log (256 entries each)")
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--workers", type=int, default=1, help="`ledger serve --workers`")
    p.add_argument("--nginx-workers", type=int, default=1, help="nginx worker processes")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    r = measure(a.tiles, a.seconds, a.connections, a.threads, a.workers, a.nginx_workers)
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['paths']} full tiles and entry bundles ({r['files_published']} files published), read round-robin by "
          f"{r['client']} at {r['connections']} connections for {r['seconds']} s each")
    for name, x in (("nginx (tiles as files)", r["nginx"]), ("portal (from the database)", r["portal"])):
        lat = f", p50 {x['p50_ms']:.2f} ms, p99 {x['p99_ms']:.2f} ms" if x.get("p50_ms") is not None else ""
        cpu = x.get("cpu", {}).get("portal")
        cpu_s = f", server CPU {sum(cpu):.2f} cores" if cpu else ""
        print(f"  {name:<28} {x['rps']:>10,.0f} reads/s{lat}{cpu_s}; answers other than 200: {x['non_2xx']}")
    ratio = r["ratio"] or 0.0
    print(f"nginx / portal: {ratio:.1f}x (target >= {TARGET:g}x: {'met' if ratio >= TARGET else 'MISSED'})")
    return 0 if not (r["nginx"]["non_2xx"] or r["portal"]["non_2xx"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
