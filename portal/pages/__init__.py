"""Public pages: what a QR code opens (`routes`: copy pages, lookups, file checks, downloads), their
words in every language (`i18n`, `texts`), and the templates and static scripts (the in-browser check).

May import: `portal.keys`, `portal.body`, `portal.ratelimit`, `portal.caching`, `portal.pdfcheck`,
`ledger` and `verifier`; never `portal.app`, `portal.serving` or the other route packages.
"""
