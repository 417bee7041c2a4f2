"""Storage: the append-only log and everything that makes it durable.

`log` (TileLog: entries, tiles, checkpoints in SQLite or PostgreSQL), `engine` (the connection API both
engines give, PostgreSQL's through psycopg, and the one translation of the SQL dialect), `migrate`
(a SQLite ledger copied to PostgreSQL), `schema` (tables and their append-only triggers, on either
engine), `sequencer` (the one writer that batches work into transactions), `checkpointer` (WAL
checkpoints), `signer` (the log's Ed25519 key), `homelock` (one server per ledger folder), `records`
(signed checkpoint records), `replica` (a PostgreSQL streaming replica to read from, and its lag), `files`
(small files written durably) and the optional C hashing extension `_hashing.c`.

May import: `ledger.errors`, `ledger.clock`, `ledger.config` and `verifier`; nothing else of the ledger.
"""
