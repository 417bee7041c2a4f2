"""Text tables for `python -m bench log`: one table per size, plus a summary of ratios across sizes.

A ratio is always ours / peer; each row says whether higher or lower is better.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

UP, DOWN = "↑", "↓"
NA = "—"
Cell = tuple[str, float | None]  # (printed text, value for ratios or None)
Row = tuple[str, str, Cell, Cell, Cell]


def machine_info() -> dict[str, Any]:
    def first_line(path: str, key: str) -> str:
        try:
            with open(path) as f:
                return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith(key)), "?")
        except OSError:
            return "?"

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    mem = first_line("/proc/meminfo", "MemTotal")
    if mem.endswith(" kB"):
        mem = f"{int(mem[:-3]) / 2**20:.1f} GiB"
    return {
        "cpu": first_line("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory": mem,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "pymerkle": version("pymerkle"),
        "merkletools": version("merkletools"),
    }


def machine_header(m: dict[str, Any]) -> str:
    return (
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory']} RAM\n"
        f"python {m['python']} ({m['implementation']}) on {m['platform']}, SQLite {m['sqlite']}\n"
        f"peers: pymerkle {m['pymerkle']} (SqliteTree, RFC 9162 hashing), "
        f"merkletools {m['merkletools']} (in memory: not durable, no leaf/node prefixes)"
    )


def _num(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _ratio(ours: float | None, peer: float | None) -> str:
    if not ours or not peer:
        return NA
    return f"{ours / peer:.2f}×"


def _ratio_cell(ours: float | None, peer_text: str, peer: float | None) -> str:
    if peer_text.startswith("n/a (timed out"):
        return "n/a (timed out)"
    r = _ratio(ours, peer)
    return f"{r} (first entries only)" if "only)" in peer_text and r != NA else r


def _ok(d: dict[str, Any] | None) -> bool:
    return d is not None and "error" not in d and "unavailable" not in d


def _cell(d: dict[str, Any] | None, get: Callable[[dict[str, Any]], float]) -> Cell:
    if d is None:
        return NA, None
    if "error" in d:
        return "error", None
    if "unavailable" in d:
        return "unavailable", None
    v = get(d)
    return _num(v), v


def _append_cell(system: str, d: dict[str, Any] | None) -> Cell:
    text, v = _cell(d, lambda b: b["entries_per_s"])
    if v is None or d is None or d.get("complete", True):
        return text, v
    if system == "merkletools":
        return f"n/a (timed out after {d['entries']:,} entries, {text} entries/s)", None
    return f"{text} (measured over first {d['entries']:,} entries only)", v


def _mem_cell(d: dict[str, Any] | None) -> Cell:
    text, v = _cell(d, lambda b: b["rss_growth_mib"])
    if v is not None and d is not None and not d.get("complete", True):
        return f"{text} (at {d['entries']:,} entries)", None  # not comparable: no ratio
    return text, v


def _proof_cell(d: dict[str, Any] | None, kind: str, stat: str, samples: int) -> Cell:
    text, v = _cell(d, lambda p: p[kind][stat])
    if v is not None and d is not None and d[kind]["count"] < samples:
        text += f" (n={d[kind]['count']})"
    return text, v


def fresh_ms(runs: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The median over fresh-process runs, or the first failure."""
    if not runs:
        return None
    bad = next((r for r in runs if not _ok(r)), None)
    return bad or {"total_ms": statistics.median(r["total_ms"] for r in runs)}


def _db_cell(system: dict[str, Any], size: int) -> Cell:
    if "db_bytes" not in system:
        return _cell(system.get("build"), lambda _: 0.0)
    v = system["db_bytes"] / size
    return _num(v), v


