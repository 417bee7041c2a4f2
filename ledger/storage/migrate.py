"""Move a ledger from its SQLite file to PostgreSQL (`ledger migrate --to URL`), byte for byte.

Every table is copied as it is (entries, tiles, checkpoints and their records, anchors, cosignatures,
projections, private tables), in one PostgreSQL transaction, from one read snapshot of the SQLite file;
`log_head` is set to the latest checkpoint's tree. Then the copy is read back as a reader would: its
tree must have the same size and root as the SQLite file's, else nothing is kept (the transaction is
rolled back). The caller (`ledger.cli`) then runs the whole audit on the copy before the ledger's
config.toml names it.

What it does not do: copy into a database that holds a ledger already, change the SQLite file, or move
the documents' bytes (`blobs/` stays in the ledger folder).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import IntegrityError, RefusedError
from ledger.storage import schema
from ledger.storage.engine import PgConnection, check_url, redact
from ledger.storage.log import load_tree


@dataclass(frozen=True)
class Migrated:
    size: int
    root: bytes
    rows: dict[str, int]  # table -> rows copied


def _tables(src: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    names = [n for (n,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                       "'sqlite_%' ORDER BY name")]
    return [(n, [row[1] for row in src.execute(f'PRAGMA table_info("{n}")')]) for n in names]


def copy_to_postgresql(db: Path, url: str, password: str | None = None) -> Migrated:
    """Copy the SQLite ledger `db` into the empty PostgreSQL database `url`; its size, root and row counts.

    Raises:
        RefusedError: the target holds a ledger already, or has a table the ledger does not know.
        IntegrityError: the copy does not read back as the same tree (nothing is kept).
        sqlite3.Error: either database failed (nothing is kept).
    """
    check_url(url)
    src = schema.connect(db, readonly=True)
    dst = schema.connect_pg(url, password=password, role="migrate")
    try:
        if schema.pg_is_ledger(dst):
            raise RefusedError(f"the database {redact(url)} already holds a ledger; migrate into an empty database",
                               code="exists")
        schema.ensure_pg(dst)
        known = {n for (n,) in dst.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        src.execute("BEGIN")  # one snapshot of the SQLite file, whatever another process writes meanwhile
        dst.execute("BEGIN")
        try:
            rows: dict[str, int] = {}
            for table, columns in _tables(src):
                if table not in known:
                    raise RefusedError(f"table {table} of {db} is not in the ledger's schema; nothing was copied",
                                       code="unknown_table")
                cols = ", ".join(f'"{c}"' for c in columns)
                n = 0
                with dst.raw.cursor().copy(f"COPY {table} ({cols}) FROM STDIN".encode()) as copy:
                    for row in src.execute(f"SELECT {cols} FROM {table}"):
                        copy.write_row(row)
                        n += 1
                rows[table] = n
            last = src.execute("SELECT size, root FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
            if last is None:
                raise IntegrityError(f"{db} has no checkpoint: it is not a ledger (run `ledger audit`)")
            size, root = int(last[0]), bytes(last[1])
            dst.execute("INSERT INTO log_head(id, size, root) VALUES (1, ?, ?)", (size, root))
            _check_tree(dst, size, root)
            dst.execute("COMMIT")
        except BaseException:
            dst.execute("ROLLBACK")
            raise
        finally:
            src.execute("COMMIT")
        return Migrated(size, root, rows)
    finally:
        src.close()
        dst.close()


def _check_tree(dst: PgConnection, size: int, root: bytes) -> None:
    """Inside the copy's transaction: its edge tiles give the tree of the latest checkpoint."""
    tree = load_tree(dst)
    if (tree.size, tree.root()) != (size, root):
        raise IntegrityError(f"the copy holds a tree of size {tree.size} that is not the latest checkpoint's (size "
                             f"{size}); nothing was kept (run `ledger audit` on the SQLite ledger)", code="damaged")
