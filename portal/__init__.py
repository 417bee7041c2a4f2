"""The public verification portal and the JSON API (aiohttp + jinja2), served by `ledger serve`.

From the bottom up (each imports only the ones before it, and `ledger` and `verifier`):
- `keys` (typed application keys), `body` (bounded request bodies), `ratelimit` (token buckets),
  `caching` (page and value caches), `pdfcheck` (the PDF checker process);
- `pages/` (public pages a QR code opens, their texts and scripts), `api/` (the JSON API and its
  OpenAPI document), `tlog/` (C2SP log endpoints, witness cosignatures and the local TSA over HTTP);
- `app` (the application: routes, middlewares, security headers);
- `serving/` (the server, its worker processes and their link to the writer);
- `cli` (the `ledger` entry point: the ledger's commands plus `serve`).

May import: `ledger` and `verifier`; nothing imports `portal`.
"""
