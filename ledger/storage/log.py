"""The Merkle log on SQLite or PostgreSQL, stored as C2SP tlog-tiles.

Tables (all log tables refuse UPDATE and DELETE by trigger, see `ledger.storage.schema`):
- `entry_chunks(start, count, data)`: the exact leaf bytes in C2SP entry-bundle encoding (uint16
  length prefixes), one row per commit and bundle: a chunk never crosses a bundle boundary, so a
  bundle is the concatenation of its chunks and a partial bundle is a prefix of them.
- `tiles(level, idx, hashes, inner)`: full tiles, 256 hashes each, plus the 254 interior nodes of the
  tile's subtree of height 8 (`inner`: its levels 1 to 7, lowest first), so a proof looks nodes up
  instead of rehashing them. The log computes every one of them while integrating anyway.
- `tile_edge(level, idx, hashes)`: the right-edge (partial) tile of each level; it may only grow, or
  move on to the next index once the full tile is stored. Any partial tile `.p/W` of a published
  checkpoint is a prefix of it.
- `checkpoints(size, root, note, created)`: every signed checkpoint.

Vocabulary: `stage` *sequences* entries (gives them indexes) and *integrates* them into the working
tree; `commit` writes a signed checkpoint with them in the same transaction (*published*), and only
then is anything acknowledged. Memory stays flat: the writer keeps only the compact range and the
edge tiles; opening reads the edge and the last checkpoint, nothing O(n). Another process may write
the same database (`ledger append` while `ledger serve` runs): each transaction, once it holds
SQLite's write lock, compares the latest checkpoint with the one in memory and reloads on a change.

On PostgreSQL (`database` is a postgresql:// URL; `ledger.storage.engine`) any number of hosts may
write: a write transaction first locks the row of `log_head(size, root)` (`SELECT ... FOR UPDATE`), the
tree every writer extends, so writers take turns a whole batch at a time; it catches up as above, checks
that the head is the tree it holds, and at commit moves the head on only from that tree (an UPDATE that
names the old size and root: a writer that would fork the tree changes no row and fails, before COMMIT).
A host killed mid-batch leaves an open transaction the server rolls back; nothing is acknowledged
before COMMIT returns, and COMMIT is durable (`synchronous_commit = on`).

Reading one checkpoint: `reading()` pins, for one request on one thread, the connection its reads go to
and the checkpoint they are bounded by (`size`, `latest_checkpoint`, `entry`, proofs and tiles all follow
it there). With a streaming replica (`read_from`, `ledger.storage.replica`) that is fit to read, that is
the replica's latest checkpoint, read in the REPEATABLE READ transaction the request's reads then share;
else this process's own tree on the primary, as every other read (`_reader()` outside `reading()`) is.

Readers' sessions: on SQLite, each thread has its own read-only connection. On PostgreSQL the threads share
a pool (`engine.ReadPool`, at most `pool_size` sessions; the replica has one of its own): a read borrows
a session for one statement, and `reading()` for the request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.clock import Clock, utc_now
from ledger.errors import IntegrityError, NotFoundError, RefusedError, StorageError
from ledger.storage import schema
from ledger.storage.checkpointer import Checkpointer
from ledger.storage.engine import Connection, PgConnection, ReadPool, check_url, is_postgresql, redact
from ledger.storage.records import CheckpointRecord
from ledger.storage.replica import Replica
from ledger.storage.signer import LogSigner
from verifier.checkpoint import Checkpoint, parse_checkpoint
from verifier.merkle import (
    EMPTY_ROOT,
    complete_subtrees,
    consistency_ranges,
    fold_right,
    inclusion_ranges,
    root_of_hashes,
)
from verifier.note import verify_note

TILE_WIDTH = 256
TILE_CACHE = 8192  # tiles kept by readers (about 130 MiB at most)
NODE_CACHE = 65536  # complete-subtree hashes of 16 leaves or more (about 8 MiB at most)
DEFAULT_POOL_SIZE = 10  # PostgreSQL: the readers' sessions per process (config.toml's database_pool)
MAX_ENTRY_SIZE = 0xFFFF  # entry bundles prefix each entry with a big-endian uint16 length
_sha256 = hashlib.sha256
logger = logging.getLogger("ledger.storage.log")


@dataclass(frozen=True)
class AppendResult:
    first_index: int
    size: int
    root: bytes
    checkpoint: str


@dataclass
class _Tree:
    """The writer's working state: the compact range and the edge of every tile level."""

    size: int
    stack: list[bytes]
    edges: list[list[bytes]]
    inner: list[list[list[bytes]]]  # per tile level: the interior nodes so far, by height 1..7 (index 0 unused)

    def copy(self) -> _Tree:
        return _Tree(self.size, list(self.stack), [list(e) for e in self.edges],
                     [[list(h) for h in t] for t in self.inner])

    def root(self) -> bytes:
        return fold_right(self.stack)


def _chunks(first: int, entries: list[bytes]) -> list[tuple[int, int, bytes]]:
    """Cut staged entries into bundle-aligned chunks in entry-bundle encoding."""
    out = []
    pos, end = 0, len(entries)
    while pos < end:
        start = first + pos
        n = min(end - pos, TILE_WIDTH - start % TILE_WIDTH)
        part = entries[pos : pos + n]
        out.append((start, n, _bundle(part)))
        pos += n
    return out


def iter_bundle(data: bytes) -> list[bytes]:
    """Split entry-bundle bytes (uint16 big-endian length prefixes) into entries."""
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 2], "big")
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    if pos != len(data):
        raise IntegrityError("an entry chunk is truncated")
    return out


