"""`python -m bench log`: our Merkle log side by side with pymerkle 7 and merkletools.

For each size, every system builds its own tree from the same 200-byte entries (batches of 1000,
a root or signed checkpoint after each), then separate processes measure warm proofs, the first proof
of a fresh process and, for our log, group commit. Databases live in a scratch directory that is
removed at the end; all figures go to `results.json` in `--out` and are printed as tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = "10000,100000,1000000"


def _sizes(text: str) -> list[int]:
    sizes = list(dict.fromkeys(int(s.replace("_", "")) for s in text.split(",") if s.strip()))
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("sizes must be integers >= 2")
    return sizes


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench log", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=_sizes, default=_sizes(DEFAULT_SIZES), help=f"default {DEFAULT_SIZES}")
    p.add_argument("--quick", action="store_true", help="smoke test: size 10000 only")
    p.add_argument("--out", type=Path, help="directory for results.json (default: a temporary one, removed)")
    p.add_argument("--keep-db", action="store_true", help="keep the databases (under --out)")
    p.add_argument("--samples", type=int, default=2000, help="timed proofs per kind (default 2000)")
    p.add_argument("--warmup", type=int, default=20000,
                   help="untimed proofs per kind first, within the proof time budget (default 20000)")
    p.add_argument("--proof-budget", type=float, default=60.0, help="seconds per proof kind and system")
    p.add_argument("--fresh-runs", type=int, default=3, help="fresh processes per system (median is shown)")
    p.add_argument("--producers", type=int, default=256,
                   help="concurrent asyncio producers for group commit (default 256)")
    p.add_argument("--events", type=int, default=20000, help="events appended by the group-commit run")
    p.add_argument("--single-events", type=int, default=300, help="events for the one-commit-per-event baseline")
    p.add_argument("--pymerkle-budget", type=float, default=360.0, help="seconds of timed pymerkle appends")
    p.add_argument("--merkletools-budget", type=float, default=60.0, help="seconds of timed merkletools appends")
    args = p.parse_args(argv)
    if args.keep_db and not args.out:
        p.error("--keep-db needs --out")
    if args.quick:
        args.sizes = [10_000]
    return args


class Runner:
    """Runs one task of one system in a fresh interpreter and returns its figures (or an error)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.count = 0

    def run(self, system: str, task: str, timeout: float = 1800, **spec: Any) -> dict[str, Any]:
        self.count += 1
        result = self.scratch / f"result-{self.count}.json"
        spec = {"system": system, "task": task, "result": str(result), **spec}
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
        cmd = [sys.executable, "-m", "bench.worker", json.dumps(spec)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"no answer within {timeout:.0f} s"}
        wall_ms = (time.perf_counter() - t0) * 1000
        if proc.returncode != 0 or not result.exists():
            tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            print(f"  {system} {task} failed:\n{proc.stderr.rstrip()}", file=sys.stderr)
            return {"error": tail[0]}
        figures: dict[str, Any] = json.loads(result.read_text())
        figures["process_wall_ms"] = wall_ms
        return figures


def db_bytes(db: Path) -> int:
    """The database file plus any WAL, shared-memory or rollback-journal file beside it."""
    files = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]
    return sum(f.stat().st_size for f in files if f.exists())


def _progress(size: int, text: str) -> None:
    print(f"[{size:,}] {text}", file=sys.stderr, flush=True)


def _proof_spec(args: argparse.Namespace) -> dict[str, Any]:
    return {"warmup": args.warmup, "samples": args.samples, "budget_s": args.proof_budget}


def measure_ours(run: Runner, size: int, db: Path, args: argparse.Namespace) -> dict[str, Any]:
    _progress(size, "ours: appending")
    out: dict[str, Any] = {"build": run.run("ours", "build", db=str(db), size=size)}
    if "error" in out["build"]:
        return out
    out["db_bytes"] = db_bytes(db)
    _progress(size, "ours: warm proofs")
    out["proofs"] = run.run("ours", "proofs", db=str(db), **_proof_spec(args))
    _progress(size, "ours: first proof in fresh processes")
    out["first_proof"] = [run.run("ours", "first_proof", db=str(db), size=size) for _ in range(args.fresh_runs)]
    _progress(size, f"ours: group commit, {args.producers} producers")
    out["group_commit"] = run.run("ours", "group_commit", db=str(db), events=args.events,
                                  producers=args.producers, single_events=args.single_events)
    return out


