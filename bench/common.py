"""Workload and measurement helpers shared by the benchmark workers.

Payloads are 200-byte pseudo-random entries from a fixed seed, generated per batch of 1000, so every
system appends exactly the same bytes and any entry can be regenerated from its index (to verify a
proof) without keeping the log in memory. Nothing here imports a measured library.
"""

from __future__ import annotations

import functools
import math
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

SEED = 9162
ENTRY_SIZE = 200
BATCH = 1000


def _batch_blob(stream: str, batch_no: int) -> bytes:
    return random.Random(f"{stream}:{SEED}:{batch_no}").randbytes(BATCH * ENTRY_SIZE)


# Small on purpose: appending generates each batch once (uncached, so memory stays flat), while
# proof checking regenerates single entries at random indexes.
_cached_blob = functools.lru_cache(maxsize=8)(_batch_blob)


def batch(batch_no: int, count: int = BATCH, stream: str = "log") -> list[bytes]:
    """Entries [batch_no*BATCH, batch_no*BATCH + count) of a payload stream."""
    blob = _batch_blob(stream, batch_no) if count else b""
    return [blob[i : i + ENTRY_SIZE] for i in range(0, count * ENTRY_SIZE, ENTRY_SIZE)]


def entry(index: int, stream: str = "log") -> bytes:
    """Entry `index` of a payload stream (the same bytes `batch` yields)."""
    off = (index % BATCH) * ENTRY_SIZE
    return _cached_blob(stream, index // BATCH)[off : off + ENTRY_SIZE]


def batches(size: int) -> list[tuple[int, int]]:
    """(batch number, entry count) for the batches that make up a log of `size` entries."""
    return [(b, min(BATCH, size - b * BATCH)) for b in range(math.ceil(size / BATCH))]


def proof_challenges(size: int, count: int) -> tuple[list[int], list[int]]:
    """Random leaf indexes (for inclusion in the tree of `size`) and earlier tree sizes (for
    consistency with `size`); the same for every system."""
    rng = random.Random(f"challenges:{SEED}:{size}")
    indexes = [rng.randrange(size) for _ in range(count)]
    sizes = [rng.randrange(1, size) for _ in range(count)]
    return indexes, sizes


def first_proof_index(size: int) -> int:
    return random.Random(f"first:{SEED}:{size}").randrange(size)


def max_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(samples_us: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(samples_us),
        "median_us": statistics.median(samples_us),
        "p99_us": percentile(samples_us, 99),
        "mean_us": statistics.fmean(samples_us),
    }


def time_calls(
    fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], warmup: int, budget_s: float
) -> tuple[list[float], list[Any], list[tuple[Any, ...]]]:
    """Run up to `warmup` calls untimed (for at most `budget_s` seconds), then time the rest one by one (µs)
    until done or out of budget.

    Returns the samples, the results and the arguments of the timed calls, so that every timed
    answer can be checked afterwards.
    """
    warm_deadline = time.perf_counter_ns() + int(min(budget_s, 15.0) * 1e9)
    for args in calls[:warmup]:
        fn(*args)
        if time.perf_counter_ns() > warm_deadline:
            break
    samples: list[float] = []
    results: list[Any] = []
    timed = calls[warmup:]
    deadline = time.perf_counter_ns() + int(budget_s * 1e9)
    clock = time.perf_counter_ns
    for args in timed:
        t0 = clock()
        r = fn(*args)
        t1 = clock()
        samples.append((t1 - t0) / 1000)
        results.append(r)
        if t1 > deadline:
            break
    return samples, results, list(timed[: len(samples)])
