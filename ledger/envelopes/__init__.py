"""Envelopes: the contract domain, and the `Ledger` that orchestrates the layers below.

`core` (the `Ledger`: events in, lifecycle checks, salted commitments, entries, proofs, envelope heads),
`events` (parsing and validating input events), `public` (what a QR holder may see of a copy),
`queries` (what a platform reads back through the API), `printing` (print-ready and downloaded copies),
`sealing` (the platform's e-seal on a document), `bulk` (JSON Lines import) and `demo` (demo envelopes
in every state).

May import: every lower package of the ledger (`storage`, `documents`, `access`, `anchoring`, and the
shared `errors`, `clock`, `config`) and `verifier`; never `ledger.audit`, `ledger.cli` or `portal`.
"""
