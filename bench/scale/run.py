"""`python -m bench scale`: the ledger on more than one host, in one run on this machine, with its targets.

1. Acknowledged appends on SQLite and on PostgreSQL, the same workloads (`bench.scale.appends`: durable
   one-event appends, and a contract's lifecycle of 11 events), through `Ledger.asubmit` and the sequencer
   as `ledger serve` runs them, without HTTP. Target: PostgreSQL at least 25% of SQLite's events per second.
2. `GET /v/{code}` pages from one `ledger serve` host and from two hosts sharing the PostgreSQL database
   (`bench.scale.pages`, wrk). No target: the ratio says what the second host adds on this machine.
3. Full-tile reads through nginx serving the tiles folder against through the portal (`bench.scale.tiles`;
   the log in PostgreSQL). Target: nginx at least 3x the portal.
PostgreSQL is a throwaway cluster on this machine (`bench.scale.servers`), `fsync` on: both engines pay
for durable commits on the same disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.scale import appends, pages, tiles
from bench.scale.servers import Cluster, running_postgresql

PG_TARGET = 0.25  # PostgreSQL's acknowledged events per second, at least this share of SQLite's
TILES_TARGET = tiles.TARGET
W = 46  # the width of the table's first column


def measure(pg: Cluster, seconds: int = 5, connections: int = 32, tile_count: int = 64) -> dict[str, Any]:
    """Every figure of the run, against the running PostgreSQL cluster `pg`."""
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        res: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                               "seconds": seconds, "connections": connections}
        res["sqlite"] = appends.measure(work / "sqlite", "", connections, seconds)
        res["postgresql"] = appends.measure(work / "postgresql", pg.fresh_database(), connections, seconds)
        res["pages"] = pages.measure(pg.fresh_database(), work / "pages", connections, seconds)
        res["tiles"] = tiles.measure(tile_count, seconds, connections, database=pg.fresh_database())
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _verdict(ratio: float | None, target: float) -> str:
    return "" if ratio is None else ("met" if ratio >= target else "MISSED")


def report(r: dict[str, Any]) -> list[str]:
    """The table: each figure, its ratio, and the target it is held to."""
    lite, pg, pa, ti = r["sqlite"], r["postgresql"], r["pages"], r["tiles"]
    out = [f"machine: {r['machine']['cores']} cores, Python {r['machine']['python']}; {r['connections']} "
           f"concurrent clients, {r['seconds']} s per run; PostgreSQL on this machine (fsync on)",
           f"{'':<{W}}{'SQLite':>12}{'PostgreSQL':>12}{'ratio':>8}  target"]
    for name, key, unit in (("durable appends, 1 event a request", "appends", "events_per_s"),
                            ("lifecycle, 11 events in 8 requests", "lifecycle", "events_per_s")):
        a, b = lite[key][unit], pg[key][unit]
        ratio = b / a if a else None
        out.append(f"{name + ', events/s':<{W}}{a:>12,.0f}{b:>12,.0f}{ratio or 0:>8.2f}  PostgreSQL >= "
                   f"{PG_TARGET:.0%} of SQLite: {_verdict(ratio, PG_TARGET)}")
        out.append(f"{'  p50 / p99 ms of an acknowledgement':<{W}}{lite[key]['p50_ms']:>6.1f}/{lite[key]['p99_ms']:<5.1f}"
                   f"{pg[key]['p50_ms']:>6.1f}/{pg[key]['p99_ms']:<5.1f}")
    out.append(f"{'  contracts/s (lifecycle)':<{W}}{lite['lifecycle']['contracts_per_s']:>12,.0f}"
               f"{pg['lifecycle']['contracts_per_s']:>12,.0f}")
    out.append(f"{'  events per commit (group commit)':<{W}}{lite['events_per_commit']:>12.1f}"
               f"{pg['events_per_commit']:>12.1f}")
    out.append(f"{'':<{W}}{'one host':>12}{'two hosts':>12}{'ratio':>8}")
    one, two = pa["one_host"], pa["two_hosts"]
    out.append(f"{'GET /v/{code} pages/s (PostgreSQL)':<{W}}{one['rps']:>12,.0f}{two['rps']:>12,.0f}"
               f"{pa['ratio'] or 0:>8.2f}  none (busy cores: {one['busy_cores']:.1f} and {two['busy_cores']:.1f} "
               f"of {r['machine']['cores']}; two hosts: {' + '.join(f'{x:,.0f}' for x in two['per_host'])})")
    out.append(f"{'  p50 / p99 ms':<{W}}{one['p50_ms'] or 0:>6.1f}/{one['p99_ms'] or 0:<5.1f}"
               f"{two['p50_ms'] or 0:>6.1f}/{two['p99_ms'] or 0:<5.1f}")
    out.append(f"{'':<{W}}{'portal':>12}{'nginx':>12}{'ratio':>8}")
    out.append(f"{'full-tile reads/s, ' + str(ti['paths']) + ' paths (' + ti['client'] + ')':<{W}}"
               f"{ti['portal']['rps']:>12,.0f}{ti['nginx']['rps']:>12,.0f}{ti['ratio'] or 0:>8.2f}  nginx >= "
               f"{TILES_TARGET:g}x the portal: {_verdict(ti['ratio'], TILES_TARGET)}")
    bad = one["non_2xx"] + two["non_2xx"] + ti["nginx"]["non_2xx"] + ti["portal"]["non_2xx"]
    out.append(f"appends: in-process, Ledger.asubmit from {r['connections']} asyncio clients and the sequencer's group "
               "commit (no HTTP); every acknowledged event checked in the log afterwards. "
               f"HTTP answers other than 2xx: {bad}")
    if (r["machine"]["cores"] or 1) <= 2:
        out.append("two hosts on one machine of 2 cores: the second host adds a process on the second core, which "
                   "PostgreSQL and wrk share; a second machine would add its own cores")
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=5, help="length of each measured run")
    p.add_argument("--connections", type=int, default=32, help="concurrent clients of each run")
    p.add_argument("--tiles", type=int, default=64, help="full level-0 tiles in the tiles run's log (256 entries each)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk): ./scripts/system-deps --bench", file=sys.stderr)
        return 2
    with running_postgresql() as pg:
        r = measure(pg, a.seconds, a.connections, a.tiles)
    print(json.dumps(r, indent=2) if a.json else "\n".join(report(r)))
    bad = (r["pages"]["one_host"]["non_2xx"] + r["pages"]["two_hosts"]["non_2xx"] + r["tiles"]["nginx"]["non_2xx"]
           + r["tiles"]["portal"]["non_2xx"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