def _connect_pg(database: str, password: str | None, *, readonly: bool = False,
                role: str = "writer") -> PgConnection:
    check_url(database)
    if not is_postgresql(database):
        raise StorageError(f"database {database!r} is not a postgresql:// URL", code="bad_config")
    try:
        return schema.connect_pg(database, password=password, readonly=readonly, role=role)
    except sqlite3.Error as e:
        raise StorageError(f"cannot connect to the database {redact(database)}: {e}", code="database_unavailable") from e


def _pg_ledger(database: str, password: str | None, *, holds: bool, readonly: bool = False, role: str = "writer",
               hint: str = "", status: int = 400) -> PgConnection:
    """A session on the PostgreSQL database `database`, which holds a ledger (`holds`) or holds none (to make
    one in it; else refused with `hint` and `status`); the session closed if it does not."""
    conn = _connect_pg(database, password, readonly=readonly, role=role)
    try:
        if schema.pg_is_ledger(conn) != holds:
            if holds:
                raise NotFoundError(f"no ledger in the database {redact(database)}; run `ledger init "
                                    "--database URL` first", code="no_ledger")
            raise RefusedError(f"the database {redact(database)} already holds a ledger; refusing to overwrite "
                               f"a log{hint}", code="exists", status=status)
    except BaseException:
        conn.close()
        raise
    return conn


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _check_sizes(entries: Sequence[bytes]) -> None:
    for i, e in enumerate(entries):
        if len(e) > MAX_ENTRY_SIZE:
            raise RefusedError(f"entry {i} is {len(e)} bytes; an entry holds at most {MAX_ENTRY_SIZE}",
                               code="entry_too_large", status=413)


def _empty_inner() -> list[list[bytes]]:
    return [[] for _ in range(8)]


def _inner_of(edge: list[bytes]) -> list[list[bytes]]:
    """The complete interior nodes over an edge tile's hashes, by height 1..7."""
    out = _empty_inner()
    level = edge
    for r in range(1, 8):
        level = [_sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        out[r] = level
    return out


def _inner_offset(r: int, pos: int) -> int:
    """Byte offset of the node at height r (1..7), position pos, in a full tile's `inner` blob."""
    return 32 * (256 - (512 >> r) + pos)


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _leaf_hashes_py(entries: Sequence[bytes]) -> list[bytes]:
    sha = _sha256
    return [sha(b"\x00" + e).digest() for e in entries]


def _pair_hashes_py(nodes: Sequence[bytes]) -> list[bytes]:
    sha = _sha256
    return [sha(b"\x01" + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes) - 1, 2)]


def _bundle_py(entries: Sequence[bytes]) -> bytes:
    return b"".join([len(e).to_bytes(2, "big") + e for e in entries])


try:  # the same functions in C (ledger/_hashing.c), when the extension was built
    from ledger.storage._hashing import bundle as _bundle
    from ledger.storage._hashing import leaf_hashes as _leaf_hashes
    from ledger.storage._hashing import pair_hashes as _pair_hashes
except ImportError:  # pragma: no cover - exercised where the extension is missing
    _leaf_hashes, _pair_hashes, _bundle = _leaf_hashes_py, _pair_hashes_py, _bundle_py


def integrate(t: _Tree, entries: Sequence[bytes], full: list[tuple[int, int, bytes, bytes]]) -> list[bytes]:
    """Fold entries into the tree: update the compact range and edges, append completed tiles to `full`.

    Level by level, like a binary counter: the new nodes of a level, after the one left node that
    waited there (a set bit of the old size), are hashed in pairs into the next level's new nodes;
    an odd last node waits. So each level costs one call of `_pair_hashes` whatever the batch size.
    Nodes at heights 1 to 7 within a tile are kept as the tile's `inner` hashes; a tile is cut when
    its 256 hashes (and so all its inner nodes) exist.
    """
    leaves: list[bytes] = _leaf_hashes(entries)
    size0 = t.size
    size1 = size0 + len(leaves)
    waiting = {h: node for h, node in zip(
        [h for h in range(size0.bit_length() - 1, -1, -1) if size0 >> h & 1], t.stack, strict=True)}
    new: list[bytes] = leaves
    h = 0
    while new:
        tl, r = h >> 3, h & 7
        if r == 0:
            if tl == len(t.edges):
                t.edges.append([])
                t.inner.append(_empty_inner())
            t.edges[tl].extend(new)
        else:
            t.inner[tl][r].extend(new)
        left = waiting.pop(h, None)
        seq = [left, *new] if left is not None else new
        if len(seq) & 1:
            waiting[h] = seq[-1]
        new = _pair_hashes(seq)
        h += 1
    t.stack = [waiting[h] for h in sorted(waiting, reverse=True)]
    t.size = size1
    for tl, edge in enumerate(t.edges):
        while len(edge) >= TILE_WIDTH:
            index = ((size1 >> (8 * tl)) - len(edge)) // TILE_WIDTH
            inner = t.inner[tl]
            full.append((tl, index, b"".join(edge[:TILE_WIDTH]),
                         b"".join([b"".join(inner[r][: TILE_WIDTH >> r]) for r in range(1, 8)])))
            del edge[:TILE_WIDTH]
            for r in range(1, 8):
                del inner[r][: TILE_WIDTH >> r]
    return leaves


