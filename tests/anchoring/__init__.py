"""Tests of anchoring."""
