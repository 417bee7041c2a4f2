"""Tests of documents: stamping, watermarks, seals, signature checks."""
