"""Access: the API keys of tenants (`apikeys`: created once, stored as SHA-256, scoped, revocable), and
the notes by the log key that seal such rows kept beside the log (`rownotes`).

May import: `ledger.errors`, `ledger.clock`, `ledger.config`, `ledger.storage` and `verifier`.
"""
