"""Tests of envelopes."""
