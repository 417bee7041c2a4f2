"""The envelopes' tables against the log: the lifecycle replayed, and every row a page shows or an access
decision reads.

1. every entry is canonical, each envelope is an unbroken chain, and the lifecycle replayed over the log
   gives exactly the stored projections (envelopes with their times, the per-envelope index, documents,
   their versions and printed copies);
2. every opening opens its commitment (SHA-256 of salt and value) and an entry of its envelope commits
   to it; every commitment in the log has its opening (a deleted row is named);
3. what grants access is bound to the log: an envelope's tenant and reference are the ones its
   `envelope.created` entry commits to (`owner`), and each reference of a document or party is the one
   its entry commits to (`ref`), so a row moved to another tenant, renamed, or given another ordinal is
   named; and a document's access code hash is the one its entry commits to (`access`). Envelopes made
   before these commitments existed are counted as unbound;
4. every stored original the portal may serve is in the blob store and still has its registered hash.

Every table is read in the order of its key (or of the log), so that the same damage is reported in
the same order on SQLite and on PostgreSQL (whose rows come in no order unless asked).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ledger.audit.report import AuditReport
from ledger.documents.blobs import BlobStore
from ledger.envelopes.core import held_sha256, seal_use_of, version_of
from ledger.storage.engine import stream
from ledger.storage.log import TileLog
from verifier.entry import Entry
from verifier.errors import VerificationError
from verifier.lifecycle import EnvelopeState, apply

# entry data fields that hold a salted commitment, by event type
COMMITTED = {"envelope.created": ("title", "owner"), "document.added": ("name", "ref", "access"),
             "party.added": ("identity", "ref"), "party.declined": ("reason",), "envelope.withdrawn": ("reason",),
             "void.requested": ("reason",), "evidence.exported": ("by",)}
KINDS = {"document.added": "document", "party.added": "party"}


def _hex(value: Any) -> bytes | None:
    """A commitment as bytes, or None if it is not 64 hex digits."""
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


@dataclass
class _EnvReplay:
    seq: int
    leaf: str
    state: EnvelopeState | None
    indexes: list[int]
    created: str = ""
    updated: str = ""
    owner: str | None = None  # the commitment to its tenant and reference
    access: dict[int, str | None] = field(default_factory=dict)  # document: commitment to its access code
    refs: dict[tuple[str, int], str | None] = field(default_factory=dict)  # (kind, ordinal): commitment


@dataclass
class EnvelopeAudit:
    """The replay's state, fed one entry at a time by the log's pass, then compared with the tables."""

    rep: AuditReport
    envs: dict[str, _EnvReplay] = field(default_factory=dict)
    copies: dict[int, dict[str, Any]] = field(default_factory=dict)
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)
    commitments: dict[bytes, tuple[str, int, str]] = field(default_factory=dict)  # -> (env, index, field)
    versions: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # index -> `version_of` the entry
    seal_uses: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # index -> `seal_use_of` the entry
    registers: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (env, SHA-256 it registers)
    seal_images: set[str] = field(default_factory=set)  # the registered seals' images (blob store files)

    def entry(self, idx: int, raw: bytes) -> None:
        rep = self.rep
        try:
            e = Entry.from_bytes(raw)
        except VerificationError as err:
            rep.add(f"entry {idx}: not a valid entry ({err})")
            return
        r = self.envs.get(e.env)
        if r is None:
            r = self.envs[e.env] = _EnvReplay(0, "", None, [], created=e.time)
        if e.seq != r.seq or e.prev != r.leaf:
            rep.add(f"entry {idx}: envelope {e.env} chain broken (seq {e.seq}, expected {r.seq}; prev link "
                    f"{'ok' if e.prev == r.leaf else 'wrong'})")
        try:
            r.state = apply(r.state, e.type, e.data, e.time)
            legal = True
        except VerificationError as err:
            rep.add(f"entry {idx}: {e.type} is not a legal transition ({err})")
            legal = False
        r.seq = e.seq + 1
        r.leaf = e.leaf.hex()
        r.indexes.append(idx)
        r.updated = e.time
        if not legal:  # its data fields are not what their type says: named above, nothing more to take
            return
        for name in COMMITTED.get(e.type, ()):
            c = _hex(e.data.get(name))
            if c is not None:
                self.commitments[c] = (e.env, idx, name)
        ordinal = e.data.get(KINDS.get(e.type, ""))
        if e.type == "envelope.created":
            r.owner = e.data.get("owner")
        elif e.type in KINDS and isinstance(ordinal, int):
            r.refs[(KINDS[e.type], ordinal)] = e.data.get("ref")
        if e.type == "document.added" and e.data.get("download") == "code" and isinstance(ordinal, int):
            r.access[ordinal] = e.data.get("access")
        version = version_of(e)
        if version is not None:
            self.versions[idx] = version
        use = seal_use_of(e)
        if use is not None:
            self.seal_uses[idx] = use
        held = held_sha256(e)
        if held is not None:
            self.registers[idx] = (e.env, held)
        if e.type == "copy.printed":
            self.copies[idx] = {"env": e.env, **e.data}
        elif e.type == "document.added":
            self.docs[idx] = {"env": e.env, **e.data}

    # ---- after the pass ---------------------------------------------------------------------------

    def check(self, log: TileLog, blobs: BlobStore | None) -> None:
        openings = self._check_openings(log)
        self._check_envelopes(log, openings)
        self._check_refs(log, openings)
        self._check_access_codes(log, openings)
        self._check_copies_and_documents(log)
        self._check_versions(log)
        self._check_seal_uses(log)
        self._check_holdings(log)
        if blobs is not None:
            self.seal_images = {sha for (sha,) in stream(log.conn,
                "SELECT image_sha256 FROM seals WHERE image_sha256 IS NOT NULL")}
            self._check_originals(blobs)

    def _check_openings(self, log: TileLog) -> dict[bytes, Any]:
        """(2) Each opening against its commitment; returns the values of the owner and ref commitments."""
        rep = self.rep
        opened: set[bytes] = set()
        values: dict[bytes, Any] = {}
        for env, commitment, salt, value in stream(log.conn,
                "SELECT env, commitment, salt, value FROM openings ORDER BY env, commitment"):
            rep.openings += 1
            where = f"openings row env={env} commitment={str(commitment)[:16]}…"
            try:
                c = bytes.fromhex(commitment)
                ok = hashlib.sha256(bytes.fromhex(salt) + str(value).encode()).digest() == c
            except (ValueError, TypeError):
                c, ok = b"", False
            if not ok:
                rep.add(f"{where}: its salt and value no longer open the commitment (the row was changed)")
                continue
            known = self.commitments.get(c)
            if known is None or known[0] != env:
                rep.add(f"{where}: no entry of envelope {env} commits to it")
                continue
            opened.add(c)
            if known[2] in ("owner", "ref", "access"):
                try:
                    values[c] = json.loads(value)
                except ValueError:
                    rep.add(f"{where}: its value is not JSON")
        for c, (env, idx, name) in self.commitments.items():
            if c not in opened:
                rep.add(f"openings: the {name} commitment {c.hex()[:16]}… of envelope {env} (entry {idx}) has no "
                        "opening (the row was deleted)")
        return values

    def _check_envelopes(self, log: TileLog, values: dict[bytes, Any]) -> None:
        """(1) The envelopes projection, (3) its tenant and reference against the log."""
        rep, envs = self.rep, self.envs
        seen = set()
        for env, tenant, ref, status, seq, last_leaf, first, last, created, updated, state in stream(log.conn,
                "SELECT env, tenant, ref, status, seq, last_leaf, first_index, last_index, created, updated, state"
                " FROM envelopes ORDER BY first_index, env"):
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
            if (created, updated) != (r.created, r.updated):
                rep.add(f"envelopes row env={env}: created {created} and updated {updated}, but its entries are of "
                        f"{r.created} and {r.updated}")
            if r.owner is None:
                rep.unbound += 1
                continue
            owner = values.get(_hex(r.owner) or b"")
            if owner is None:
                continue  # its opening is missing or wrong: said above
            if owner != {"tenant": tenant, "ref": ref}:
                rep.add(f"envelopes row env={env}: tenant {tenant!r} and reference {ref!r}, but its envelope.created "
                        f"entry (index {r.indexes[0]}) commits to tenant {owner.get('tenant')!r} and reference "
                        f"{owner.get('ref')!r}")
        for env in envs:
            if env not in seen:
                rep.add(f"envelopes: envelope {env} is in the log but has no envelopes row")
        for env, seq, idx in stream(log.conn, "SELECT env, seq, idx FROM envelope_entries ORDER BY env, seq"):
            r = envs.get(env)
            if r is None or seq >= len(r.indexes) or r.indexes[seq] != idx:
                rep.add(f"envelope_entries row env={env} seq={seq}: points at index {idx}, the log disagrees")
        n_idx = log.conn.execute("SELECT count(*) FROM envelope_entries").fetchone()[0]
        if n_idx != sum(len(r.indexes) for r in envs.values()):
            rep.add("envelope_entries: row count differs from the number of entries in the log")

    def _check_refs(self, log: TileLog, values: dict[bytes, Any]) -> None:
        """(3) Each reference of a document or party: its ordinal exists, and its entry commits to it."""
        rep = self.rep
        seen: set[tuple[str, str, int]] = set()
        for env, kind, ref, ordinal in stream(log.conn,
                "SELECT env, kind, ref, ordinal FROM refs ORDER BY env, kind, ref"):
            rep.refs += 1
            where = f"refs row env={env} {kind} {ref!r}"
            r = self.envs.get(env)
            if r is None or (kind, ordinal) not in r.refs:
                rep.add(f"{where}: ordinal {ordinal}, but the log has no such {kind} in that envelope")
                continue
            if (env, kind, ordinal) in seen:
                rep.add(f"{where}: ordinal {ordinal} is named by another reference too")
            seen.add((env, kind, ordinal))
            c = r.refs[(kind, ordinal)]
            if c is None:
                continue  # added before references were committed
            bound = values.get(_hex(c) or b"")
            if bound is not None and bound != {"ref": ref}:
                rep.add(f"{where}: ordinal {ordinal}, but the entry that added {kind} {ordinal} commits to "
                        f"reference {bound.get('ref')!r}")
        for env, r in self.envs.items():
            for kind, ordinal in r.refs:
                if (env, kind, ordinal) not in seen:
                    rep.add(f"refs: {kind} {ordinal} of envelope {env} has no reference row (the row was deleted "
                            "or renamed to another ordinal)")

    def _check_access_codes(self, log: TileLog, values: dict[bytes, Any]) -> None:
        """(3) Each access code's hash is the one its document's entry commits to; only documents whose
        policy is "code" have one."""
        rep = self.rep
        seen: set[tuple[str, int]] = set()
        for env, document, code_sha256 in stream(log.conn,
                "SELECT env, document, code_sha256 FROM access_codes ORDER BY env, document"):
            where = f"access_codes row env={env} document={document}"
            r = self.envs.get(env)
            if r is None or document not in r.access:
                rep.add(f"{where}: the log has no document {document} with download policy 'code' in that envelope")
                continue
            seen.add((env, document))
            c = r.access[document]
            bound = values.get(_hex(c) or b"")
            if bound is not None and bound != {"code_sha256": code_sha256}:
                rep.add(f"{where}: the access code's hash is not the one the document's entry commits to (the row "
                        "was changed)")
        for env, r in self.envs.items():
            for document in r.access:
                if (env, document) not in seen:
                    rep.add(f"access_codes: document {document} of envelope {env} may be downloaded with a code, "
                            "but has no access code row (the row was deleted)")

    def _check_copies_and_documents(self, log: TileLog) -> None:
        rep = self.rep
        stored_docs = 0
        for env, doc, sha, idx in stream(log.conn,
                "SELECT env, document, sha256, idx FROM documents ORDER BY env, document"):
            stored_docs += 1
            d = self.docs.get(idx)
            if d is None or (d["env"], d["document"], d["sha256"]) != (env, doc, sha):
                rep.add(f"documents row env={env} document={doc}: does not match the document.added entry at index {idx}")
        if stored_docs != len(self.docs):
            rep.add(f"documents table holds {stored_docs} rows; the log added {len(self.docs)} documents")
        stored_copies = 0
        for code, env, doc, copy, idx in stream(log.conn,
                "SELECT code, env, document, copy, idx FROM copies ORDER BY idx"):  # in log order, as SQLite's rowid
            stored_copies += 1
            c = self.copies.get(idx)
            if c is None or c["env"] != env or c["document"] != doc or c["copy"] != copy or \
                    c["code"] != hashlib.sha256(code.encode()).hexdigest():
                rep.add(f"copies row code={code[:4]}…: does not match the copy.printed entry at index {idx}")
        if stored_copies != len(self.copies):
            rep.add(f"copies table holds {stored_copies} rows; the log printed {len(self.copies)} copies")

    def _check_versions(self, log: TileLog) -> None:
        """(1) The versions projection: each row is the version its entry registers, and none is missing."""
        rep = self.rep
        seen = 0
        for idx, *row in stream(log.conn,
                "SELECT idx, sha256, env, document, kind, party, copy FROM versions ORDER BY idx"):
            seen += 1
            if self.versions.get(idx) != tuple(row):
                rep.add(f"versions row idx={idx}: does not match the version its entry registers ({row[3]} of "
                        f"document {row[2]} of envelope {row[1]})")
        if seen != len(self.versions):
            rep.add(f"versions table holds {seen} rows; the log registers {len(self.versions)} versions")

    def _check_holdings(self, log: TileLog) -> None:
        """(3) Each file an envelope may serve is one an entry of that envelope registers (a row pointing at
        other bytes would let the envelope print or export a file its tenant never sent)."""
        for env, sha, idx in stream(log.conn, "SELECT env, sha256, idx FROM holdings ORDER BY env, sha256"):
            if self.registers.get(idx) != (env, sha):
                self.rep.add(f"holdings row env={env} sha256={sha[:16]}…: entry {idx} does not register these bytes "
                             "for this envelope")

    def _check_seal_uses(self, log: TileLog) -> None:
        """(1) The seal_uses projection, as the versions one; and (3) each seal used is in its tenant's
        registry (a use whose seal row is gone names a deleted registration)."""
        rep = self.rep
        seen = 0
        for idx, *row in stream(log.conn, "SELECT idx, seal, env, party, kind, time FROM seal_uses ORDER BY idx"):
            seen += 1
            if self.seal_uses.get(idx) != tuple(row):
                rep.add(f"seal_uses row idx={idx}: does not match the seal.used entry at that index")
        if seen != len(self.seal_uses):
            rep.add(f"seal_uses table holds {seen} rows; the log records {len(self.seal_uses)} seal uses")
        registered = {(t, f) for t, f in stream(log.conn, "SELECT tenant, fingerprint FROM seals")}
        tenants = dict(log.conn.execute("SELECT env, tenant FROM envelopes"))
        for idx, (seal, env, _party, _kind, _time) in sorted(self.seal_uses.items()):
            if (tenants.get(env), seal) not in registered:
                rep.add(f"entry {idx}: seal.used names seal {seal[:16]}…, which is not in tenant "
                        f"{tenants.get(env)!r}'s registry (seals table)")

    def _check_originals(self, blobs: BlobStore) -> None:
        """(4) Every document the portal may serve (download policy other than "none") has its original
        in the store, and the file still hashes to the SHA-256 its entry registered; files no document
        names are counted (not a problem: an upload refused after its bytes were stored leaves one)."""
        rep = self.rep
        for idx, d in self.docs.items():
            if d.get("download", "none") == "none":
                continue
            where = f"document {d['document']} of envelope {d['env']} (entry {idx})"
            digest = blobs.digest(d["sha256"])
            if digest is None:
                rep.add(f"{where} may be downloaded, but its original {d['sha256']} is not in {blobs.kept_in}")
                continue
            rep.documents += 1
            if digest != d["sha256"]:
                rep.add(f"the original of {where}, {blobs.copy_of(d['sha256'])}, no longer hashes to {d['sha256']}: "
                        "it is damaged; restore it from a backup")
            if (cached := blobs.damaged_cache(d["sha256"])) is not None:
                rep.add(f"the original of {where} cached on this host, {cached}, no longer hashes to {d['sha256']}: "
                        "this copy is damaged; delete it (it is fetched again from the database)")
        named = {d["sha256"] for d in self.docs.values()} | {v[0] for v in self.versions.values()} | self.seal_images
        rep.unreferenced = sum(1 for sha in blobs.stored() if sha not in named)
