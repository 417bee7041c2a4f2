"""Serving: `server` (`ledger serve`: one process, or N worker processes behind one writer, the anchoring
loop, shutdown), `writerlink` (the socket over which workers hand events to the writer) and `connections`
(the port's connections: deadlines for slow clients, a cap, aiohttp's own answers stamped).

May import: `portal.app` and everything below it, `ledger` and `verifier`; only `portal.cli` imports it.
"""