def rows(res: dict[str, Any], samples: int) -> list[Row]:
    """The table rows: (label, direction, ours, pymerkle, merkletools)."""
    o, p, m = res.get("ours", {}), res.get("pymerkle", {}), res.get("merkletools", {})
    gc = o.get("group_commit")
    producers = gc.get("producers", "?") if gc else "?"
    out: list[Row] = [
        ("durable append, 1000 per batch + checkpoint (entries/s)", UP, _append_cell("ours", o.get("build")),
         _append_cell("pymerkle", p.get("build")), _append_cell("merkletools", m.get("build"))),
        (f"group commit, {producers} producers (acked events/s)", UP, _cell(gc, lambda g: g["events_per_s"]),
         ("— (no such mode)", None), ("— (no such mode)", None)),
        ("  ack latency p99 (ms)", DOWN, _cell(gc, lambda g: g["ack_ms_p99"]), (NA, None), (NA, None)),
        ("  1 producer, one commit per event (events/s)", UP,
         _cell(gc, lambda g: g["single_events_per_s"]), (NA, None), (NA, None)),
    ]
    for kind in ("inclusion", "consistency"):
        for stat, label in (("median_us", "median"), ("p99_us", "p99")):
            out.append((f"{kind} proof, warm, {label} (µs)", DOWN, _proof_cell(o.get("proofs"), kind, stat, samples),
                        _proof_cell(p.get("proofs"), kind, stat, samples), (NA, None)))
    out += [
        ("first proof, fresh process: open + prove (ms)", DOWN,
         _cell(fresh_ms(o.get("first_proof")), lambda f: f["total_ms"]),
         _cell(fresh_ms(p.get("first_proof")), lambda f: f["total_ms"]), ("— (not persistent)", None)),
        ("peak memory growth while appending (MiB)", DOWN, _mem_cell(o.get("build")), _mem_cell(p.get("build")),
         _mem_cell(m.get("build"))),
        ("database size (bytes/entry, payload is 200)", DOWN, _db_cell(o, res["size"]), _db_cell(p, res["size"]),
         ("— (in memory)", None)),
    ]
    return out


def size_table(res: dict[str, Any], samples: int) -> str:
    header = ("metric", "", "ours", "pymerkle", "ours/pym", "merkletools", "ours/mt")
    body = []
    for label, arrow, (ot, ov), (pt, pv), (mt, mv) in rows(res, samples):
        body.append((label, arrow, ot, pt, _ratio_cell(ov, pt, pv), mt, _ratio_cell(ov, mt, mv)))
    lines = _align([header, *body], left=2)
    rule = "-" * len(lines[0])
    return "\n".join([f"== {res['size']:,} entries ==", lines[0], rule, *lines[1:], rule, *notes(res)])


def _align(table: Sequence[Sequence[str]], left: int) -> list[str]:
    """Pad columns to equal width: the first `left` columns flush left, the rest flush right."""
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in table]


def notes(res: dict[str, Any]) -> list[str]:
    out = []
    o, p = res.get("ours", {}), res.get("pymerkle", {})
    for check in res.get("checks", []):
        out.append(f"check: {check}")
    if _ok(o.get("build")):
        b = o["build"]
        out.append(f"ours: {b['checkpoints']} signed checkpoints; commit per batch median {b['batch_ms_median']:.2f} ms,"
                   f" p99 {b['batch_ms_p99']:.2f} ms")
    if _ok(o.get("group_commit")):
        g = o["group_commit"]
        out.append(f"ours group commit: {g['events']:,} events in {g['commits']:,} commits (mean {g['mean_batch']:.1f}"
                   f" per commit), ack median {g['ack_ms_median']:.2f} ms")
    for system in ("ours", "pymerkle"):
        runs = res.get(system, {}).get("first_proof") or []
        if runs and all(_ok(r) for r in runs):
            parts = ", ".join(f"{k} {statistics.median(r[k + '_ms'] for r in runs):.1f} ms"
                              for k in ("import", "open", "proof"))
            wall = statistics.median(r["process_wall_ms"] for r in runs)
            out.append(f"{system} fresh process (median of {len(runs)}): {parts}; whole process {wall:.0f} ms")
    if _ok(p.get("build")):
        b = p["build"]
        prag = ", ".join(f"{k}={v}" for k, v in b["pragmas"].items())
        out.append(f"pymerkle: SQLite {prag}; append_entries + get_root per batch median {b['batch_ms_median']:.2f} ms")
    for system in ("ours", "pymerkle", "merkletools"):
        for task, d in res.get(system, {}).items():
            runs = d if isinstance(d, list) else [d]
            for r in runs:
                if isinstance(r, dict) and ("error" in r or "unavailable" in r):
                    out.append(f"{system} {task}: {r.get('error') or r.get('unavailable')}")
                    break
    return out


def summary(results: list[dict[str, Any]], samples: int) -> str:
    """Ratios ours / pymerkle (and ours / merkletools for appends and memory) with sizes as columns."""
    table: dict[str, list[str]] = {}
    for res in results:
        for label, arrow, (_, ov), (pt, pv), (mt, mv) in rows(res, samples):
            if label.startswith("  ") or "group commit" in label:
                continue
            name = f"{arrow} {label.split(' (')[0]}"
            table.setdefault(f"{name} vs pymerkle", []).append(_ratio_cell(ov, pt, pv))
            if "append" in label or "memory" in label:
                table.setdefault(f"{name} vs merkletools", []).append(_ratio_cell(ov, mt, mv))
    header = ["ratio ours / peer", *(f"{res['size']:,}" for res in results)]
    lines = _align([header, *([k, *v] for k, v in table.items())], left=1)
    return "\n".join(["== summary ==", lines[0], "-" * len(lines[0]), *lines[1:]])
