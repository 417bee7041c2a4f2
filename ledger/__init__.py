"""The stateful ledger: storage, sequencing, checkpoints, envelopes, documents, audit and the CLI."""