class _ThreadToken:
    """Held in a thread's local storage only: collected when the thread ends (see `TileLog._track`)."""


def _close_reader(readers: dict[int, Connection], lock: threading.Lock, key: int) -> None:
    with lock:
        conn = readers.pop(key, None)
    if conn is not None:
        conn.close()


def latest_checkpoint(conn: Connection) -> tuple[int, bytes, str] | None:
    """The latest checkpoint the database holds, as `conn` sees it: (size, root, note); None before the first."""
    row = conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))


def _rollback(conn: Connection) -> None:
    """End a read transaction (nothing to keep); a session that is gone has ended it already."""
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def load_tree(conn: Connection) -> _Tree:
    """The tree the edge tiles hold: its size and compact range (the interior nodes are left to the writer)."""
    rows = conn.execute("SELECT level, idx, hashes FROM tile_edge ORDER BY level").fetchall()
    edges = [_split(bytes(h)) for _, _, h in rows]
    size = rows[0][1] * TILE_WIDTH + len(edges[0]) if rows else 0
    stack: list[bytes] = []
    for level in range(len(edges) - 1, -1, -1):
        hashes, pos = edges[level], 0
        for b in range(7, -1, -1):
            if len(hashes) >> b & 1:
                stack.append(root_of_hashes(hashes[pos : pos + (1 << b)]))
                pos += 1 << b
    if not edges:
        return _Tree(0, [], [[]], [_empty_inner()])
    # the interior nodes of the edge tiles are only needed by the writer: built at the first begin()
    return _Tree(size, stack, edges, [])


