"""Serving: `server` (`ledger serve`: one process, or N worker processes behind one writer, the anchoring
loop, shutdown) and `writerlink` (the socket over which workers hand events to the writer).

May import: `portal.app` and everything below it, `ledger` and `verifier`; only `portal.cli` imports it.
"""
