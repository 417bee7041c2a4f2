"""The schema: log tables (append-only, enforced by triggers) and projections, on SQLite or PostgreSQL.

Log tables: entry_chunks, tiles, tile_edge (grow-only), checkpoints, anchors. Projections (envelopes,
parties, documents, copies) are rebuilt from the log by `ledger audit`; `tsa_status` is the anchoring
loop's view of each TSA's health. Private tables (openings, api_keys, tenants' references) hold what
must never enter the public log.

PostgreSQL gets the same tables (`SCHEMA` through `engine.ddl`), the same refusals as plpgsql triggers
(TRUNCATE refused too), and one table more: `log_head(size, root)`, the tree every writer extends, whose
row a write transaction locks first (`ledger.storage.log`); it may only grow.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from ledger.storage import engine
from ledger.storage.checkpointer import WAL_HARD_LIMIT, WAL_THRESHOLD

DB_NAME = "ledger.db"  # the database file in the ledger folder
APPEND_ONLY = ("entry_chunks", "tiles", "checkpoints", "checkpoint_records", "anchors", "cosignatures")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entry_chunks (start INTEGER PRIMARY KEY, count INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hashes BLOB NOT NULL, "inner" BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tile_edge (level INTEGER PRIMARY KEY, idx INTEGER NOT NULL, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, created TEXT NOT NULL);
-- The log key's signed record of each checkpoint's time and predecessor (ledger.storage.records).
CREATE TABLE IF NOT EXISTS checkpoint_records (size INTEGER PRIMARY KEY, note TEXT NOT NULL);
-- RFC 3161 anchors of checkpoints (DESIGN.md §5): `token` is the DER TimeStampToken, over SHA-256 of
-- the checkpoint body, or, for a renewal (`renews` = the id it renews), over SHA-256 of that anchor's token.
CREATE TABLE IF NOT EXISTS anchors (
    id INTEGER PRIMARY KEY, size INTEGER NOT NULL, tsa TEXT NOT NULL, gen_time TEXT NOT NULL,
    serial TEXT NOT NULL, token BLOB NOT NULL, created TEXT NOT NULL, renews INTEGER REFERENCES anchors (id),
    cert_expires TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS anchors_once ON anchors (tsa, size) WHERE renews IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS anchors_renewal ON anchors (renews, tsa) WHERE renews IS NOT NULL;
CREATE INDEX IF NOT EXISTS anchors_size ON anchors (size);
CREATE INDEX IF NOT EXISTS anchors_expiry ON anchors (cert_expires);
-- Witness (notary) cosignatures of checkpoints, c2sp.org/tlog-cosignature: `line` is the whole signature
-- line, verified against a configured witness key before it was stored.
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL, witness TEXT NOT NULL, time INTEGER NOT NULL, line TEXT NOT NULL,
    received TEXT NOT NULL, PRIMARY KEY (size, witness)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cosignatures_witness ON cosignatures (witness, size);
-- The health of each TSA as seen by the anchoring loop (a projection: rewritten, never evidence).
CREATE TABLE IF NOT EXISTS tsa_status (
    tsa TEXT PRIMARY KEY, last_success TEXT, last_error TEXT, last_error_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0, anchored_size INTEGER NOT NULL DEFAULT 0);

CREATE TABLE IF NOT EXISTS envelopes (
    env TEXT PRIMARY KEY, tenant TEXT NOT NULL, ref TEXT NOT NULL, status TEXT NOT NULL,
    seq INTEGER NOT NULL, last_leaf TEXT NOT NULL, first_index INTEGER NOT NULL, last_index INTEGER NOT NULL,
    created TEXT NOT NULL, updated TEXT NOT NULL, state TEXT NOT NULL,
    UNIQUE (tenant, ref));
CREATE TABLE IF NOT EXISTS envelope_entries (env TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (env, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS copies (
    code TEXT PRIMARY KEY, env TEXT NOT NULL, document INTEGER NOT NULL, copy INTEGER NOT NULL,
    idx INTEGER NOT NULL);
-- Keyed by envelope first: a batch of new envelopes fills a few pages instead of one page each.
-- (Ledgers made before keep `commitment` as the key; every query gives both.)
CREATE TABLE IF NOT EXISTS openings (
    env TEXT NOT NULL, commitment TEXT NOT NULL, salt TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (env, commitment)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs (
    env TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL, ordinal INTEGER NOT NULL,
    PRIMARY KEY (env, kind, ref)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copies_env ON copies (env);
CREATE INDEX IF NOT EXISTS envelope_entries_idx ON envelope_entries (idx);
CREATE TABLE IF NOT EXISTS documents (
    env TEXT NOT NULL, document INTEGER NOT NULL, sha256 TEXT NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (env, document)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents (sha256);
-- The versions made from each document, as the log registers them (a projection): a party's signed PDF
-- (party.signed), a scan of a paper copy (paper.scanned). `kind` says which; `party` or `copy` whose.
CREATE TABLE IF NOT EXISTS versions (
    idx INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, env TEXT NOT NULL, document INTEGER NOT NULL,
    kind TEXT NOT NULL, party INTEGER, copy INTEGER);
CREATE INDEX IF NOT EXISTS versions_sha256 ON versions (sha256);
CREATE TABLE IF NOT EXISTS access_codes (
    env TEXT NOT NULL, document INTEGER NOT NULL, code_sha256 TEXT NOT NULL,
    PRIMARY KEY (env, document)) WITHOUT ROWID;
-- The first answer to each request sent with an Idempotency-Key, per API key, for its retries (written in
-- the transaction of the events it acknowledges; kept `idempotency_hours`). A cache of answers, not evidence.
CREATE TABLE IF NOT EXISTS idempotency (
    key_id TEXT NOT NULL, idem_key TEXT NOT NULL, fingerprint TEXT NOT NULL, acks TEXT NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (key_id, idem_key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created);
-- Each tenant's registered seals (ledger.envelopes.seals), each row sealed by the log key; and the
-- seal.used entries by seal, a projection of the log that `ledger audit` rebuilds and compares.
CREATE TABLE IF NOT EXISTS seals (
    tenant TEXT NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, image_sha256 TEXT,
    parties TEXT NOT NULL, roles TEXT NOT NULL, created TEXT NOT NULL, retired TEXT, seal TEXT NOT NULL,
    certificate BLOB, PRIMARY KEY (tenant, fingerprint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seal_uses (
    idx INTEGER PRIMARY KEY, seal TEXT NOT NULL, env TEXT NOT NULL, party INTEGER NOT NULL, kind TEXT NOT NULL,
    time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS seal_uses_seal ON seal_uses (seal, idx);
-- The bytes each envelope may serve (print, download, export): the files its own tenant sent (uploads,
-- scans) or the ledger made for it (sealed versions), by the entry that registered them. Every SHA-256 in
-- the log is public, so a hash alone must never open a file another tenant stored.
CREATE TABLE IF NOT EXISTS holdings (
    env TEXT NOT NULL, sha256 TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (env, sha256)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, scopes TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '', created TEXT NOT NULL, revoked TEXT, seal TEXT);
"""


