"""Checks of documents, offline: the signatures and seals of a PDF (`pdfsig`).

Pure, like the rest of `verifier`: bytes, trusted roots and an explicit time in, a report out.
"""
