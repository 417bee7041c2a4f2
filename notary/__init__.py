"""Notaries' network tools: a C2SP tlog-witness server, and the cross-check and document look-up of a
log the notary does not run (`verifier witness serve`, `verifier notary check|lookup`).

Every check is the pure `verifier` package's; this package only fetches, stores and serves. It may import
`verifier`, the standard library and `cryptography`; never `ledger` or `portal`, so a notary runs it
without the ledger.
"""
