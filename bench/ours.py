"""Benchmark tasks for our log (`ledger.storage.log.TileLog`), each run in a worker subprocess.

Every task takes the JSON spec the orchestrator passed and returns a JSON-able dict. Every proof
that is timed is verified afterwards with `verifier.merkle`, so no wrong answer is ever timed.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    batch,
    batches,
    entry,
    first_proof_index,
    max_rss_mib,
    percentile,
    summarize,
    time_calls,
)

ORIGIN = "bench.example/log"


def _key_path(db: Path) -> Path:
    return db.with_suffix(".key")


def _open(db: Path) -> Any:
    from ledger.storage.log import TileLog
    from ledger.storage.signer import LogSigner

    return TileLog.open(db, LogSigner.load(_key_path(db), ORIGIN))


def build(spec: dict[str, Any]) -> dict[str, Any]:
    """Append `size` entries in batches of 1000, each batch durably committed with a signed checkpoint."""
    from ledger.storage.log import TileLog
    from ledger.storage.signer import LogSigner

    db, size = Path(spec["db"]), spec["size"]
    signer = LogSigner.generate(ORIGIN)
    signer.save(_key_path(db))
    log = TileLog.create(db, signer)
    rss_before = max_rss_mib()
    clock = time.perf_counter_ns
    commit_ms: list[float] = []
    res = None
    for b, n in batches(size):
        entries = batch(b, n)
        t0 = clock()
        res = log.append_batch(entries)
        commit_ms.append((clock() - t0) / 1e6)
    rss_after = max_rss_mib()
    assert res is not None and res.size == size == log.size, "the log did not end at the expected size"
    log.close()
    seconds = sum(commit_ms) / 1000
    return {
        "entries": size,
        "seconds": seconds,
        "entries_per_s": size / seconds,
        "checkpoints": len(commit_ms),
        "batch_ms_median": statistics.median(commit_ms),
        "batch_ms_p99": percentile(commit_ms, 99),
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_after,
        "rss_growth_mib": rss_after - rss_before,
        "root": res.root.hex(),
    }


def proofs(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm-process inclusion and consistency proofs against the latest tree, verified afterwards."""
    from bench.common import proof_challenges
    from verifier.merkle import leaf_hash, verify_consistency, verify_inclusion

    log = _open(Path(spec["db"]))
    size, warmup, samples, budget = log.size, spec["warmup"], spec["samples"], spec["budget_s"]
    indexes, sizes = proof_challenges(size, warmup + samples)
    inc_us, inc_proofs, inc_args = time_calls(log.inclusion_proof, [(i, size) for i in indexes], warmup, budget)
    con_us, con_proofs, con_args = time_calls(log.consistency_proof, [(s, size) for s in sizes], warmup, budget)

    root = log.root_at(size)
    for (index, n), proof in zip(inc_args, inc_proofs, strict=True):
        verify_inclusion(index, n, leaf_hash(entry(index)), proof, root)
    for (size1, n), proof in zip(con_args, con_proofs, strict=True):
        verify_consistency(size1, n, log.root_at(size1), root, proof)
    probe = sizes[warmup]
    result = {
        "size": size,
        "inclusion": summarize(inc_us),
        "consistency": summarize(con_us),
        "verified": len(inc_proofs) + len(con_proofs),
        "root": root.hex(),
        "probe_size": probe,
        "probe_root": log.root_at(probe).hex(),
    }
    log.close()
    return result


def first_proof(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: open the existing log and produce one inclusion proof."""
    clock = time.perf_counter_ns
    t0 = clock()
    from ledger.storage.log import TileLog
    from verifier.merkle import leaf_hash, verify_inclusion

    t1 = clock()
    db = Path(spec["db"])
    index = first_proof_index(spec["size"])
    t2 = clock()
    log = TileLog.open_reader(db)  # a proof server needs no key and changes nothing
    t3 = clock()
    proof = log.inclusion_proof(index, log.size)
    t4 = clock()
    verify_inclusion(index, log.size, leaf_hash(entry(index)), proof, log.root_at(log.size))
    log.close()
    return {"import_ms": (t1 - t0) / 1e6, "open_ms": (t3 - t2) / 1e6, "proof_ms": (t4 - t3) / 1e6,
            "total_ms": (t4 - t2) / 1e6}


def group_commit(spec: dict[str, Any]) -> dict[str, Any]:
    """Many producers each append one entry and wait for its acknowledgement (group commit).

    Runs last at each size: it grows the log. Also measures single appends from one producer, each its
    own commit, as the baseline that group commit improves on.
    """
    try:
        from ledger.storage.sequencer import Sequencer
    except ImportError as err:
        return {"unavailable": f"ledger.storage.sequencer cannot be imported: {err}"}
    from verifier.merkle import leaf_hash, verify_inclusion

    log = _open(Path(spec["db"]))
    single = [entry(k, "single") for k in range(spec["single_events"])]
    t0 = time.perf_counter()
    for e in single:
        log.append_batch([e])
    single_s = time.perf_counter() - t0

    events, producers = spec["events"], spec["producers"]
    payloads = [entry(k, "events") for k in range(events)]
    acks: list[Any] = [None] * events
    latency_ms = [0.0] * events
    tickets = itertools.count()
    seq = Sequencer(log, max_batch=1000, max_delay_ms=0)

    async def producer() -> None:
        # asyncio producers, as in the portal: each awaits its own durable acknowledgement
        clock = time.perf_counter_ns
        while (k := next(tickets)) < events:
            t = clock()
            acks[k] = await seq.asubmit(payloads[k])
            latency_ms[k] = (clock() - t) / 1e6

    async def run_all() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        return time.perf_counter() - t0

    elapsed = asyncio.run(run_all())
    seq.close()

    first = min(a.index for a in acks)
    assert sorted(a.index for a in acks) == list(range(first, first + events)), "acknowledged indexes have gaps"
    assert all(a.leaf_hash == leaf_hash(p) for a, p in zip(acks, payloads, strict=True)), "wrong leaf hash acked"
    size = log.size
    root = log.root_at(size)
    for a in acks[:: max(1, events // 20)]:
        verify_inclusion(a.index, size, a.leaf_hash, log.inclusion_proof(a.index, size), root)
    commits = len({a.size for a in acks})
    log.close()
    return {
        "producers": producers,
        "events": events,
        "events_per_s": events / elapsed,
        "ack_ms_median": statistics.median(latency_ms),
        "ack_ms_p99": percentile(latency_ms, 99),
        "commits": commits,
        "mean_batch": events / commits,
        "single_events": len(single),
        "single_events_per_s": len(single) / single_s,
    }
