"""The stateful ledger: storage, sequencing, checkpoints, envelopes, documents, anchoring, audit and the CLI.

Sub-packages, from the bottom up (each imports only the ones before it, and `verifier`):
- `errors`, `clock`, `config`: what every layer shares (refusal types, the clock, `config.toml`);
- `storage/`: the RFC 9162 log on SQLite tiles, its schema, the single-writer sequencer, checkpoints,
  the log's signing key and the lock of a serving folder;
- `access/`: API keys and tenants;
- `anchoring/`: RFC 3161 time-stamps of checkpoints (the local TSA, TSA clients, the anchoring loop) and
  notaries' cosignatures;
- `documents/`: the blob store of uploaded originals, the printed copies' QR codes, and what is done to
  the documents themselves (print-ready copies, watermarks, the platform's seal);
- `envelopes/`: the `Ledger` that orchestrates them (events in, lifecycle, entries, proofs), the copy
  views the portal shows, bulk import and demo data;
- `audit`, `cli`: the full recomputation of a ledger, and the `ledger` command.

May import: `verifier` and third-party libraries; never `portal`.
"""