def _triggers() -> str:
    out = []
    for t in APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
                f"BEGIN SELECT RAISE(ABORT, 'log table {t} is append-only: {op} refused'); END;"
            )
    out.append(
        "CREATE TRIGGER IF NOT EXISTS tile_edge_grow_only BEFORE UPDATE ON tile_edge WHEN NOT ("
        " NEW.level = OLD.level AND ("
        "  (NEW.idx = OLD.idx AND length(NEW.hashes) >= length(OLD.hashes)"
        "   AND substr(NEW.hashes, 1, length(OLD.hashes)) = OLD.hashes)"
        "  OR (NEW.idx > OLD.idx AND EXISTS (SELECT 1 FROM tiles WHERE level = OLD.level AND idx = OLD.idx))))"
        " BEGIN SELECT RAISE(ABORT, 'log table tile_edge may only grow'); END;"
    )
    out.append(
        "CREATE TRIGGER IF NOT EXISTS tile_edge_no_delete BEFORE DELETE ON tile_edge "
        "BEGIN SELECT RAISE(ABORT, 'log table tile_edge is append-only: DELETE refused'); END;"
    )
    return "\n".join(out)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database: WAL, synchronous=FULL (an acknowledged entry survives power loss)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # Checkpoints run in the writer's thread of its own (ledger.storage.checkpointer); inside a commit
        # only past WAL_HARD_LIMIT, should that thread fall behind; and a WAL that SQLite starts again
        # from its beginning is cut back to WAL_THRESHOLD bytes. So the WAL stays bounded.
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_HARD_LIMIT // int(page_size)}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_THRESHOLD}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def create(conn: sqlite3.Connection) -> None:
    """Create the tables and triggers of a new ledger."""
    db = sqlite_utils.Database(conn)
    db.executescript(SCHEMA + _triggers())


def ensure(conn: sqlite3.Connection) -> set[str]:
    """Bring an existing database up to the current schema (every statement is IF NOT EXISTS, and columns
    added since are added); returns the columns and tables added now (`"api_keys.seal"`, `"versions"`,
    `"seal_uses"`),
    for the caller to fill.

    Plain sqlite3 on purpose: opening a ledger stays fast (sqlite-utils loads its plugins on first use).
    """
    had = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name IN ('versions', 'seal_uses', 'holdings')")}
    conn.executescript(SCHEMA + _triggers())
    added = {"versions", "seal_uses", "holdings"} - had
    if "seal" not in {row[1] for row in conn.execute("PRAGMA table_info(api_keys)")}:
        conn.execute("ALTER TABLE api_keys ADD COLUMN seal TEXT")
        added.add("api_keys.seal")
    return added


# ---- PostgreSQL ------------------------------------------------------------------------------------

def _one_row_that_grows(table: str, function: str, column: str, what: str) -> str:
    """The trigger of a table of one row (id 1) whose `column` may only grow: no lower value, no DELETE, no
    TRUNCATE."""
    return f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.{column} >= OLD.{column} THEN RETURN NEW; END IF;
    RAISE EXCEPTION '{what} {table} may only grow: % refused', TG_OP;
