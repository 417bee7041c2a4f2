"""Benchmarks for the evidence ledger.

`python -m bench log` measures the Merkle log against peer Merkle-tree libraries; every measured
system runs in its own subprocess (see `bench.worker`), so memory and fresh-process figures are honest.
"""
