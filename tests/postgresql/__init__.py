"""Tests of what only PostgreSQL does (the shared suites run on both engines: the `engine` fixture)."""
