"""Documents: the bytes of uploaded originals (`blobs`, a content-addressed store) and the printed
copies' codes and QR addresses (`qr`).

May import: `ledger.errors`, `ledger.clock`, `ledger.config`, `ledger.storage` and `verifier`.
"""
