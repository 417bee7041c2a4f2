"""The log's own tables: entries, tiles, the tile edge, checkpoints and their records, and checkpoints
held outside the database.

Streams the entries once, in order, with flat memory:
1. every chunk starts where the previous ended and never crosses a bundle boundary;
2. every leaf, full tile (with its inner nodes) and edge tile is recomputed and compared (and on
   PostgreSQL the head row writers extend, `log_head`, is the latest checkpoint's tree);
3. every checkpoint is signed by the log key, names the log's origin, has the root recomputed at its
   size, and is consistent with the previous checkpoint (an RFC 9162 proof from storage, checked by the
   verifier);
4. every checkpoint made since records were kept has its signed record (`ledger.storage.records`): the
   row's time and root are the record's, and the checkpoint before it is the one the record names, so a
   changed `created` or a deleted row in the middle is found;
5. each checkpoint held outside (a notary's, a backup's, `ledger.checkpoint`) is signed by the log key
   and the log holds its tree: a log cut back, or forked, is named against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.audit.report import AuditReport
from ledger.storage.engine import stream
from ledger.storage.log import TILE_WIDTH, TileLog, _empty_inner, _Tree, integrate, iter_bundle
from ledger.storage.records import verify_record
from verifier.checkpoint import Checkpoint, parse_checkpoint
from verifier.errors import VerificationError
from verifier.merkle import verify_consistency
from verifier.note import Ed25519Verifier, verify_note


@dataclass(frozen=True)
class Outside:
    """A checkpoint held outside the database, and where it came from (a file, a witness)."""

    source: str
    text: str


def audit_log(log: TileLog, rep: AuditReport, verifier: Ed25519Verifier, origin: str,
              outside: Sequence[Outside], on_entry: Callable[[int, bytes], None]) -> dict[int, str]:
    """Check the log's tables (steps 1-5), calling `on_entry(index, bytes)` for each entry in order.

    Returns the checkpoint notes by size (what anchors and cosignatures were made over)."""
    conn = log.conn
    checkpoints = conn.execute("SELECT size, root, note, created FROM checkpoints ORDER BY size").fetchall()
    held = _parse_outside(rep, outside, verifier, origin)
    wanted = {cp.size for _, cp in held}
    roots: dict[int, bytes] = {}  # the recomputed root at each size an outside checkpoint names
    cp_pos = 0
    prev_cp: tuple[int, bytes] | None = None
    pairs: list[tuple[int, bytes, int, bytes]] = []  # consecutive checkpoints, proven after the pass
    leaf_tile: tuple[int, bytes] = (-1, b"")
    tree = _Tree(0, [], [[]], [_empty_inner()])

    def reached(size: int) -> None:
        nonlocal cp_pos, prev_cp
        if size in wanted:
            roots[size] = tree.root()
        while cp_pos < len(checkpoints) and checkpoints[cp_pos][0] <= size:
            cp_size, cp_root, note, _ = checkpoints[cp_pos]
            cp_pos += 1
            rep.checkpoints += 1
            if cp_size != size:
                rep.add(f"checkpoints row size={cp_size}: no entries end there (entries jump to {size})")
                continue
            if _check_checkpoint(rep, verifier, origin, cp_size, bytes(cp_root), note, tree.root()) and prev_cp \
                    and prev_cp[0]:
                pairs.append((prev_cp[0], prev_cp[1], cp_size, bytes(cp_root)))
            prev_cp = (cp_size, bytes(cp_root))

    reached(0)
    expected_start = 0
    for start, count, data in stream(conn, "SELECT start, count, data FROM entry_chunks ORDER BY start"):
        if start != expected_start:
            rep.add(f"entry_chunks row start={start}: expected the next chunk to start at index {expected_start}")
            break
        try:
            chunk = iter_bundle(bytes(data))
        except Exception:
            rep.add(f"entry_chunks row start={start}: the bundle encoding is truncated or corrupt")
            break
        if len(chunk) != count or start // TILE_WIDTH != (start + count - 1) // TILE_WIDTH:
            rep.add(f"entry_chunks row start={start}: holds {len(chunk)} entries (count says {count}) "
                    "or crosses a bundle boundary")
        for k, raw in enumerate(chunk):
            idx = start + k
            full: list[tuple[int, int, bytes, bytes]] = []
            (leaf,) = integrate(tree, [raw], full)
            if leaf_tile[0] != idx >> 8:
                leaf_tile = (idx >> 8, log.stored_leaf_hashes(idx >> 8))
            if leaf_tile[1][(idx & 255) * 32 : (idx & 255) * 32 + 32] != leaf:
                rep.add(f"entry {idx}: its bytes do not hash to the leaf hash stored in tile 0/{idx >> 8} "
                        "(the entry or the tile was changed)")
            for level, tidx, hashes, inner in full:
                rep.tiles += 1
                row = conn.execute('SELECT hashes, "inner" FROM tiles WHERE level = ? AND idx = ?', (level, tidx)).fetchone()
                if row is None or bytes(row[0]) != hashes or bytes(row[1]) != inner:
                    rep.add(f"tiles row level={level} idx={tidx}: {'missing' if row is None else 'wrong hashes'} "
                            f"(recomputed from entries up to index {idx})")
            on_entry(idx, raw)
            reached(tree.size)
        expected_start = start + len(chunk)
    rep.size = tree.size
    for size, *_ in checkpoints[cp_pos:]:
        rep.add(f"checkpoints row size={size}: beyond the {tree.size} entries stored")
    _check_edges(log, rep, tree)
    if log.postgresql:
        _check_head(log, rep)
    for size1, root1, size2, root2 in pairs:
        # (3) consistency from storage, checked by the verifier: only now, after the tiles were checked
        try:
            verify_consistency(size1, size2, root1, root2, log.consistency_proof(size1, size2))
        except Exception as e:
            rep.add(f"checkpoints row size={size2}: not consistent with the checkpoint of size {size1} ({e})")
    n_tiles = conn.execute("SELECT count(*) FROM tiles").fetchone()[0]
    if n_tiles != rep.tiles:
        rep.add(f"tiles table holds {n_tiles} full tiles; the entries make {rep.tiles}")
    _check_records(log, rep, verifier, origin, checkpoints)
    _check_outside(rep, held, roots, tree.size)
    return {int(size): str(note) for size, _, note, _ in checkpoints}


def _check_checkpoint(rep: AuditReport, verifier: Ed25519Verifier, origin: str, size: int, root: bytes, note: str,
                      computed: bytes) -> bool:
    try:
        signed = parse_checkpoint(note)
        verify_note(signed.note, [verifier])
    except VerificationError as e:
        rep.add(f"checkpoints row size={size}: signature or format invalid ({e})")
        return False
    cp = signed.checkpoint
    if cp.origin != origin or cp.size != size or cp.root != root:
        rep.add(f"checkpoints row size={size}: the signed note does not match the row (origin, size or root)")
        return False
    if root != computed:
        rep.add(f"checkpoints row size={size}: root {root.hex()[:16]}… but the entries give {computed.hex()[:16]}…")
        return False
    return True


def _check_edges(log: TileLog, rep: AuditReport, tree: _Tree) -> None:
    stored = {lv: (ix, bytes(h)) for lv, ix, h in log.conn.execute("SELECT level, idx, hashes FROM tile_edge")}
    for level, edge in enumerate(tree.edges):
        want = (tree.size >> (8 * (level + 1)), b"".join(edge))
        got = stored.get(level)
        if got is None:
            rep.add(f"tile_edge row level={level}: missing (the entries make an edge of {len(edge)} hashes at "
                    f"index {want[0]})")
        elif got != want:
            what = (f"index {got[0]}, the entries give {want[0]}" if got[0] != want[0] else
                    f"{len(got[1]) // 32} hashes, the entries give {len(edge)}" if len(got[1]) != len(want[1]) else
                    "its hashes differ from those recomputed from the entries")
            rep.add(f"tile_edge row level={level}: {what}")
    for level in stored:
        if level >= len(tree.edges):
            rep.add(f"tile_edge row level={level}: the log has no such level")


def _check_head(log: TileLog, rep: AuditReport) -> None:
    """PostgreSQL: the head row every writer extends (`log_head`) is the tree of the latest checkpoint (both
    are written in one transaction). Read in one statement, so a commit between two reads is no difference."""
    row = log.conn.execute("SELECT h.size, h.root, c.size, c.root FROM log_head h LEFT JOIN checkpoints c"
                           " ON c.size = (SELECT max(size) FROM checkpoints) WHERE h.id = 1").fetchone()
    if row is None:
        rep.add("log_head: the row is missing (every writer refuses to append until it is put back)")
    elif row[2] is None or int(row[0]) != int(row[2]) or bytes(row[1]) != bytes(row[3]):
        rep.add(f"log_head row: tree size {row[0]}, root {bytes(row[1]).hex()[:16]}…, but the latest checkpoint is "
                f"of size {row[2]}" + ("" if row[3] is None else f", root {bytes(row[3]).hex()[:16]}…")
                + " (every writer refuses to extend it)")


def _check_records(log: TileLog, rep: AuditReport, verifier: Ed25519Verifier, origin: str,
                   checkpoints: list[tuple[int, bytes, str, str]]) -> None:
    """(4) Each checkpoint's signed record: its time, root and predecessor."""
    records = dict(log.conn.execute("SELECT size, note FROM checkpoint_records").fetchall())
    if not records:
        return  # a ledger made before records were kept
    sizes = [int(c[0]) for c in checkpoints]
    present = set(sizes)
    first = min(records)
    previous: int | None = None
    for size, root, _, created in checkpoints:
        size = int(size)
        if size < first:
            previous = size
            continue
        note = records.get(size)
        if note is None:
            rep.add(f"checkpoint_records: no record of the checkpoint of size {size} (the row was deleted, or "
                    "the checkpoint was inserted)")
            previous = size
            continue
        rep.records += 1
        try:
            rec = verify_record(str(note), verifier)
        except VerificationError as e:
            rep.add(f"checkpoint_records row size={size}: not a record signed by the log key ({e})")
            previous = size
            continue
        if rec.origin != origin or rec.size != size or rec.root != bytes(root):
            rep.add(f"checkpoint_records row size={size}: its signed record names another checkpoint "
                    f"(size {rec.size}, origin or root differ)")
        if rec.created != created:
            rep.add(f"checkpoints row size={size}: created is {created}, but the log key signed {rec.created}")
        if rec.prev != previous:
            if rec.prev is not None and rec.prev not in present:
                rep.add(f"checkpoints: the checkpoint of size {rec.prev} is missing (the record of size {size} "
                        "names it as the one before; the row was deleted)")
            else:
                rep.add(f"checkpoints row size={size}: the checkpoint before it is of size {previous}, but its "
                        f"signed record names {rec.prev}")
        previous = size
    for size in sorted(set(records) - present):
        rep.add(f"checkpoint_records row size={size}: no checkpoint of that size is stored (the checkpoints row "
                "was deleted)")