class TileLog:
    """One database holding the log. One writer per process (the caller serialises its writes; writers of
    other processes take turns through SQLite's write lock, or PostgreSQL's lock of the head row, see
    `begin`); many readers.

    `path` is the SQLite file; on PostgreSQL (`database`, a URL) the files beside it are still this
    host's own (`ledger.checkpoint`).
    """

    def __init__(self, path: Path, signer: LogSigner | None, conn: Connection, clock: Clock, *,
                 database: str = "", password: str | None = None) -> None:
        self.path = path
        self._signer = signer
        self.conn = conn
        self.clock = clock
        self.database, self._password = database, password
        self.postgresql = bool(database)
        self._head: tuple[int, bytes] | None = None  # PostgreSQL: the head row this write transaction locked
        self.checkpoint_file = path.with_suffix(".checkpoint")
        self._local = threading.local()
        # every thread's readers, to close them all with the log (or when their thread ends, as before): on
        # PostgreSQL each is a server session, which must not outlive the log
        self._readers: dict[int, Connection] = {}
        self._readers_lock = threading.Lock()
        self._pool: ReadPool | None = None  # PostgreSQL: the readers' sessions, made at the first read
        self._pool_size = DEFAULT_POOL_SIZE
        self._tile_cache: OrderedDict[tuple[int, int], tuple[bytes, bytes | None]] = OrderedDict()
        self._node_cache: dict[tuple[int, int], bytes] = {}
        self._cache_lock = threading.Lock()
        # a reader keeps no tree state: it only serves what checkpoints publish. The tree and the latest
        # checkpoint are read in one read transaction: another process may commit between two reads.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if self.postgresql else "BEGIN")  # one snapshot
        try:
            self._tree = self._load_tree() if signer is not None else _Tree(0, [], [[]], [_empty_inner()])
            self._published: tuple[int, bytes, str] = self._load_latest()
        finally:
            conn.execute("COMMIT")
        self._work: _Tree | None = None
        self._cp_fd: int | None = None
        self.transactions = 0
        self._checkpointer = Checkpointer(path) if signer is not None and not self.postgresql else None
        self._staged: list[bytes] = []
        self._deferred: list[bytes] = []  # sequenced in the open transaction, integrated at commit
        self._hooks: list[Callable[[Connection], None]] = []
        self._full_tiles: list[tuple[int, int, bytes, bytes]] = []
        self.on_publish: Callable[[int], None] | None = None  # told each new size, after its COMMIT
        self.added_columns: set[str] = set()  # columns this open added to an older database
        self.origin = signer.name if signer else self._published[2].split("\n", 1)[0]
        self.replica: Replica | None = None  # where `reading()` reads, when it is fit to (`read_from`)

    @property
    def signer(self) -> LogSigner:
        if self._signer is None:
            raise StorageError("this log was opened for reading only")
        return self._signer

    # ---- opening -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, signer: LogSigner, clock: Clock = utc_now, *, database: str = "",
               password: str | None = None) -> TileLog:
        """A new, empty log: in the SQLite file `path`, or in the PostgreSQL database `database` (a URL)."""
        conn: Connection
        if database:
            conn = pg = _pg_ledger(database, password, holds=False)
            try:
                schema.ensure_pg(pg)
                pg.execute("INSERT INTO log_head(id, size, root) VALUES (1, 0, ?) ON CONFLICT DO NOTHING",
                           (EMPTY_ROOT,))
            except BaseException:
                pg.close()
                raise
        else:
            if path.exists():
                raise RefusedError(f"{path} already exists; refusing to overwrite a log", code="exists")
            conn = lite = schema.connect(path)
            schema.create(lite)
        log = cls(path, signer, conn, clock, database=database, password=password)
        log.begin()
        log.commit()  # the empty tree's checkpoint, so a log always has one
        return log

    @classmethod
    def open(cls, path: Path, signer: LogSigner, clock: Clock = utc_now, *, database: str = "",
             password: str | None = None) -> TileLog:
        conn: Connection
        if database:
            conn = pg = _pg_ledger(database, password, holds=True)
            try:
                added = schema.ensure_pg(pg)
            except BaseException:
                pg.close()
                raise
        else:
            if not path.exists():
                raise NotFoundError(f"no ledger database at {path}; run `ledger init` first", code="no_ledger")
            conn = lite = schema.connect(path)
            added = schema.ensure(lite)
        # the file before the database: it is written after each COMMIT, so read in this order an
        # honest database is never behind it, even while another process writes
        outside = _read_text(path.with_suffix(".checkpoint"))
        log = cls(path, signer, conn, clock, database=database, password=password)
        log.added_columns = added  # filled in by the layer that owns them (ledger.access.apikeys: seals)
        try:
            log._check_against_outside_checkpoint(outside)
            log._check_newest_tile()
        except BaseException:
            log.close()
            raise
        return log

    @classmethod
    def open_reader(cls, path: Path, *, database: str = "", password: str | None = None) -> TileLog:
        """Open for reading only (a portal process or replica): no key, no writes, no schema changes.

        It serves what the writer has published; `refresh()` picks up newer checkpoints.
        """
        if database:
            conn = _pg_ledger(database, password, holds=True, readonly=True, role="reader")
            return cls(path, None, conn, utc_now, database=database, password=password)
        if not path.exists():
            raise NotFoundError(f"no ledger database at {path}; run `ledger init` first", code="no_ledger")
        return cls(path, None, schema.connect(path, readonly=True), utc_now)

    @staticmethod
    def check_new(database: str, password: str | None) -> None:
        """Refuse, before anything is written, a PostgreSQL database that cannot be reached or holds a ledger."""
        _pg_ledger(database, password, holds=False, role="init",
                   hint=" (init a new ledger in an empty database)", status=409).close()

    def newest_size(self, conn: Connection | None = None) -> int | None:
        """The largest tree size among the database's checkpoints, another process's included (None
        before the first); read through `conn`, or this thread's reader."""
        (size,) = (conn or self._reader()).execute("SELECT max(size) FROM checkpoints").fetchone()
        return None if size is None else int(size)

    def refresh(self) -> None:
        """Reader side: move to the latest published checkpoint (cheap; no tree state is rebuilt)."""
        latest = latest_checkpoint(self._reader())
        if latest is not None and latest[0] > self._published[0]:
            self._published = latest

    def _load_tree(self) -> _Tree:
        return load_tree(self.conn)

    def _load_latest(self) -> tuple[int, bytes, str]:
        latest = latest_checkpoint(self.conn)
        if latest is None:
            return (0, self._tree.root(), "")
        size, root, _ = latest
        if self._signer is None:
            return latest
        if size != self._tree.size or root != self._tree.root():
            raise IntegrityError(
                f"the tiles hold a tree of size {self._tree.size} but the last checkpoint is for size {size}; "
                "the database is damaged (run `ledger audit`)"
            )
        return latest

    def _check_newest_tile(self) -> None:
        """Before a writer signs anything over this tree: the entries of the newest tile still hash to the
        leaf hashes stored for them (the root was compared with the last checkpoint when the tree was
        loaded). Cheap, not an audit: it reads one bundle of at most 256 entries."""
        size = self._tree.size
        if size == 0:
            return
        n = (size - 1) // TILE_WIDTH
        raws: list[bytes] = []
        for _start, data in self.conn.execute("SELECT start, data FROM entry_chunks WHERE start >= ? AND start < ?"
                                              " ORDER BY start", (n * TILE_WIDTH, size)):
            try:
                raws += iter_bundle(bytes(data))
            except IntegrityError:
                break
        # another process may have appended since the tree was loaded: the edge only grows, so its first
        # hashes are still those of this tree
        stored = _split(self.stored_leaf_hashes(n))[: size - n * TILE_WIDTH]
        if len(raws) != size - n * TILE_WIDTH or len(stored) != len(raws):
            raise IntegrityError(
                f"the newest tile 0/{n} holds {len(stored)} leaf hashes and its bundle {len(raws)} entries, but the "
                f"tree has {size - n * TILE_WIDTH} entries there; the database is damaged: refusing to sign over it "
                "(run `ledger audit`)", code="damaged")
        for k, (leaf, want) in enumerate(zip(_leaf_hashes(raws), stored, strict=True)):
            if leaf != want:
                raise IntegrityError(
                    f"entry {n * TILE_WIDTH + k} no longer hashes to its leaf hash in tile 0/{n}: the entry or the "
                    "tile was changed; refusing to sign over it (run `ledger audit`)", code="damaged")

    def stored_leaf_hashes(self, n: int) -> bytes:
        """The leaf hashes stored for entry bundle `n`: its full tile, or the edge tile while it is partial.
        One statement, so one moment: read in two, another host could fill the tile between them (the first
        finds no full tile, the second an edge that has moved on)."""
        row = self.conn.execute("SELECT hashes, 0 FROM tiles WHERE level = 0 AND idx = ? UNION ALL "
                                "SELECT hashes, 1 FROM tile_edge WHERE level = 0 AND idx = ? ORDER BY 2 LIMIT 1",
                                (n, n)).fetchone()
        return bytes(row[0]) if row else b""

    def _check_against_outside_checkpoint(self, text: str | None) -> None:
        if text is None:
            return
        if text == self._published[2]:
            return  # the usual case: the file holds exactly the latest checkpoint in the database
        try:
            signed = parse_checkpoint(text)
            verify_note(signed.note, [self.signer.verifier])
        except Exception:
            return  # a torn or foreign file proves nothing either way; it is rewritten on the next commit
        cp = signed.checkpoint
        if cp.size > self.size:
            raise IntegrityError(
                f"tree size {self.size} is smaller than the last published {cp.size} "
                f"(kept in {self.checkpoint_file}); this database looks restored from an old backup "
                "(see `ledger audit`)",
                code="restored_backup",
            )
        if self.root_at(cp.size) != cp.root:
            raise IntegrityError(
                f"the tree at size {cp.size} differs from the checkpoint published in {self.checkpoint_file}; "
                "this database has forked from what was published",
                code="forked",
            )

    def read_from(self, url: str, max_lag_s: float) -> None:
        """Let `reading()` read from the streaming replica `url` of this PostgreSQL database while it lags at
        most `max_lag_s` seconds (nothing is connected before the first read)."""
        check_url(url)
        if not self.postgresql:
            raise StorageError("read_database names a PostgreSQL replica; this ledger is kept in SQLite",
                               code="bad_config")
        self.replica = Replica(url, self.database, self._password, max_lag_s)

    def close(self) -> None:
        if self._cp_fd is not None:
            os.close(self._cp_fd)
            self._cp_fd = None
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # another process is reading; its next checkpoint will do
        self.conn.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        with self._readers_lock:
            readers = list(self._readers.values())
            self._readers.clear()
            pool, self._pool = self._pool, None
        for reader in readers:  # other threads' (an executor's): their connections end with the log
            reader.close()
        if pool is not None:  # the sessions end with the log
            pool.close()
        if self.replica is not None:
            self.replica.close()

    # ---- writing -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The size of the latest published (committed) tree (inside `reading()`: of the checkpoint read)."""
        view: tuple[int, bytes, str] | None = getattr(self._local, "view", None)
        return (view or self._published)[0]

    @property
    def latest_checkpoint(self) -> str:
        view: tuple[int, bytes, str] | None = getattr(self._local, "view", None)
        return (view or self._published)[2]

    @property
    def pending_size(self) -> int:
        return self._work.size + len(self._deferred) if self._work is not None else self._tree.size

    def begin(self) -> None:
        if self._signer is None:
            raise StorageError("this log was opened for reading only")
        if self._work is not None:
            raise StorageError("a write transaction is already open")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            if self._checkpointer is not None:
                self._checkpointer.failed()
            raise StorageError(f"cannot start a write transaction: {e}") from e
        try:
            if self.postgresql:
                self._lock_head()
            self._catch_up()
            if self.postgresql:
                self._check_head()
        except BaseException as e:
            self.rollback()
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"cannot read the ledger database: {e}; nothing was written") from e
            raise
        if not self._tree.inner:
            self._tree.inner = [_inner_of(e) for e in self._tree.edges]
        self._work = self._tree.copy()
        self.transactions += 1

    def _lock_head(self) -> None:
        """PostgreSQL: lock the head row for this transaction; another host's writer waits here for it, and
        reads, once it has it, everything committed before (READ COMMITTED: a snapshot per statement)."""
        row = self.conn.execute("SELECT size, root FROM log_head WHERE id = 1 FOR UPDATE").fetchone()
        if row is None:
            raise IntegrityError("the ledger database has no log_head row; it is damaged (run `ledger audit`)",
                                 code="damaged")
        self._head = (int(row[0]), bytes(row[1]))

    def _check_head(self) -> None:
        """PostgreSQL, after catching up: the stored head is the tree this writer extends."""
        assert self._head is not None
        if self._head != (self._tree.size, self._tree.root()):
            raise IntegrityError(
                f"the log's head row says tree size {self._head[0]}, but the tiles and checkpoints hold a tree of "
                f"size {self._tree.size} (or another root); refusing to extend either (run `ledger audit`)",
                code="damaged")

    def _catch_up(self) -> None:
        """Under the write lock: take in what another process (`ledger append` beside `ledger serve`)
        appended since this one last looked. One indexed lookup per transaction.

        Nobody else can append until this transaction ends, and the log only grows, so a larger
        latest checkpoint means the tree moved on: it is loaded again, as at open. The caches need
        nothing: full tiles and complete subtrees never change, and edge tiles only grow.
        """
        size = self.newest_size(self.conn)
        if size is None or size == self._published[0]:
            return
        if size < self._published[0]:
            raise IntegrityError(
                f"tree size {size} is smaller than the last published {self._published[0]}; the database "
                "was replaced while this process had it open, perhaps by an old backup (see `ledger audit`)",
                code="restored_backup",
            )
        self._tree = self._load_tree()  # the edge tiles' interior nodes are rebuilt by begin()
        self._published = self._load_latest()
        logger.info("another process appended to this ledger: reloaded the tree at size %d", self.size)
        if self.on_publish is not None:
            self.on_publish(self.size)

    def stage(self, entries: Sequence[bytes]) -> tuple[int, list[bytes]]:
        """Sequence and integrate entries into the open transaction; return (first index, leaf hashes)."""
        t = self._work
        if t is None:
            raise StorageError("stage() outside a transaction")
        _check_sizes(entries)
        self._integrate_deferred()
        first = t.size
        leaves = integrate(t, entries, self._full_tiles)
        self._staged.extend(entries)
        return first, leaves

    def defer(self, entries: Sequence[bytes]) -> int:
        """Sequence entries in the open transaction and return the first one's index.

        They are hashed into the tree at commit, together with everything else deferred in the
        transaction: one integration per batch however many requests it holds.
        """
        if self._work is None:
            raise StorageError("defer() outside a transaction")
        _check_sizes(entries)
        first = self._work.size + len(self._deferred)
        self._deferred.extend(entries)
        return first

    def before_commit(self, hook: Callable[[Connection], None]) -> None:
        """Run `hook(conn)` inside this transaction just before it commits (once; forgotten on rollback)."""
        if self._work is None:
            raise StorageError("before_commit() outside a transaction")
        self._hooks.append(hook)

    def _integrate_deferred(self) -> None:
        if self._deferred and self._work is not None:
            integrate(self._work, self._deferred, self._full_tiles)
            self._staged.extend(self._deferred)
            self._deferred = []

    def _rows(self, t: _Tree, first: int, staged: list[bytes],
              full: list[tuple[int, int, bytes, bytes]]) -> tuple[Any, ...]:
        """Everything one commit writes, computed without touching the database."""
        edges = [(level, t.size >> (8 * (level + 1)), b"".join(edge)) for level, edge in enumerate(t.edges)]
        root = t.root()
        if t.size != self._published[0] or not self._published[2]:
            body = Checkpoint(self.origin, t.size, root).body()
            note = body + "\n" + self.signer.sign(body).line()
            new_checkpoint = True
        else:
            note, new_checkpoint = self._published[2], False
        return (_chunks(first, staged) if staged else [], full, edges, root, note, new_checkpoint)

    def _write(self, rows: tuple[Any, ...], t: _Tree, first: int) -> AppendResult:
        """Insert the rows into the transaction `begin()` opened and COMMIT; then publish."""
        chunks, full, edges, root, note, new_checkpoint = rows
        c = self.conn
        try:
            if chunks:
                c.executemany("INSERT INTO entry_chunks(start, count, data) VALUES (?, ?, ?)", chunks)
            if full:
                c.executemany('INSERT INTO tiles(level, idx, hashes, "inner") VALUES (?, ?, ?, ?)', full)
            c.executemany("INSERT INTO tile_edge(level, idx, hashes) VALUES (?, ?, ?) ON CONFLICT(level) "
                          "DO UPDATE SET idx = excluded.idx, hashes = excluded.hashes", edges)
            if new_checkpoint:
                created = self.clock().isoformat(timespec="milliseconds")
                (prev,) = c.execute("SELECT max(size) FROM checkpoints").fetchone()
                record = CheckpointRecord(self.origin, t.size, prev, created, root).sign(self.signer)
                c.execute("INSERT INTO checkpoints(size, root, note, created) VALUES (?, ?, ?, ?)",
                          (t.size, root, note, created))
                c.execute("INSERT INTO checkpoint_records(size, note) VALUES (?, ?)", (t.size, record))
            if self._head is not None and self._head[0] != t.size:
                # moves on only from the tree it extends (locked at begin): else no row changes, and no COMMIT
                moved = c.execute("UPDATE log_head SET size = ?, root = ? WHERE id = 1 AND size = ? AND root = ?",
                                  (t.size, root, *self._head)).rowcount
                if moved != 1:
                    raise StorageError("the log's head moved while this writer held it locked; nothing was "
                                       "acknowledged (send the request again)", code="head_moved")
            c.execute("COMMIT")
        except BaseException as e:
            self.rollback()
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"could not write to the ledger database: {e}; nothing was acknowledged") from e
            raise
        if self._checkpointer is not None:
            self._checkpointer.committed()  # wakes the WAL checkpoint thread once the WAL is past its threshold
        self._tree = t
        self._published = (t.size, root, note)
        if self.on_publish is not None:
            self.on_publish(t.size)
        self._write_checkpoint_file(note)
        return AppendResult(first, t.size, root, note)

    def commit(self) -> AppendResult:
        """Write the staged entries, tiles and a new signed checkpoint, and COMMIT. Then it is acknowledged."""
        t = self._work
        if t is None:
            raise StorageError("commit() outside a transaction")
        try:
            for hook in self._hooks:
                hook(self.conn)
            self._integrate_deferred()
            rows = self._rows(t, self._tree.size, self._staged, self._full_tiles)
        except BaseException as e:
            self.rollback()
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"could not write to the ledger database: {e}; nothing was acknowledged") from e
            raise
        result = self._write(rows, t, self._tree.size)
        self._work = None
        self._staged, self._full_tiles, self._hooks = [], [], []
        return result

    def rollback(self) -> None:
        """Forget the open write transaction: a write failed. The WAL is checkpointed now (a full disk
        may be full of WAL: so freeing space brings the ledger back for good, see `Checkpointer`)."""
        failed = self._work is not None or self.conn.in_transaction
        self._work = None
        self._staged, self._full_tiles, self._deferred, self._hooks = [], [], [], []
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if failed and self._checkpointer is not None:
            self._checkpointer.failed()

    def append_batch(self, entries: Sequence[bytes]) -> AppendResult:
        self.begin()
        try:
            self.stage(entries)
        except BaseException:
            self.rollback()
            raise
        return self.commit()

    def _write_checkpoint_file(self, note: str) -> None:
        # Written after COMMIT, so the file never runs ahead of the database: at open, a database
        # smaller than the file was restored from a backup.
        # Rewritten in place (no rename, no fsync: it is on the hot path); a torn file is ignored at open.
        data = note.encode()
        try:
            if self._cp_fd is None:
                self._cp_fd = os.open(self.checkpoint_file, os.O_RDWR | os.O_CREAT, 0o644)
            os.pwrite(self._cp_fd, data, 0)
            os.ftruncate(self._cp_fd, len(data))
        except OSError:
            pass  # the database is the record; the file is a tripwire and is rewritten next commit

    # ---- reading -------------------------------------------------------------------------------

    def _reader(self) -> Connection:
        """The connection for reading (autocommit: each statement sees what is committed): this thread's on
        SQLite, the readers' pool on PostgreSQL; inside `reading()`, the one it chose."""
        pinned: Connection | None = getattr(self._local, "pinned", None)
        if pinned is not None:
            return pinned
        if self.postgresql:
            return self._pool or self._make_pool()
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = schema.connect(self.path, readonly=True)
            self._track(conn)
        return conn

    def _make_pool(self) -> ReadPool:
        with self._readers_lock:
            if self._pool is None:
                check_url(self.database)
                self._pool = ReadPool(self.database, password=self._password, size=self._pool_size)
            return self._pool

    def sessions(self) -> dict[str, dict[str, int] | None] | None:
        """PostgreSQL: how the readers' sessions are used, on the primary and on the replica, if there is one
        (`ReadPool.counts`; None for a pool no read has made yet). None on SQLite."""
        if not self.postgresql:
            return None
        pool = self._pool
        out: dict[str, dict[str, int] | None] = {"primary": None if pool is None else pool.counts()}
        if self.replica is not None:
            out["replica"] = self.replica.counts()
        return out

    @property
    def pool_size(self) -> int:
        """PostgreSQL: the most sessions this process's readers hold on the database (and on the replica)."""
        return self._pool_size

    @pool_size.setter
    def pool_size(self, size: int) -> None:
        if size < 1:
            raise ValueError("a pool holds one session at least")
        self._pool_size = size
        with self._readers_lock:
            if self._pool is not None and self._pool.size != size:
                self._pool.resize(size)

    def _track(self, conn: Connection) -> None:
        """Keep `conn`, this thread's, for `close()`; it is closed when the thread ends, too (with a token in
        the thread's local storage, which goes then)."""
        token = _ThreadToken()
        with self._readers_lock:
            self._readers[id(token)] = conn
        self._local.tokens = [*getattr(self._local, "tokens", ()), token]
        weakref.finalize(token, _close_reader, self._readers, self._readers_lock, id(token))

    @contextmanager
    def reading(self, min_size: int = 0) -> Iterator[int]:
        """One request's reads, all of one checkpoint: on this thread, until the block ends, `_reader()` is one
        connection and `size`, `latest_checkpoint`, `entry`, the proofs and tiles are those of one checkpoint.

        On the replica (`read_from`) while it is fit to read and holds a tree of `min_size` or more: its
        latest checkpoint, read in the REPEATABLE READ transaction every read of the block then shares (the
        replica may be a little behind, never a mix). Else on the primary: this process's own tree, which the
        primary holds (the rows read after it may be newer; the log's are bounded by its size). Nested, the
        outer block holds. Yields the size. Synchronous code only: a coroutine that awaited inside would
        share the pin with others on its thread.
        """
        if getattr(self._local, "view", None) is not None:
            yield self.size
            return
        with ExitStack() as lent:
            conn, view, on_replica = self._choose(min_size, lent)
            self._local.pinned, self._local.view = conn, view
            try:
                yield view[0]
            except sqlite3.OperationalError as e:
                if on_replica and getattr(conn, "lost", False):
                    assert self.replica is not None
                    self.replica.failed(e)  # it went away mid-request: the next ones read the primary
                raise
            finally:
                self._local.pinned = self._local.view = None
                if conn.in_transaction:
                    _rollback(conn)  # read only: nothing to keep

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read of this thread's, until the block ends, from one snapshot of the database: `conn`'s read
        transaction (REPEATABLE READ on PostgreSQL; on SQLite, a WAL reader's snapshot, from its first read).
        What other processes commit meanwhile is not seen, so a ledger in use is judged as of one moment:
        the audit's. `size` and the proofs are those of the snapshot's latest checkpoint. A log opened for
        reading only (the writer's connection is its batches')."""
        if self._signer is not None:
            raise StorageError("a snapshot is read by a log opened for reading only (open_reader)")
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if self.postgresql else "BEGIN")
        try:
            self._local.view = latest_checkpoint(self.conn) or self._published
            self._local.pinned = self.conn
            yield
        finally:
            self._local.pinned = self._local.view = None
            _rollback(self.conn)  # read only: nothing to keep

    def _choose(self, min_size: int, lent: ExitStack) -> tuple[Connection, tuple[int, bytes, str], bool]:
        """`reading()`'s connection and checkpoint, and whether they are the replica's: its latest if it is fit
        and recent enough (in a session of its pool, given back when `lent` closes), else ours."""
        if self.replica is not None and self.replica.usable():
            latest = None
            session = ExitStack()
            try:
                conn = session.enter_context(self.replica.pool(self._pool_size).session())
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                latest = latest_checkpoint(conn)
            except sqlite3.Error as e:
                self.replica.failed(e)
            if latest is not None and latest[0] >= min_size:
                lent.push(session)
                return conn, latest, True
            if latest is not None:
                _rollback(conn)
            session.close()
        if self.postgresql:  # one of the pool's sessions for the request's reads (each statement's own otherwise)
            return lent.enter_context((self._pool or self._make_pool()).session()), self._published, False
        return self._reader(), self._published, False

    def tile(self, level: int, index: int, min_width: int = TILE_WIDTH) -> tuple[bytes, bytes | None]:
        """The hashes of tile (level, index) with at least min_width hashes, and its inner nodes if full.

        Cached: full tiles never change, and an edge tile only grows, so a cached edge that is wide
        enough answers correctly.
        """
        key = (level, index)
        with self._cache_lock:
            hit = self._tile_cache.get(key)
            if hit is not None and len(hit[0]) >= 32 * min_width:
                self._tile_cache.move_to_end(key)
                return hit
        r = self._reader()
        row = r.execute('SELECT hashes, "inner" FROM tiles WHERE level = ? AND idx = ?', key).fetchone()
        if row is not None:
            found: tuple[bytes, bytes | None] = (bytes(row[0]), bytes(row[1]))
        else:
            row = r.execute("SELECT hashes FROM tile_edge WHERE level = ? AND idx = ?", key).fetchone()
            if row is None:
                # the edge may have just moved on to the next index: the full tile is there now
                row = r.execute('SELECT hashes, "inner" FROM tiles WHERE level = ? AND idx = ?', key).fetchone()
                if row is None:
                    raise NotFoundError(f"tile {level}/{index} of width {min_width} is not in the log")
                found = (bytes(row[0]), bytes(row[1]))
            else:
                found = (bytes(row[0]), None)
        if len(found[0]) < 32 * min_width:
            raise NotFoundError(f"tile {level}/{index} of width {min_width} is not in the log")
        with self._cache_lock:
            self._tile_cache[key] = found
            if len(self._tile_cache) > TILE_CACHE:
                self._tile_cache.popitem(last=False)
        return found

    def node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree at tree `level` covering leaves [index*2^level, (index+1)*2^level).

        Such a hash never changes once the subtree is complete, so the large ones (16 leaves or more,
        shared by many proofs) are cached.
        """
        if level >= 4:
            hit = self._node_cache.get((level, index))
            if hit is not None:
                return hit
        tl, r = level >> 3, level & 7
        start = index << r
        n, off, cnt = start >> 8, start & 255, 1 << r
        hashes, inner = self.tile(tl, n, off + cnt)
        if r == 0:
            return hashes[off * 32 : off * 32 + 32]
        if inner:
            o = _inner_offset(r, off >> r)
            return inner[o : o + 32]
        if r > 4:  # an edge tile has no stored mids: build from (cached) 16-leaf nodes
            h = root_of_hashes([self.node(tl * 8 + 4, ((n << 8) + off + k) >> 4) for k in range(0, cnt, 16)])
        else:
            h = root_of_hashes(_split(hashes[off * 32 : (off + cnt) * 32]))
        if level >= 4:
            if len(self._node_cache) >= NODE_CACHE:
                self._node_cache.clear()
            self._node_cache[(level, index)] = h
        return h

    def hash_range(self, start: int, end: int) -> bytes:
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:  # one complete subtree: all proof nodes but the right edge's
            level = n.bit_length() - 1
            return self.node(level, start >> level)
        return fold_right([self.node(lv, ix) for lv, ix in complete_subtrees(start, end)])

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise NotFoundError(f"tree size {size} is beyond the published size {self.size}", code="bad_size")

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        return self.hash_range(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise NotFoundError(f"entry {index} is not in a tree of size {size}", code="bad_index")
        return [self.hash_range(a, b) for a, b in inclusion_ranges(index, size)]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise RefusedError(f"no consistency proof from size {size1} to {size2}", code="bad_size")
        return [self.hash_range(a, b) for a, b in consistency_ranges(size1, size2)]

    def entry(self, index: int, *, within: int | None = None) -> bytes:
        """Entry `index` of the published log; `within`: of a tree size the caller knows was published
        (found in the checkpoints), which may be newer than this process's own tree."""
        size = self.size if within is None else within
        if not 0 <= index < size:
            raise NotFoundError(f"entry {index} is not in the log (size {size})", code="bad_index")
        row = self._reader().execute(
            "SELECT start, data FROM entry_chunks WHERE start <= ? ORDER BY start DESC LIMIT 1", (index,)
        ).fetchone()
        entries = iter_bundle(bytes(row[1])) if row else []
        if row is None or index - row[0] >= len(entries):
            raise IntegrityError(f"entry {index} is missing from storage (run `ledger audit`)")
        start: int = row[0]
        return entries[index - start]

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries [start, end) of the published log."""
        end = min(end, self.size)
        rows = self._reader().execute(
            "SELECT start, data FROM entry_chunks WHERE start >= ? AND start < ? ORDER BY start",
            (start - start % TILE_WIDTH, end),
        ).fetchall()
        out: list[bytes] = []
        first = rows[0][0] if rows else start
        for _, data in rows:
            out.extend(iter_bundle(bytes(data)))
        return out[start - first : end - first]

    def entry_bundle(self, index: int, width: int = TILE_WIDTH) -> bytes:
        start = index * TILE_WIDTH
        if not 1 <= width <= TILE_WIDTH or start + width > self.size:
            raise NotFoundError(f"entry bundle {index} of width {width} is not in the log")
        return b"".join(len(e).to_bytes(2, "big") + e for e in self.entries(start, start + width))

    def checkpoint_at(self, size: int) -> str:
        row = self._reader().execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        if row is None:
            raise NotFoundError(f"no checkpoint was published at size {size}")
        return str(row[0])
