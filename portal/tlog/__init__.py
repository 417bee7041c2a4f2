"""The transparency log over HTTP: C2SP tlog-tiles endpoints, checkpoints with cosignatures, consistency
proofs and witness cosignatures (`routes`), and the local RFC 3161 TSA with anchoring status (`tsa`).

May import: `portal.keys`, `portal.body`, `portal.ratelimit`, `portal.caching`, `ledger` and `verifier`;
never `portal.app`, `portal.serving` or the other route packages.
"""
