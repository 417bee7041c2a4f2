"""Checks of a court-ready evidence bundle, offline (DESIGN.md §3 "Evidence bundle").

`archive` (a zip read in bounded time and memory, hostile archives refused), `manifest` (the bundle's
format: its file layout and `manifest.json`), `result` (the checklist and its verdict), `bundle` (every
check of a bundle: files, entries, proofs, checkpoints, anchors, openings, documents, seals, the
replayed lifecycle), `page` (the checks a copy page makes in the browser, on a saved `/v/<code>.json`)
and `command` (the `verifier verify` and `verifier page` commands).

Pure, like the rest of `verifier`: bytes, trusted keys and an explicit time in, a report out; only
`command` reads the files named on its command line.
"""