END $$;
CREATE OR REPLACE TRIGGER {table}_grows BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {function}();
CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {function}();
"""


PG_HEAD = """
CREATE TABLE IF NOT EXISTS log_head (id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, root BYTEA NOT NULL);
""" + _one_row_that_grows("log_head", "ledger_head_grows", "size", "log table")

# The local TSA's next serial number, one for every host (`ledger.anchoring.tsa_serial`): it may only grow,
# so no serial is issued twice.
PG_TSA_SERIAL = """
CREATE TABLE IF NOT EXISTS tsa_serial (id INTEGER PRIMARY KEY CHECK (id = 1), next BIGINT NOT NULL CHECK (next > 0));
""" + _one_row_that_grows("tsa_serial", "ledger_tsa_serial_grows", "next", "table")

# The documents' bytes (`ledger.documents._blobdb`): each document in chunks of 1 MiB, then its `blobs` row in
# the same transaction (a row there means the whole document is in). Append-only as the log tables are, by
# the function of `_pg_triggers` (so these come after them). The chunks are kept out of line, uncompressed:
# PDFs and scans are compressed already (set once: ALTER TABLE takes a lock no host's open should wait for).
PG_BLOBS = """
CREATE TABLE IF NOT EXISTS blob_chunks (
    sha256 TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (sha256, seq));
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT COLLATE "C" PRIMARY KEY, size BIGINT NOT NULL, chunks BIGINT NOT NULL);
DO $$ BEGIN
    IF (SELECT attstorage FROM pg_attribute WHERE attrelid = 'blob_chunks'::regclass AND attname = 'data') <> 'e' THEN
        ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
    END IF;
END $$;
CREATE OR REPLACE TRIGGER blob_chunks_no_change BEFORE UPDATE OR DELETE ON blob_chunks
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE OR REPLACE TRIGGER blob_chunks_no_truncate BEFORE TRUNCATE ON blob_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE OR REPLACE TRIGGER blobs_no_change BEFORE UPDATE OR DELETE ON blobs
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE OR REPLACE TRIGGER blobs_no_truncate BEFORE TRUNCATE ON blobs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
"""


def _pg_triggers() -> str:
    out = ["""CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'log table % is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$;
CREATE OR REPLACE FUNCTION ledger_tile_edge_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.level = OLD.level AND (
        (NEW.idx = OLD.idx AND length(NEW.hashes) >= length(OLD.hashes)
         AND substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) = OLD.hashes)
        OR (NEW.idx > OLD.idx AND EXISTS (SELECT 1 FROM tiles WHERE level = OLD.level AND idx = OLD.idx))) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'log table tile_edge may only grow'; END IF;
    RAISE EXCEPTION 'log table tile_edge is append-only: % refused', TG_OP;
END $$;"""]
    for t in APPEND_ONLY:
        out.append(f"CREATE OR REPLACE TRIGGER {t}_no_change BEFORE UPDATE OR DELETE ON {t} "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_append_only();")
        out.append(f"CREATE OR REPLACE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();")
    out.append("CREATE OR REPLACE TRIGGER tile_edge_grow_only BEFORE UPDATE OR DELETE ON tile_edge "
               "FOR EACH ROW EXECUTE FUNCTION ledger_tile_edge_grows();")
    out.append("CREATE OR REPLACE TRIGGER tile_edge_no_truncate BEFORE TRUNCATE ON tile_edge "
               "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();")
    return "\n".join(out)


def pg_schema() -> str:
    """The whole PostgreSQL schema: SQLite's tables translated, the head row, the triggers."""
    return engine.ddl(SCHEMA) + PG_HEAD + _pg_triggers() + PG_TSA_SERIAL + PG_BLOBS


# Every host runs `ensure` when it opens the ledger: one at a time (DDL of two sessions at once may fail).
_SCHEMA_LOCK = 0x6C6564676572  # "ledger": the advisory lock key


def connect_pg(url: str, *, password: str | None = None, readonly: bool = False,
               role: str = "ledger") -> engine.PgConnection:
    """A session on the ledger's PostgreSQL database (see `engine.PgConnection`)."""
    return engine.PgConnection(url, password=password, readonly=readonly, role=role)


def pg_is_ledger(conn: engine.PgConnection) -> bool:
    """Does this PostgreSQL database hold a ledger already (its head row, or a checkpoint: a ledger whose head
    row was deleted is a damaged ledger, which `ledger audit` names, not an empty database to init again)?"""
    head, checkpoints = conn.execute("SELECT to_regclass('log_head')::text, to_regclass('checkpoints')::text").fetchone()
    return ((head is not None and conn.execute("SELECT 1 FROM log_head").fetchone() is not None)
            or (checkpoints is not None and conn.execute("SELECT 1 FROM checkpoints LIMIT 1").fetchone() is not None))


def ensure_pg(conn: engine.PgConnection) -> set[str]:
    """Create or bring up to date the PostgreSQL schema, in one transaction under an advisory lock (so
    hosts opening the ledger at once take turns). Nothing to fill: PostgreSQL ledgers began with it all."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        conn.executescript(pg_schema())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return set()
