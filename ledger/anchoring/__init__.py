"""Anchoring: outside evidence of when a checkpoint existed and that others saw it.

`anchor` (the loop that time-stamps each new checkpoint with every TSA, renewals, anchored proofs),
`tsa` (the embedded local RFC 3161 TSA), `tsa_client` (local and HTTP TSA clients that check every
token), `witness` (notaries' cosignatures of checkpoints), `push` (each new checkpoint sent to the
witnesses that run a C2SP tlog-witness), and `context` (the protocol these modules
need of the ledger, so they never import it).

May import: `ledger.errors`, `ledger.clock`, `ledger.config`, `ledger.storage`, `ledger.access` and
`verifier`; never `ledger.documents` or `ledger.envelopes`, which use this package.
"""
