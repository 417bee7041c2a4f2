"""`python -m bench portal`: the portal under load on loopback, with wrk as the load generator.

In one run, at `--connections` concurrent connections for `--seconds` each:
1. a static-file baseline: a tiny aiohttp app returning a fixed 2 KiB body (the ceiling of this
   machine, this Python and aiohttp, with the load generator sharing the cores);
2. `GET /v/{code}` pages of a real `ledger serve` (demo data), rotating over the printed copies;
3. event posts through `POST /api/v1/events`: one event per request, then `--batch` events per
   request; every answer is checked to be a 201 acknowledgement, and the log size is checked
   against the number of events acknowledged afterwards.
Figures are printed with the targets of the issue and as ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent

STATIC_APP = """
import sys
from aiohttp import web
BODY = b"x" * 2048
async def h(request):
    return web.Response(body=BODY, content_type="text/css")
app = web.Application()
app.router.add_get("/static.css", h)
try:
    import uvloop
    loop_factory = uvloop.new_event_loop
except ImportError:
    loop_factory = None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
            **({"loop": loop_factory()} if loop_factory else {}))
"""

POST_LUA = """
local n = 0
local tid = 0
local batch = %(batch)d
local key = "%(key)s"
function setup(thread) tid = tid + 1; thread:set("id", tid) end
function request()
  n = n + 1
  local events = {}
  for i = 1, batch do
    events[i] = string.format('{"type":"envelope.created","envelope":"%(run)s%%d-%%d-%%d","title":"Contract"}',
                              id, n, i)
  end
  local body = batch == 1 and events[1] or ("[" .. table.concat(events, ",") .. "]")
  return wrk.format("POST", "/api/v1/events", {["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer " .. key}, body)
end
local bad = 0
function response(status, headers, body) if status ~= 201 then bad = bad + 1 end end
function done(summary, latency, requests)
  io.write(string.format("STATUS_NOT_201 %%d\\n", bad))
end
"""

PAGES_LUA = """
local codes = {%(codes)s}
local i = 0
function request()
  i = i + 1
  return wrk.format("GET", "/v/" .. codes[(i %% #codes) + 1])
end
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


TICK = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    """`root` and its descendants (the processes of one `ledger serve`)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of one process so far (0 once it is gone)."""
    try:
        f = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / TICK


def _machine() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far (from /proc/stat)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return (sum(f[:8]) - idle) / TICK, sum(f[:8]) / TICK


def _wrk(url: str, args: argparse.Namespace, script: str | None, work: Path, server: int | None = None
         ) -> dict[str, Any]:
    """One wrk run; with the `server` process, also the CPU it and wrk used (in cores, on average)."""
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
    if script:
        path = work / f"s{abs(hash(script))}.lua"
        path.write_text(script)
        cmd += ["-s", str(path)]
    pids = _tree(server) if server else []
    cpu0, (busy0, all0) = [_cpu_s(p) for p in pids], _machine()
    wrk0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    wrk1, elapsed, (busy1, all1) = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - t0, _machine()
    cpu = {"portal": [(_cpu_s(p) - c) / elapsed for p, c in zip(pids, cpu0, strict=True)],
           "wrk": (wrk1.ru_utime + wrk1.ru_stime - wrk0.ru_utime - wrk0.ru_stime) / elapsed,
           "machine_busy": (busy1 - busy0) / (all1 - all0) * (os.cpu_count() or 1)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        if m:
            v = float(m.group(1))
            lat[pct] = v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    bad = re.search(r"STATUS_NOT_201 (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "cpu": cpu,
            "not_201": int(bad.group(1)) if bad else None, "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def _median_run(url: str, args: argparse.Namespace, script: Callable[[int], str | None], work: Path,
                server: int | None = None) -> dict[str, Any]:
    """`--repeat` runs of one measurement (`script(k)` for run k): the run with the median rate, the
    range of rates seen, and the answers other than 201 over all runs."""
    runs = sorted((_wrk(url, args, script(k), work, server) for k in range(args.repeat)), key=lambda r: r["rps"])
    median = runs[len(runs) // 2]
    median["range"] = (runs[0]["rps"], runs[-1]["rps"])
    if median["not_201"] is not None:
        median["not_201"] = sum(r["not_201"] for r in runs)
    return median


def _ledger(home: Path, *args: str) -> str:
    return subprocess.run([str(BIN / "ledger"), "--home", str(home), *args], capture_output=True, text=True,
                          check=True).stdout


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench portal", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="wrk threads (the load generator's cores)")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--workers", type=int, default=1, help="`ledger serve --workers`")
    p.add_argument("--batch", type=int, default=100, help="events per request in the batch run")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each measurement (odd: 3, 5); the one with the median rate is printed, with the range")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        home = work / "home"
        _ledger(home, "init")
        cfg = home / "config.toml"  # no rate limit: the load comes from one address
        cfg.write_text(re.sub(r"(?m)^lookup_rate = .*$", "lookup_rate = 0.0", cfg.read_text()))
        codes = re.findall(r"/v/([0-9A-Z]{20})", _ledger(home, "demo"))
        key = _ledger(home, "keys", "create", "--tenant", "bench", "--scopes", "append,read").strip()
        sport, lport = _port(), _port()
        procs.append(subprocess.Popen([sys.executable, "-c", STATIC_APP, str(sport)]))
        serve = subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve", "--port", str(lport),
                                  "--workers", str(args.workers)], stdout=subprocess.DEVNULL)
        procs.append(serve)
        _wait(f"http://127.0.0.1:{sport}/static.css")
        _wait(f"http://127.0.0.1:{lport}/healthz")
        time.sleep(1.0)
        for c in codes:  # the first view of each page is rendered, later ones come from the page cache
            urllib.request.urlopen(f"http://127.0.0.1:{lport}/v/{c}").read()
        base = f"http://127.0.0.1:{lport}"
        res: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                               "connections": args.connections, "workers": args.workers}
        res["static"] = _median_run(f"http://127.0.0.1:{sport}/static.css", args, lambda k: None, work,
                                    procs[0].pid)
        codes_lua = ",".join(f'"{c}"' for c in codes)
        res["pages"] = _median_run(base + "/v/" + codes[0], args, lambda k: PAGES_LUA % {"codes": codes_lua}, work,
                                   serve.pid)
        size0 = json.loads(urllib.request.urlopen(base + "/healthz").read())["size"]
        res["single"] = _median_run(base + "/api/v1/events", args,  # new envelope names in every run
                                    lambda k: POST_LUA % {"batch": 1, "key": key, "run": f"S{k}-"}, work, serve.pid)
        res["batch"] = _median_run(base + "/api/v1/events", args,
                                   lambda k: POST_LUA % {"batch": args.batch, "key": key, "run": f"B{k}-"}, work,
                                   serve.pid)
        size1 = json.loads(urllib.request.urlopen(base + "/healthz").read())["size"]
        res["single"]["events_per_s"] = res["single"]["rps"]
        res["batch"]["events_per_s"] = res["batch"]["rps"] * args.batch
        res["events_in_log"] = size1 - size0
        _print(res, args)
        (work / "results.json").write_text(json.dumps(res, indent=2))
        bad = (res["single"]["not_201"] or 0) + (res["batch"]["not_201"] or 0)
        if bad:  # a refused request is not throughput: the figures above do not count
            print(f"INVALID RUN: {bad} answers were not 201 acknowledgements", file=sys.stderr)
            return 1
    finally:
        for pr in procs:
            pr.terminate()
            pr.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def verdict(rate: float, p99_ms: float | None, target: str) -> str:
    """": met" or ": MISSED" for a target written ">= N.../s, p99 <= M ms" ("" for no target)."""
    m = re.fullmatch(r">= ([\d,]+)[^,]*, p99 <= (\d+) ms", target)
    if m is None:
        return ""
    met = rate >= int(m.group(1).replace(",", "")) and p99_ms is not None and p99_ms <= int(m.group(2))
    return ": met" if met else ": MISSED"


def _print(r: dict[str, Any], args: argparse.Namespace) -> None:
    st = r["static"]
    print(f"machine: {r['machine']['cores']} cores, Python {r['machine']['python']}; wrk {args.threads} thread(s), "
          f"{args.connections} connections, {args.seconds} s per run; ledger serve --workers {args.workers}")
    print(f"{'run':<38}{'req/s':>10}{'items/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'vs static':>11}  target")
    rows = [
        ("static baseline (tiny aiohttp handler)", st, st["rps"], ""),
        ("GET /v/{code} pages", r["pages"], r["pages"]["rps"], ">= 3,000/s, p99 <= 20 ms"),
        ("POST one event per request", r["single"], r["single"]["events_per_s"], ">= 5,000 events/s, p99 <= 50 ms"),
        (f"POST {args.batch} events per request", r["batch"], r["batch"]["events_per_s"],
         ">= 50,000 events/s, p99 <= 50 ms"),
    ]
    for name, x, items, target in rows:
        print(f"{name:<38}{x['rps']:>10,.0f}{items:>12,.0f}{x['p50_ms'] or 0:>9.1f}{x['p99_ms'] or 0:>9.1f}"
              f"{x['rps'] / st['rps']:>10.2f}x  {target}{verdict(items, x['p99_ms'], target)}")
    if args.repeat > 1:
        print(f"each row is the median of {args.repeat} runs; their rates in req/s ranged:")
        for name, x, _, _ in rows:
            print(f"  {name:<36} {x['range'][0]:,.0f} to {x['range'][1]:,.0f}")
    print("CPU in cores, on average over each run (the portal's processes, the writer first; then wrk):")
    for name, x, items, _ in rows:
        c = x["cpu"]
        portal = sum(c["portal"])
        per = portal / items * 1e6 if items else 0
        print(f"  {name:<36} portal {portal:.2f} ({' + '.join(f'{v:.2f}' for v in c['portal'])}), "
              f"wrk {c['wrk']:.2f}, machine busy {c['machine_busy']:.2f} of {r['machine']['cores']}; "
              f"portal {per:,.0f} us of CPU per item")
    b = r["batch"]
    if b["events_per_s"]:
        # Little's law: with every connection waiting on a whole batch, the mean wait is in flight / rate
        floor = args.connections * args.batch / b["events_per_s"] * 1000
        need = args.connections * args.batch / 0.050
        print(f"batch latency floor: {args.connections} connections x {args.batch} events in flight at "
              f"{b['events_per_s']:,.0f} events/s = {floor:,.0f} ms mean; a 50 ms mean at this concurrency "
              f"needs {need:,.0f} events/s")
    bad = (r["single"]["not_201"] or 0) + (r["batch"]["not_201"] or 0)
    print(f"acknowledged durably: {r['events_in_log']:,} events now in the log; answers other than 201: {bad}")
