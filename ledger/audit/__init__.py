"""`ledger audit`: recompute and re-verify every row the ledger shows or trusts.

`run` (the audit of a whole ledger, and of one opened from its folder), `log` (entries, tiles, the tile
edge, checkpoints and their signed records, checkpoints held outside), `envelopes` (the lifecycle
replayed, projections, openings against their commitments, tenants and references against the log,
stored originals), `evidence` (RFC 3161 anchors and witness cosignatures re-verified), `report` (the
report: counts and one line per problem, naming the table and row).

May import: every other package of the ledger and `verifier`; only `ledger.cli` imports it.
"""
