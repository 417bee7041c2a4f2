"""The JSON API `/api/v1` for signing platforms (`routes`: envelopes, events, uploads, copies; API keys
and tenants checked on every call) and its OpenAPI document (`openapi`).

May import: `portal.keys`, `portal.body`, `portal.ratelimit`, `portal.caching`, `portal.pdfcheck`,
`ledger` and `verifier`; never `portal.app`, `portal.serving` or the other route packages.
"""
