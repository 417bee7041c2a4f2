"""Court-ready evidence: the export bundle of one envelope, its VERIFY.md and its sealed report.

`bundle` (`ledger export` and the API's export: record the export, choose and anchor the proof
checkpoint, self-check with the offline verifier, report, seal, stream the zip), `collect` (the evidence
files from the ledger: entries, proofs, checkpoints, anchors, openings, certificates, documents),
`facts` (what the report states), `verifymd` (the steps to check a bundle by hand, with its file
names), `report` and `reporttext` (the PDF report and its words, in English and Chinese).

May import: ledger.envelopes, ledger.documents, ledger.storage, ledger.anchoring, ledger.audit, the
shared errors, clock and config, and verifier (whose `verifier.evidence` defines the bundle's format);
only `ledger.cli` and the portal import it.
"""
