"""Benchmark tasks for the peer Merkle-tree libraries, each run in a worker subprocess.

- pymerkle 7, `SqliteTree`: a persistent RFC 9162 tree (same 0x00/0x01 prefixes, so its roots must
  equal ours). Appends use `append_entries`, its bulk path (one transaction per call); the root after
  each batch comes from `get_root`. Proofs are checked with pymerkle's own verifier.
- merkletools 1.0.3: an in-memory tree without domain separation; `make_tree` rebuilds the whole
  tree, so a time budget stops it at large sizes.

Nothing from `ledger` or `verifier` is imported here, so memory figures are not inflated by our code.
"""

from __future__ import annotations

import hashlib
import statistics
import time
import warnings
from typing import Any

from bench.common import (
    batch,
    batches,
    entry,
    first_proof_index,
    max_rss_mib,
    percentile,
    proof_challenges,
    summarize,
    time_calls,
)


def pymerkle_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Append in batches of 1000 with a root after each batch, within a time budget.

    Past the budget the rate measured so far is reported as such, and the rest of the tree is filled in
    untimed (one bulk call, no roots) so that the proof figures still run at the full size.
    """
    import pymerkle

    size, budget = spec["size"], spec["budget_s"]
    tree = pymerkle.SqliteTree(spec["db"])
    pragmas = {p: tree.con.execute(f"PRAGMA {p}").fetchone() for p in ("journal_mode", "synchronous")}
    rss_before = max_rss_mib()
    clock = time.perf_counter_ns
    commit_ms: list[float] = []
    root, measured = b"", 0
    for b, n in batches(size):
        entries = batch(b, n)
        t0 = clock()
        tree.append_entries(entries)
        root = tree.get_root()
        commit_ms.append((clock() - t0) / 1e6)
        measured += n
        if sum(commit_ms) > budget * 1000 and measured < size:
            break
    rss_after = max_rss_mib()
    seconds = sum(commit_ms) / 1000
    if measured < size:
        tree.append_entries(e for b, n in batches(size)[len(commit_ms) :] for e in batch(b, n))
        root = tree.get_root()
    assert tree.get_size() == size, "pymerkle did not end at the expected size"
    tree.close()
    return {
        "entries": measured,
        "complete": measured == size,
        "seconds": seconds,
        "entries_per_s": measured / seconds,
        "checkpoints": len(commit_ms),
        "batch_ms_median": statistics.median(commit_ms),
        "batch_ms_p99": percentile(commit_ms, 99),
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_after,
        "rss_growth_mib": rss_after - rss_before,
        "root": root.hex(),
        "pragmas": pragmas,
        "version": pymerkle.__version__,
    }


def pymerkle_proofs(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm-process proofs on the SqliteTree (1-based leaf indexes), verified afterwards."""
    import pymerkle

    tree = pymerkle.SqliteTree(spec["db"])
    size, warmup, samples, budget = tree.get_size(), spec["warmup"], spec["samples"], spec["budget_s"]
    indexes, sizes = proof_challenges(size, warmup + samples)
    inc_us, inc_proofs, inc_args = time_calls(
        tree.prove_inclusion, [(i + 1, size) for i in indexes], warmup, budget
    )
    con_us, con_proofs, con_args = time_calls(tree.prove_consistency, [(s, size) for s in sizes], warmup, budget)

    root = tree.get_root(size)
    for (index, _), proof in zip(inc_args, inc_proofs, strict=True):
        pymerkle.verify_inclusion(tree.hash_buff(entry(index - 1)), root, proof)
    for (size1, _), proof in zip(con_args, con_proofs, strict=True):
        pymerkle.verify_consistency(tree.get_root(size1), root, proof)
    probe = sizes[warmup]
    result = {
        "size": size,
        "inclusion": summarize(inc_us),
        "consistency": summarize(con_us),
        "verified": len(inc_proofs) + len(con_proofs),
        "root": root.hex(),
        "probe_size": probe,
        "probe_root": tree.get_root(probe).hex(),
    }
    tree.close()
    return result


def pymerkle_first_proof(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: open the SqliteTree file and produce one inclusion proof."""
    clock = time.perf_counter_ns
    t0 = clock()
    import pymerkle

    t1 = clock()
    index = first_proof_index(spec["size"])
    t2 = clock()
    tree = pymerkle.SqliteTree(spec["db"])
    t3 = clock()
    proof = tree.prove_inclusion(index + 1, tree.get_size())
    t4 = clock()
    pymerkle.verify_inclusion(tree.hash_buff(entry(index)), tree.get_root(), proof)
    tree.close()
    return {"import_ms": (t1 - t0) / 1e6, "open_ms": (t3 - t2) / 1e6, "proof_ms": (t4 - t3) / 1e6,
            "total_ms": (t4 - t2) / 1e6}


def merkletools_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Add each batch's leaf hashes, rebuild the tree and read its root, until done or out of budget."""
    with warnings.catch_warnings():
        # merkletools tries `import sha3` (pysha3) for SHA-3 only; sha256 does not need it.
        warnings.simplefilter("ignore")
        from merkletools import MerkleTools

    size, budget = spec["size"], spec["budget_s"]
    tree = MerkleTools(hash_type="sha256")
    sha256 = hashlib.sha256
    rss_before = max_rss_mib()
    clock = time.perf_counter_ns
    total_ns, measured = 0, 0
    for b, n in batches(size):
        entries = batch(b, n)
        t0 = clock()
        tree.add_leaf([sha256(e).hexdigest() for e in entries])
        tree.make_tree()
        root = tree.get_merkle_root()
        total_ns += clock() - t0
        measured += n
        if total_ns > budget * 1e9 and measured < size:
            break
    rss_after = max_rss_mib()
    assert root is not None and tree.get_leaf_count() == measured
    return {
        "entries": measured,
        "complete": measured == size,
        "seconds": total_ns / 1e9,
        "entries_per_s": measured / (total_ns / 1e9),
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_after,
        "rss_growth_mib": rss_after - rss_before,
        "root": root,
    }
