"""Documents: the bytes of uploaded originals (`blobs`, a content-addressed store), the printed copies'
codes and QR addresses (`qr`), and what is done to the documents themselves: print-ready copies with
their QR code, watermarks and the VOID mark as incremental updates (`stamp`, drawn by `marks`), the
platform's PAdES seal (`seal`), its appearance (`sealstamp`) and its local CA (`sealca`).

May import: `ledger.errors`, `ledger.clock`, `ledger.config`, `ledger.storage`, `ledger.access`,
`ledger.anchoring` (a seal's time-stamp) and `verifier`.
"""
