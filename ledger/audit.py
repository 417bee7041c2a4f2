"""`ledger audit`: recompute everything derivable from the entries and compare it with what is stored.

Streams the entries once, in order, with flat memory (plus one small record per envelope):
1. every chunk starts where the previous ended and never crosses a bundle boundary;
2. every leaf, full tile (with its inner nodes) and edge tile is recomputed and compared;
3. every checkpoint is signed by the log key, names the log's origin, has the root recomputed at
   its size, and is consistent with the previous checkpoint (an RFC 9162 proof from storage, checked
   by the verifier);
4. every entry is canonical, each envelope is an unbroken chain, and the lifecycle replayed over the
   log gives exactly the stored projections (envelopes, per-envelope index, printed copies).
The report names the first index or table row that is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ledger.documents.blobs import BlobStore
from ledger.storage.log import TILE_WIDTH, TileLog, _empty_inner, _Tree, integrate, iter_bundle
from verifier.checkpoint import parse_checkpoint
from verifier.entry import Entry
from verifier.errors import VerificationError
from verifier.lifecycle import EnvelopeState, apply
from verifier.merkle import verify_consistency
from verifier.note import verify_note

MAX_PROBLEMS = 50


@dataclass
class AuditReport:
    size: int = 0
    checkpoints: int = 0
    tiles: int = 0
    envelopes: int = 0
    documents: int = 0  # stored originals checked (`audit(..., blobs=)`)
    unreferenced: int = 0  # stored files no document names (an upload refused after it was stored)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, msg: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(msg)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "checkpoints": self.checkpoints, "tiles": self.tiles,
                "envelopes": self.envelopes, "documents": self.documents, "unreferenced_files": self.unreferenced,
                "problems": self.problems}


@dataclass
class _EnvReplay:
    seq: int
    leaf: str
    state: EnvelopeState | None
    indexes: list[int]


def audit(log: TileLog, *, events: bool = True, blobs: BlobStore | None = None) -> AuditReport:
    """Recompute and compare everything the log and its tables hold; with `blobs`, the stored
    originals too (their documents come from the replayed entries, so only with `events`)."""
    rep = AuditReport()
    conn = log.conn
    checkpoints = conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size").fetchall()
    cp_pos = 0
    prev_cp: tuple[int, bytes] | None = None
    pairs: list[tuple[int, bytes, int, bytes]] = []  # consecutive checkpoints, proven after the pass
    leaf_tile: tuple[int, bytes] = (-1, b"")
    tree = _Tree(0, [], [[]], [_empty_inner()])
    envs: dict[str, _EnvReplay] = {}
    copies: dict[int, dict[str, Any]] = {}
    docs: dict[int, dict[str, Any]] = {}

    def check_checkpoints_up_to(size: int) -> None:
        nonlocal cp_pos, prev_cp
        while cp_pos < len(checkpoints) and checkpoints[cp_pos][0] <= size:
            cp_size, cp_root, note = checkpoints[cp_pos]
            cp_pos += 1
            rep.checkpoints += 1
            if cp_size != size:
                rep.add(f"checkpoints row size={cp_size}: no entries end there (entries jump to {size})")
                continue
            if _check_checkpoint(log, rep, cp_size, bytes(cp_root), note, tree.root()) and prev_cp and prev_cp[0]:
                pairs.append((prev_cp[0], prev_cp[1], cp_size, bytes(cp_root)))
            prev_cp = (cp_size, bytes(cp_root))

    check_checkpoints_up_to(0)
    expected_start = 0
    for start, count, data in conn.execute("SELECT start, count, data FROM entry_chunks ORDER BY start"):
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
                leaf_tile = (idx >> 8, _stored_leaves(log, idx >> 8))
            if leaf_tile[1][(idx & 255) * 32 : (idx & 255) * 32 + 32] != leaf:
                rep.add(f"entry {idx}: its bytes do not hash to the leaf hash stored in tile 0/{idx >> 8} "
                        "(the entry or the tile was changed)")
            for level, tidx, hashes, inner in full:
                rep.tiles += 1
                row = conn.execute("SELECT hashes, inner FROM tiles WHERE level = ? AND idx = ?", (level, tidx)).fetchone()
                if row is None or bytes(row[0]) != hashes or bytes(row[1]) != inner:
                    rep.add(f"tiles row level={level} idx={tidx}: {'missing' if row is None else 'wrong hashes'} "
                            f"(recomputed from entries up to index {idx})")
            if events:
                _replay(rep, envs, copies, docs, idx, raw)
            check_checkpoints_up_to(tree.size)
        expected_start = start + len(chunk)
    rep.size = tree.size
    for size, *_ in checkpoints[cp_pos:]:
        rep.add(f"checkpoints row size={size}: beyond the {tree.size} entries stored")
    _check_edges(log, rep, tree)
    for size1, root1, size2, root2 in pairs:
        # (3) consistency from storage, checked by the verifier: only now, after the tiles were checked
        try:
            verify_consistency(size1, size2, root1, root2, log.consistency_proof(size1, size2))
        except Exception as e:
            rep.add(f"checkpoints row size={size2}: not consistent with the checkpoint of size {size1} ({e})")
    n_tiles = conn.execute("SELECT count(*) FROM tiles").fetchone()[0]
    if n_tiles != rep.tiles:
        rep.add(f"tiles table holds {n_tiles} full tiles; the entries make {rep.tiles}")
    if events:
        _check_projections(log, rep, envs, copies, docs)
        if blobs is not None:
            _check_originals(blobs, rep, docs)
    return rep


def _stored_leaves(log: TileLog, n: int) -> bytes:
    row = log.conn.execute("SELECT hashes FROM tiles WHERE level = 0 AND idx = ?", (n,)).fetchone()
    if row is None:
        row = log.conn.execute("SELECT hashes FROM tile_edge WHERE level = 0 AND idx = ?", (n,)).fetchone()
    return bytes(row[0]) if row else b""


def _check_checkpoint(log: TileLog, rep: AuditReport, size: int, root: bytes, note: str, computed: bytes) -> bool:
    try:
        signed = parse_checkpoint(note)
        verify_note(signed.note, [log.signer.verifier])
    except VerificationError as e:
        rep.add(f"checkpoints row size={size}: signature or format invalid ({e})")
        return False
    cp = signed.checkpoint
    if cp.origin != log.origin or cp.size != size or cp.root != root:
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
        if stored.get(level) != want:
            rep.add(f"tile_edge row level={level}: does not match the edge recomputed from the entries")
    for level in stored:
        if level >= len(tree.edges):
            rep.add(f"tile_edge row level={level}: the log has no such level")


def _replay(rep: AuditReport, envs: dict[str, _EnvReplay], copies: dict[int, dict[str, Any]],
            docs: dict[int, dict[str, Any]], idx: int, raw: bytes) -> None:
    try:
        e = Entry.from_bytes(raw)
    except VerificationError as err:
        rep.add(f"entry {idx}: not a valid entry ({err})")
        return
    r = envs.get(e.env)
    if r is None:
        r = envs[e.env] = _EnvReplay(0, "", None, [])
    if e.seq != r.seq or e.prev != r.leaf:
        rep.add(f"entry {idx}: envelope {e.env} chain broken (seq {e.seq}, expected {r.seq}; prev link "
                f"{'ok' if e.prev == r.leaf else 'wrong'})")
    try:
        r.state = apply(r.state, e.type, e.data, e.time)
    except VerificationError as err:
        rep.add(f"entry {idx}: {e.type} is not a legal transition ({err})")
    r.seq = e.seq + 1
    r.leaf = e.leaf.hex()
    r.indexes.append(idx)
    if e.type == "copy.printed":
        copies[idx] = {"env": e.env, **e.data}
    elif e.type == "document.added":
        docs[idx] = {"env": e.env, **e.data}


def _check_projections(log: TileLog, rep: AuditReport, envs: dict[str, _EnvReplay],
                       copies: dict[int, dict[str, Any]], docs: dict[int, dict[str, Any]]) -> None:
    conn = log.conn
    seen = set()
    for env, status, seq, last_leaf, first, last, state in conn.execute(
            "SELECT env, status, seq, last_leaf, first_index, last_index, state FROM envelopes ORDER BY rowid"):
        seen.add(env)
        r = envs.get(env)
        if r is None or r.state is None:
            rep.add(f"envelopes row env={env}: no such envelope in the log")
            continue
        rep.envelopes += 1
        want = (r.state.status, r.seq, r.leaf, r.indexes[0], r.indexes[-1], r.state.to_json())
        try:
            got = (status, seq, last_leaf, first, last, json.loads(state))
        except ValueError:
            got = None
        if got != want:
            rep.add(f"envelopes row env={env}: stored projection differs from the log "
                    f"(status {status!r}, log says {r.state.status!r})")
    for env in envs:
        if env not in seen:
            rep.add(f"envelopes: envelope {env} is in the log but has no envelopes row")
    for env, seq, idx in conn.execute("SELECT env, seq, idx FROM envelope_entries ORDER BY env, seq"):
        r = envs.get(env)
        if r is None or seq >= len(r.indexes) or r.indexes[seq] != idx:
            rep.add(f"envelope_entries row env={env} seq={seq}: points at index {idx}, the log disagrees")
    n_idx = conn.execute("SELECT count(*) FROM envelope_entries").fetchone()[0]
    if n_idx != sum(len(r.indexes) for r in envs.values()):
        rep.add("envelope_entries: row count differs from the number of entries in the log")
    stored_docs = 0
    for env, doc, sha, idx in conn.execute("SELECT env, document, sha256, idx FROM documents"):
        stored_docs += 1
        d = docs.get(idx)
        if d is None or (d["env"], d["document"], d["sha256"]) != (env, doc, sha):
            rep.add(f"documents row env={env} document={doc}: does not match the document.added entry at index {idx}")
    if stored_docs != len(docs):
        rep.add(f"documents table holds {stored_docs} rows; the log added {len(docs)} documents")
    stored_copies = 0
    for code, env, doc, copy, idx in conn.execute("SELECT code, env, document, copy, idx FROM copies"):
        stored_copies += 1
        c = copies.get(idx)
        if c is None or c["env"] != env or c["document"] != doc or c["copy"] != copy or \
                c["code"] != hashlib.sha256(code.encode()).hexdigest():
            rep.add(f"copies row code={code[:4]}…: does not match the copy.printed entry at index {idx}")
    if stored_copies != len(copies):
        rep.add(f"copies table holds {stored_copies} rows; the log printed {len(copies)} copies")



def _check_originals(blobs: BlobStore, rep: AuditReport, docs: dict[int, dict[str, Any]]) -> None:
    """Every document the portal may serve (download policy other than "none") has its original in
    the store, and the file still hashes to the SHA-256 its entry registered; files no document
    names are counted (not a problem: an upload refused after its bytes were stored leaves one)."""
    for idx, d in docs.items():
        if d.get("download", "none") == "none":
            continue
        where = f"document {d['document']} of envelope {d['env']} (entry {idx})"
        digest = blobs.digest(d["sha256"])
        if digest is None:
            rep.add(f"{where} may be downloaded, but its original {d['sha256']} is not in {blobs.root}")
            continue
        rep.documents += 1
        if digest != d["sha256"]:
            rep.add(f"the original of {where}, {blobs.path(d['sha256'])}, no longer hashes to {d['sha256']}: "
                    "it is damaged; restore it from a backup")
    named = {d["sha256"] for d in docs.values()}
    rep.unreferenced = sum(1 for sha in blobs.stored() if sha not in named)