def measure_pymerkle(run: Runner, size: int, db: Path, args: argparse.Namespace) -> dict[str, Any]:
    _progress(size, "pymerkle: appending")
    out: dict[str, Any] = {"build": run.run("pymerkle", "build", db=str(db), size=size,
                                            budget_s=args.pymerkle_budget)}
    if "error" in out["build"]:
        return out
    out["db_bytes"] = db_bytes(db)
    _progress(size, "pymerkle: warm proofs")
    out["proofs"] = run.run("pymerkle", "proofs", db=str(db), **_proof_spec(args))
    _progress(size, "pymerkle: first proof in fresh processes")
    out["first_proof"] = [run.run("pymerkle", "first_proof", db=str(db), size=size) for _ in range(args.fresh_runs)]
    return out


def cross_checks(res: dict[str, Any]) -> list[str]:
    """Our log and pymerkle both implement RFC 9162, so their roots must agree."""
    o, p = res["ours"], res["pymerkle"]
    out = []
    ob, pb = o.get("build", {}), p.get("build", {})
    if "root" in ob and "root" in pb:
        agree = ob["root"] == pb["root"]
        out.append(f"roots at {res['size']:,} {'agree' if agree else 'DIFFER'} (ours vs pymerkle): {ob['root'][:16]}…")
    op, pp = o.get("proofs", {}), p.get("proofs", {})
    if "probe_root" in op and "probe_root" in pp and op["probe_size"] == pp["probe_size"]:
        agree = op["probe_root"] == pp["probe_root"]
        out.append(f"roots at {op['probe_size']:,} {'agree' if agree else 'DIFFER'}; "
                   f"every timed proof verified ({op['verified']:,} ours, {pp['verified']:,} pymerkle)")
    return out


def measure_size(run: Runner, size: int, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    d = scratch / f"n{size}"
    d.mkdir()
    res: dict[str, Any] = {"size": size}
    res["ours"] = measure_ours(run, size, d / "ours.db", args)
    res["pymerkle"] = measure_pymerkle(run, size, d / "pymerkle.db", args)
    _progress(size, f"merkletools: appending (budget {args.merkletools_budget:.0f} s)")
    res["merkletools"] = {"build": run.run("merkletools", "build", size=size, budget_s=args.merkletools_budget)}
    res["checks"] = cross_checks(res)
    if not args.keep_db:
        shutil.rmtree(d)
    return res


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-log-"))
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=out))
    machine = report.machine_info()
    print(report.machine_header(machine))
    print(f"workload: 200-byte random entries (fixed seed); sizes {', '.join(f'{s:,}' for s in args.sizes)}; "
          "ratio = ours / peer; ↑ higher is better, ↓ lower is better")
    print(f"method: one process per system and task; proofs: {args.warmup} untimed, then up to {args.samples} timed "
          "per kind (random leaf in the latest tree; random earlier size to the latest), every timed proof verified; "
          f"fresh process: median of {args.fresh_runs}; OS page cache warm\n", flush=True)
    results: dict[str, Any] = {}
    try:
        run = Runner(scratch)
        for size in args.sizes:
            results[str(size)] = res = measure_size(run, size, scratch, args)
            print(report.size_table(res, args.samples) + "\n", flush=True)
    finally:
        if not args.keep_db:
            shutil.rmtree(scratch, ignore_errors=True)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        doc = {"machine": machine, "settings": settings, "results": results,
               "elapsed_s": time.perf_counter() - started}
        if args.out:
            (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
        else:
            shutil.rmtree(out, ignore_errors=True)
    if len(results) > 1:
        print(report.summary(list(results.values()), args.samples) + "\n")
    elapsed = time.perf_counter() - started
    kept = f"figures in {out / 'results.json'}" if args.out else "pass --out DIR to keep results.json"
    print(f"done in {elapsed:.0f} s; {kept}")
    return 0
