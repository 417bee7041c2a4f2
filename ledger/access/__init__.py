"""Access: the API keys of tenants (`apikeys`: created once, stored as SHA-256, scoped, revocable).

May import: `ledger.errors`, `ledger.clock`, `ledger.config`, `ledger.storage` and `verifier`.
"""