def _parse_outside(rep: AuditReport, outside: Sequence[Outside], verifier: Ed25519Verifier,
                   origin: str) -> list[tuple[str, Checkpoint]]:
    held = []
    for o in outside:
        try:
            signed = parse_checkpoint(o.text)
            verify_note(signed.note, [verifier])
        except VerificationError as e:
            rep.add(f"{o.source}: not a checkpoint signed by this log's key ({e})")
            continue
        if signed.checkpoint.origin != origin:
            rep.add(f"{o.source}: a checkpoint of log {signed.checkpoint.origin!r}, not {origin!r}")
            continue
        held.append((o.source, signed.checkpoint))
    return held


def _check_outside(rep: AuditReport, held: list[tuple[str, Checkpoint]], roots: dict[int, bytes], size: int) -> None:
    """(5) The log holds every tree that was published and is held outside."""
    for source, cp in held:
        rep.outside += 1
        if cp.size > size:
            rep.add(f"the log holds {size} entries, fewer than the checkpoint of size {cp.size} in {source}: "
                    "it was cut back or restored from an old backup; entries that were published are gone")
        elif roots.get(cp.size) != cp.root:
            rep.add(f"the log's tree at size {cp.size} differs from the checkpoint in {source}: the log has "
                    "forked from what was published")
