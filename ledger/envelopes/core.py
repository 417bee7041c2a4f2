"""The ledger: envelopes, their events and the log, behind one sequencer.

`Ledger.init(home)` makes the home folder (database, log key, blob store, config, and the local TSA
in `tsa/`); `Ledger.open(home)` opens it. `submit(tenant, events)` validates a request of events against the
lifecycle, turns them into entries (personal data only as salted commitments, openings kept in a
private table), sequences them and resolves once they are durable. A request is atomic: if one
event is refused, none of its events are written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ledger.access.apikeys import seal_unsealed
from ledger.anchoring.tsa import LocalTsa, LocalTsaError, create_local_tsa
from ledger.anchoring.witness import cosigned_checkpoint
from ledger.clock import Clock, utc_now
from ledger.config import Config, database_problem, load_config
from ledger.documents import qr
from ledger.documents.blobs import BlobStore
from ledger.documents.sealca import create_seal_ca
from ledger.envelopes.events import InputEvent, parse_events
from ledger.envelopes.seals import check_use
from ledger.errors import NotFoundError, RefusedError, StorageError
from ledger.storage.engine import Connection
from ledger.storage.log import AppendResult, TileLog
from ledger.storage.schema import DB_NAME
from ledger.storage.sequencer import CatchUp, Finish, Sequencer
from ledger.storage.signer import LogSigner
from verifier.checkpoint import parse_checkpoint
from verifier.entry import Entry, canonical_trusted
from verifier.errors import FormatError
from verifier.head import EnvelopeHead
from verifier.lifecycle import EnvelopeState, LifecycleError, apply
from verifier.merkle import leaf_hash
from verifier.note import Ed25519Verifier
from verifier.tlogproof import TlogProof

if TYPE_CHECKING:
    from verifier.anchored import AnchoredBundle

KEY_NAME = "log.key"
PUB_NAME = "log.pub"  # the verifier key, public: readers need no private key
ACCESS_CODE_LENGTH = 12
PIN_HEX = 32  # the QR fragment's pins: 128 bits of the log key's and the document's SHA-256 (pages accept 16 up)
UPLOADED = "_uploaded"  # set on document.added by code that stored the bytes itself; never parsed from input
SEALED = "_sealed"  # set on document.sealed by the ledger's own sealing; never parsed from input
TSA_DIR = "tsa"
SEAL_DIR = "seal"
logger = logging.getLogger("ledger")


def orphan_key(home: Path) -> str | None:
    """What to say of a folder that holds a log key but no database (init must not make a second key)."""
    if (home / KEY_NAME).exists() and not (home / DB_NAME).exists() and not load_config(home).database:
        return (f"{home / KEY_NAME} exists but no ledger database does: this folder holds (part of) another "
                f"ledger; restore its {DB_NAME}, or init a new ledger in an empty folder")
    return None


def uploaded(event: InputEvent) -> InputEvent:
    """`event` (a document.added) marked as registering bytes the caller stored in the blob store
    itself, for this tenant: only such a document may have a download policy other than "none"."""
    return InputEvent(event.type, event.envelope, {**event.fields, UPLOADED: True})


def commit_value(value: dict[str, Any]) -> tuple[str, str, str]:
    """A salted commitment SHA-256(salt || canonical JSON): (commitment hex, salt hex, value JSON)."""
    salt = secrets.token_bytes(32)
    body = canonical_trusted(value)
    return hashlib.sha256(salt + body).hexdigest(), salt.hex(), body.decode()


def new_env_id(clock: Clock) -> str:
    """An envelope's id in the log: 48 bits of Unix milliseconds, then 80 random bits (32 hex digits).

    Time first, so the envelopes of one batch sit side by side in every index keyed by their id
    (the time is in the entries anyway); the random part keeps ids unpredictable and unique.
    """
    ms = time.time_ns() // 1_000_000 if clock is utc_now else int(clock().timestamp() * 1000)
    return f"{ms & (1 << 48) - 1:012x}{os.urandom(10).hex()}"


_second: tuple[int, str] = (-1, "")  # the last second formatted by the system clock's fast path


def format_time(clock: Clock) -> str:
    """RFC 3339 UTC with milliseconds: 2026-01-02T03:04:05.678Z.

    On the system clock without making a datetime, the text of the current second kept (every event
    of a request is stamped with this; the same truncation to milliseconds as the datetime path).
    """
    global _second
    if clock is not utc_now:
        return clock().astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"
    sec, ms = divmod(time.time_ns() // 1_000_000, 1000)
    done = _second
    if done[0] != sec:
        done = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{done[1]}.{ms:03d}Z"


@dataclass
class _Env:
    env: str
    tenant: str
    ref: str
    state: EnvelopeState | None
    seq: int
    last_leaf: str
    refs: dict[tuple[str, str], int]
    new: bool = False
    first_index: int = -1
    new_refs: list[tuple[str, str, int]] = field(default_factory=list)
    last_index: int = -1
    created: str = ""
    updated: str = ""


@dataclass
class _Batch:
    """What one write transaction changes besides the log, written once just before it commits."""

    envs: dict[tuple[str, str], _Env] = field(default_factory=dict)  # (tenant, ref): state in this batch
    dirty: dict[str, _Env] = field(default_factory=dict)  # env id: its row to insert or update
    entries: list[tuple[str, int, int]] = field(default_factory=list)  # env, seq, index
    openings: list[tuple[str, str, str, str]] = field(default_factory=list)
    copies: list[tuple[str, str, int, int, int]] = field(default_factory=list)  # code, env, document, copy, index
    documents: list[tuple[str, int, str, int]] = field(default_factory=list)  # env, document, sha256, index
    versions: list[tuple[Any, ...]] = field(default_factory=list)  # index, then `version_of`'s fields
    access: list[tuple[str, int, str]] = field(default_factory=list)  # env, document, SHA-256 of its access code
    seal_uses: list[tuple[Any, ...]] = field(default_factory=list)  # index, then `seal_use_of`'s fields
    holdings: list[tuple[str, str, int]] = field(default_factory=list)  # env, SHA-256 of bytes it holds, index
    absent: set[tuple[str, str]] = field(default_factory=set)  # (tenant, ref) known not to exist before this batch
    answers: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)  # idempotent answers
    expired_before: str = ""  # idempotent answers made before this are dropped

    def known(self, key: tuple[str, str]) -> bool:
        """Is this envelope's state, or its absence, known without the database?"""
        return key in self.envs or key in self.absent

    def write(self, c: Connection) -> None:
        # (executemany with an empty list still costs a statement: skip those)
        c.executemany("INSERT INTO envelope_entries(env, seq, idx) VALUES (?, ?, ?)", self.entries)
        new = [r for r in self.dirty.values() if r.new]
        old = [r for r in self.dirty.values() if not r.new]
        if new:
            c.executemany(
                "INSERT INTO envelopes(env, tenant, ref, status, seq, last_leaf, first_index, last_index, created,"
                " updated, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.env, r.tenant, r.ref, _status(r), r.seq, r.last_leaf, r.first_index, r.last_index, r.created,
                  r.updated, _state_json(r)) for r in new])
        if old:
            c.executemany(
                "UPDATE envelopes SET status = ?, seq = ?, last_leaf = ?, last_index = ?, updated = ?, state = ?"
                " WHERE env = ?",
                [(_status(r), r.seq, r.last_leaf, r.last_index, r.updated, _state_json(r), r.env) for r in old])
        refs = [(r.env, k, ref, n) for r in self.dirty.values() for k, ref, n in r.new_refs]
        if refs:
            c.executemany("INSERT INTO refs(env, kind, ref, ordinal) VALUES (?, ?, ?, ?)", refs)
        if self.openings:
            c.executemany("INSERT INTO openings(commitment, env, salt, value) VALUES (?, ?, ?, ?)", self.openings)
        if self.copies:
            c.executemany("INSERT INTO copies(code, env, document, copy, idx) VALUES (?, ?, ?, ?, ?)", self.copies)
        if self.documents:
            c.executemany("INSERT INTO documents(env, document, sha256, idx) VALUES (?, ?, ?, ?)", self.documents)
        if self.versions:
            c.executemany("INSERT INTO versions(idx, sha256, env, document, kind, party, copy) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          self.versions)
        if self.holdings:  # (the same bytes registered twice, as two scans: held since the first)
            c.executemany("INSERT OR IGNORE INTO holdings(env, sha256, idx) VALUES (?, ?, ?)", self.holdings)
        if self.seal_uses:
            c.executemany("INSERT INTO seal_uses(idx, seal, env, party, kind, time) VALUES (?, ?, ?, ?, ?, ?)",
                          self.seal_uses)
        if self.access:  # private: the codes that open documents whose policy is "code"
            c.executemany("INSERT INTO access_codes(env, document, code_sha256) VALUES (?, ?, ?)", self.access)
        if self.answers:
            c.execute("DELETE FROM idempotency WHERE created < ?", (self.expired_before,))
            c.executemany("INSERT INTO idempotency(key_id, idem_key, fingerprint, acks, created) VALUES (?, ?, ?, ?, ?)",
                          [(k, i, *v) for (k, i), v in self.answers.items()])


def version_of(entry: Entry) -> tuple[str, str, int, str, int | None, int | None] | None:
    """The document version an entry registers, if it registers one: (sha256, env, document, kind, party,
    copy). A party's signed PDF (`party.signed`: `signed_sha256`), a scan of a paper copy (`paper.scanned`),
    the platform's sealed PDF (`document.sealed`)."""
    d = entry.data
    if entry.type == "party.signed":
        return d["signed_sha256"], entry.env, d["document"], "signed", d["party"], None
    if entry.type == "paper.scanned":
        return d["sha256"], entry.env, d["document"], "scan", None, d.get("copy")
    if entry.type == "document.sealed":
        return d["sha256"], entry.env, d["document"], "sealed", None, None
    return None


def seal_use_of(entry: Entry) -> tuple[str, str, int, str, str] | None:
    """The seal an entry says was used, if it is a `seal.used`: (seal, env, party, kind, time)."""
    if entry.type != "seal.used":
        return None
    d = entry.data
    return d["seal"].lower(), entry.env, d["party"], d["kind"], entry.time


def held_sha256(entry: Entry) -> str | None:
    """The SHA-256 of the bytes an entry registers: a document, or a version of one."""
    if entry.type == "document.added":
        return str(entry.data["sha256"])
    version = version_of(entry)
    return None if version is None else version[0]


def _backfill(log: TileLog, tables: set[str]) -> int:
    """Fill the projections (`versions`, `seal_uses`) of a ledger made before they existed, from the entries
    (once, when they are added); and `holdings` with what the log shows the ledger holds: originals that
    may be downloaded (they were uploaded) and the versions it sealed."""
    versions, uses, held = [], [], []
    for start in range(0, log.size, 65536):
        for k, raw in enumerate(log.entries(start, min(start + 65536, log.size))):
            if "holdings" in tables and (b'"document.sealed"' in raw or (
                    b'"document.added"' in raw and b'"download":"none"' not in raw)):
                e = Entry.from_bytes(raw)
                if e.type == "document.sealed" or (e.type == "document.added" and e.data.get("download") != "none"):
                    held.append((e.env, str(e.data["sha256"]), start + k))
            if b'"party.signed"' in raw or b'"paper.scanned"' in raw or b'"document.sealed"' in raw:
                version = version_of(Entry.from_bytes(raw))
                if version is not None and "versions" in tables:
                    versions.append((start + k, *version))
            elif b'"seal.used"' in raw and "seal_uses" in tables:
                use = seal_use_of(Entry.from_bytes(raw))
                if use is not None:
                    uses.append((start + k, *use))
    log.conn.execute("BEGIN IMMEDIATE")
    log.conn.executemany("INSERT OR IGNORE INTO versions(idx, sha256, env, document, kind, party, copy)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", versions)
    log.conn.executemany("INSERT OR IGNORE INTO seal_uses(idx, seal, env, party, kind, time) VALUES (?, ?, ?, ?, ?, ?)",
                         uses)
    log.conn.executemany("INSERT OR IGNORE INTO holdings(env, sha256, idx) VALUES (?, ?, ?)", held)
    log.conn.execute("COMMIT")
    return len(versions) + len(uses) + len(held)


def _status(rec: _Env) -> str:
    assert rec.state is not None
    return rec.state.status


def _state_json(rec: _Env) -> str:
    assert rec.state is not None
    return orjson.dumps(rec.state.to_json()).decode()


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key: the API key it came with, the key the client chose, and a fingerprint
    of the request (a retry must be the same request)."""

    key_id: str
    key: str
    fingerprint: str

    def to_json(self) -> list[str]:
        return [self.key_id, self.key, self.fingerprint]


class _Request:
    """One request of events from one tenant: validated and staged atomically by the sequencer."""

    def __init__(self, ledger: Ledger, tenant: str, events: list[InputEvent], idem: Idempotency | None = None) -> None:
        self.ledger, self.tenant, self.events, self.idem = ledger, tenant, events, idem
        self.size = len(events)

    @classmethod
    def prepare_batch(cls, log: TileLog, requests: list[_Request]) -> None:
        """Load every envelope the batch's requests name, one query per tenant instead of one each."""
        led = requests[0].ledger
        batch = led._batch(log)
        wanted: dict[str, set[str]] = {}
        for r in requests:
            for ev in r.events:
                if not batch.known((r.tenant, ev.envelope)):
                    wanted.setdefault(r.tenant, set()).add(ev.envelope)
        for tenant, refs in wanted.items():
            led._load_envs(tenant, sorted(refs), batch)

    def stage(self, log: TileLog) -> Finish:
        led = self.ledger
        batch = led._batch(log)
        if self.idem is not None:
            led._check_idempotency(log, batch, self.idem)
        touched: dict[str, _Env] = {}
        entries: list[Entry] = []
        openings: list[tuple[str, str, str, str]] = []
        copies: list[tuple[str, str, int, int, int]] = []  # code, env, document, copy, entry position
        access: list[tuple[str, int, str]] = []  # env, document, SHA-256 of its access code
        codes: list[str | None] = []
        now = format_time(led.clock)
        for i, ev in enumerate(self.events):
            try:
                entry, code, data, rec = self._one(i, ev, now, touched, batch, openings)
            except RefusedError as e:
                e.event = i
                raise
            if code is not None and ev.type == "copy.printed":
                copies.append((code, rec.env, data["document"], data["copy"], len(entries)))
            elif code is not None:
                access.append((rec.env, data["document"], qr.code_hash(code)))
            codes.append(code)
            entries.append(entry)
        # Accepted: from here on nothing refuses, so the batch takes this request's changes.
        first = log.defer([e.raw for e in entries])
        recs = {rec.env: rec for rec in touched.values()}
        for k, entry in enumerate(entries):
            rec = recs[entry.env]
            if rec.first_index < 0:
                rec.first_index, rec.created = first + k, entry.time
            rec.last_index, rec.updated = first + k, entry.time
            batch.entries.append((entry.env, entry.seq, first + k))
            if entry.type == "document.added":
                batch.documents.append((entry.env, entry.data["document"], entry.data["sha256"], first + k))
            elif (version := version_of(entry)) is not None:
                batch.versions.append((first + k, *version))
            elif (use := seal_use_of(entry)) is not None:
                batch.seal_uses.append((first + k, *use))
        for k, (entry, ev) in enumerate(zip(entries, self.events, strict=True)):
            # bytes this tenant sent, or the ledger made: the envelope may serve them (`printing`, exports)
            if (ev.fields.get(UPLOADED) is True or ev.fields.get(SEALED) is True) and (sha := held_sha256(entry)):
                batch.holdings.append((entry.env, sha, first + k))
        batch.copies.extend((code, env, d, n, first + pos) for code, env, d, n, pos in copies)
        batch.access.extend(access)
        batch.openings.extend(openings)
        for ref, rec in touched.items():
            batch.envs[(self.tenant, ref)] = rec
            batch.dirty[rec.env] = rec
        acks = [
            {"index": first + k, "leaf_hash": e.leaf.hex(), "envelope": ev.envelope, "env": e.env, "seq": e.seq,
             "type": e.type, "time": e.time,
             **({("code" if e.type == "copy.printed" else "access_code"): c} if c else {})}
            for k, (e, ev, c) in enumerate(zip(entries, self.events, codes, strict=True))
        ]

        if self.idem is not None:
            now_text = format_time(led.clock)
            batch.answers[(self.idem.key_id, self.idem.key)] = (self.idem.fingerprint, orjson.dumps(acks).decode(),
                                                                now_text)
            batch.expired_before = led.idempotency_cutoff()

        def finish(r: AppendResult) -> list[dict[str, Any]]:
            for a in acks:
                a["checkpoint_size"] = r.size
            return acks

        return finish

    def _one(self, i: int, ev: InputEvent, now: str, touched: dict[str, _Env], batch: _Batch,
             openings: list[tuple[str, str, str, str]]) -> tuple[Entry, str | None, dict[str, Any], _Env]:
        led = self.ledger
        rec = touched.get(ev.envelope)
        if rec is None:
            base = led._load_env(self.tenant, ev.envelope, batch)
            rec = _copy(base) if base is not None else None  # a refused request leaves the cache as it was
        if ev.type == "envelope.created":
            if rec is not None:
                raise RefusedError(f"event {i}: envelope {ev.envelope!r} already exists", code="envelope_exists",
                                   status=409)
            rec = _Env(new_env_id(led.clock), self.tenant, ev.envelope, None, 0, "", {}, new=True)
        elif rec is None:
            raise RefusedError(f"event {i}: no envelope {ev.envelope!r}", code="unknown_envelope", status=404)
        data, code = _entry_data(i, ev, rec, openings)
        try:
            rec.state = apply(rec.state, ev.type, data, now)
            entry = Entry.build(rec.env, rec.seq, ev.type, now, rec.last_leaf, data)
        except LifecycleError as e:
            why = _by_reference(str(e).removeprefix(f"{ev.type}: "), rec)
            raise RefusedError(f"event {i} ({ev.type} on {ev.envelope!r}): {why}", code=e.code, status=409) from None
        except FormatError as e:
            raise RefusedError(f"event {i}: {e}", code="invalid_event", status=422) from None
        if ev.type == "seal.used":  # a legal use (a signer who signed): of a seal registered for it?
            try:
                state = rec.state
                assert state is not None  # set by apply above
                check_use(led.log.conn, led.verifier, self.tenant, ev.fields["seal"], ev.fields["kind"],
                          ev.fields["party"], state.parties[data["party"] - 1].role)
            except RefusedError as e:
                raise RefusedError(f"event {i} (seal.used on {ev.envelope!r}): {e}", code=e.code, status=409) from None
        rec.seq += 1
        rec.last_leaf = entry.leaf.hex()
        touched[ev.envelope] = rec
        return entry, code, data, rec


_PARTIES = re.compile(r"\bparties ((?:\d+, )*\d+)\b")
_ONE = re.compile(r"\b(party|document) (\d+)\b")


def _by_reference(why: str, rec: _Env) -> str:
    """A lifecycle refusal names parties and documents by their ordinals, as the log holds them; the
    platform that sent the events named them by its own references: say those."""
    names = {(kind, n): ref for (kind, ref), n in rec.refs.items()}

    def name(kind: str, n: str) -> str:
        ref = names.get((kind, int(n)))
        return repr(ref) if ref is not None else n

    why = _PARTIES.sub(lambda m: "parties " + ", ".join(name("party", n) for n in m.group(1).split(", ")), why)
    return _ONE.sub(lambda m: f"{m.group(1)} {name(m.group(1), m.group(2))}", why)


def _copy(rec: _Env) -> _Env:
    return _Env(rec.env, rec.tenant, rec.ref, rec.state, rec.seq, rec.last_leaf, dict(rec.refs), rec.new,
                rec.first_index, list(rec.new_refs), rec.last_index, rec.created, rec.updated)


def _ordinal(i: int, rec: _Env, kind: str, ref: str) -> int:
    n = rec.refs.get((kind, ref))
    if n is None:
        raise RefusedError(f"event {i}: envelope {rec.ref!r} has no {kind} {ref!r}", code=f"unknown_{kind}",
                           status=404)
    return n


def _entry_data(i: int, ev: InputEvent, rec: _Env,
                openings: list[tuple[str, str, str, str]]) -> tuple[dict[str, Any], str | None]:
    """Turn an input event into public entry data: ordinals, hashes and commitments only."""
    f = ev.fields

    def commit(value: dict[str, Any]) -> str:
        c, salt, body = commit_value(value)
        openings.append((c, rec.env, salt, body))
        return c

    def new_ordinal(kind: str, ref: str) -> int:
        if (kind, ref) in rec.refs:
            raise RefusedError(f"event {i}: envelope {rec.ref!r} already has a {kind} {ref!r}",
                               code=f"{kind}_exists", status=409)
        n = 1 + sum(1 for k, _ in rec.refs if k == kind)
        rec.refs[(kind, ref)] = n
        rec.new_refs.append((kind, ref, n))
        return n

    t = ev.type
    d: dict[str, Any] = {}
    code = None
    if t == "envelope.created":
        # the tenant and reference that grant access, bound into the log (checked by `ledger audit`)
        d["title"] = commit({"title": f["title"]})
        d["owner"] = commit({"tenant": rec.tenant, "ref": rec.ref})
    elif t == "document.added":
        d = {"document": new_ordinal("document", f["document"]), "sha256": f["sha256"], "size": f["size"],
             "name": commit({"name": f["name"]}), "download": f.get("download", "none"),
             "ref": commit({"ref": f["document"]})}
        if d["download"] != "none" and f.get(UPLOADED) is not True:
            # The blob store is shared and every document's SHA-256 is public: a hash alone must not
            # open another tenant's file. Only the bytes this tenant uploaded may be served.
            raise RefusedError(
                f"event {i}: a document with download {d['download']!r} must be uploaded with "
                "POST /api/v1/envelopes/{ref}/documents; an event registers a document by its hash "
                "with download 'none' only", code="upload_required", status=422)
        if d["download"] == "code":
            code = "A" + qr.new_code()[:ACCESS_CODE_LENGTH - 1]  # an access code, told apart by its length
            d["access"] = commit({"code_sha256": qr.code_hash(code)})  # what opens it, bound to the log
    elif t == "party.added":
        ident = {"name": f["name"], **({"contact": f["contact"]} if "contact" in f else {})}
        d = {"party": new_ordinal("party", f["party"]), "role": f["role"],
             "order": f.get("order", 1 if f["role"] == "signer" else 0), "identity": commit(ident),
             "kind": f.get("kind", "person"), "ref": commit({"ref": f["party"]})}
    elif t == "document.sealed":
        if f.get(SEALED) is not True:
            raise RefusedError(f"event {i}: document.sealed is made by the ledger itself when it seals a document "
                               "(POST /api/v1/envelopes/{ref}/documents/{document}/seal)", code="invalid_event",
                               status=422)
        d = {"document": _ordinal(i, rec, "document", f["document"]), "sha256": f["sha256"],
             "certificate": f["certificate"]}
    elif t == "copy.printed":
        n = _ordinal(i, rec, "document", f["document"])
        state = rec.state
        done = state.copies[n - 1] if state is not None and n <= len(state.copies) else 0
        code = qr.new_code()
        d = {"document": n, "copy": done + 1, "code": qr.code_hash(code)}
    else:
        for k, v in f.items():
            if k.startswith("_"):  # the ledger's own marks (UPLOADED): never entry data
                continue
            if k == "party":
                d[k] = _ordinal(i, rec, "party", v)
            elif k == "document":
                d[k] = _ordinal(i, rec, "document", v)
            elif k in ("reason", "by"):
                d[k] = commit({k: v})
            else:
                d[k] = v
    return d, code


class Ledger:
    def __init__(self, home: Path, config: Config, log: TileLog, clock: Clock,
                 verifier: Ed25519Verifier | None = None) -> None:
        self.home, self.config, self.log, self.clock = home, config, log, clock
        self.verifier = verifier or log.signer.verifier
        log.pool_size = config.database_pool
        if config.read_database and log.replica is None:  # pages read the replica while it is fit to
            log.read_from(config.read_database, config.replica_max_lag_s)
        self.writer = log._signer is not None
        self.blobs = BlobStore(home / "blobs", max_size=config.max_document_bytes, database=config.database,
                               password=config.database_password() if config.database else None)
        self.local_tsa: LocalTsa | None = None
        self.local_tsa_error: LocalTsaError | None = None
        if config.local_tsa:
            try:
                self.local_tsa = self._local_tsa()
            except LocalTsaError as e:  # a broken TSA stops anchoring with it, never appends
                logger.error("the local TSA is unavailable: %s", e)
                self.local_tsa_error = e
        self.sequencer = (Sequencer(log, max_batch=config.batch_max, max_delay_ms=config.batch_delay_ms)
                          if self.writer else None)
        self._current = _Batch()
        self._batch_txn = -1

    # ---- lifecycle of the ledger itself -------------------------------------------------------

    @classmethod
    def init(cls, home: Path, *, origin: str | None = None, clock: Clock = utc_now,
             database: str | None = None) -> Ledger:
        """A new ledger in `home`: its database the SQLite file there, or `database` (a postgresql:// URL,
        written into config.toml; else config.toml's `database`)."""
        # Everything is checked before anything is written: a refused init leaves the folder as it was.
        home.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds openings, codes and keys: owner only
        if (home / DB_NAME).exists():
            raise RefusedError(f"a ledger already exists in {home}", code="exists", status=409)
        if (home / KEY_NAME).exists() and (database or load_config(home).database):
            raise RefusedError(f"{home / KEY_NAME} exists: this folder holds (part of) a ledger already; init a new "
                               "ledger in an empty folder", code="exists", status=409)
        if (orphan := orphan_key(home)) is not None:
            raise RefusedError(orphan, code="exists", status=409)
        cfg_path = home / "config.toml"
        config = load_config(home)
        if origin:
            config = config.replace(origin=origin)
        if database:
            if why := database_problem(database):
                raise RefusedError(f"--database: {why}", code="bad_database")
            config = config.replace(database=database)
        if config.database:
            TileLog.check_new(config.database, config.database_password())
        try:
            signer = LogSigner.generate(config.origin)  # the origin is the key's name: checked here
        except FormatError as e:
            raise RefusedError(f"origin {config.origin!r} cannot name a log: {e}", code="bad_origin") from None
        os.chmod(home, 0o700)  # a folder that was there already becomes the owner's only too
        if not cfg_path.exists() or origin or database:
            cfg_path.write_text(config.to_toml())
        signer.save(home / KEY_NAME)
        (home / PUB_NAME).write_text(signer.verifier_key + "\n")
        if not (home / TSA_DIR).exists():
            create_local_tsa(home / TSA_DIR, now=clock())
        if not (home / SEAL_DIR).exists():  # the platform's e-seal, under a local CA (not accredited)
            create_seal_ca(home / SEAL_DIR, organisation=config.organisation, now=clock(),
                           crl_base_url=config.public_url.rstrip("/") + "/seal-ca/")
        log = TileLog.create(home / DB_NAME, signer, clock, database=config.database,
                             password=config.database_password())
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):  # SQLite gives new files the database's mode
            if (home / name).exists():
                os.chmod(home / name, 0o600)
        return cls(home, config, log, clock)

    @classmethod
    def open(cls, home: Path, *, clock: Clock = utc_now) -> Ledger:
        config = load_config(home)
        signer = LogSigner.load(home / KEY_NAME, config.origin)
        log = TileLog.open(home / DB_NAME, signer, clock, database=config.database,
                           password=config.database_password())
        if "api_keys.seal" in log.added_columns:  # keys made before seals: sealed once, as the column is added
            seal_unsealed(log)
        if {"versions", "seal_uses", "holdings"} & log.added_columns:  # a ledger made before they were kept: filled once
            _backfill(log, log.added_columns)
        logged = log.latest_checkpoint.split("\n", 1)[0] if log.latest_checkpoint else config.origin
        if logged != config.origin:
            log.close()
            raise RefusedError(f"config.toml gives origin {config.origin!r}, but this ledger's checkpoints are signed "
                               f"for {logged!r}: a log's origin never changes; put it back in config.toml",
                               code="bad_origin")
        return cls(home, config, log, clock)

    @classmethod
    def open_reader(cls, home: Path) -> Ledger:
        """Open for reading only (a portal worker): no private key, no writer, no anchoring."""
        config = load_config(home)
        try:
            verifier = Ed25519Verifier.from_string((home / PUB_NAME).read_text())
        except FileNotFoundError:
            verifier = LogSigner.load(home / KEY_NAME, config.origin).verifier
        log = TileLog.open_reader(home / DB_NAME, database=config.database, password=config.database_password())
        return cls(home, config, log, utc_now, verifier)

    def close(self) -> None:
        if self.sequencer is not None:
            self.sequencer.close()
        self.log.close()

    @property
    def _seq(self) -> Sequencer:
        if self.sequencer is None:
            raise StorageError("this process only reads the ledger; writes go to the writer process")
        return self.sequencer

    def _local_tsa(self) -> LocalTsa:
        """The embedded local TSA (`tsa/`); a ledger made before it existed gets one now. On PostgreSQL its
        serial numbers come from the database, which every host shares (`ledger.anchoring.tsa_serial`)."""
        from ledger.anchoring.tsa_serial import database_serials

        directory = self.home / TSA_DIR
        if not directory.exists():
            try:
                create_local_tsa(directory, now=self.clock())
                logger.warning("created a local TSA in %s (this ledger had none)", directory)
            except FileExistsError:
                pass  # another process made it first
        serials = database_serials(directory, self.config.database, self.config.database_password())
        return LocalTsa.load(directory, policy_oid=self.config.local_tsa_policy, clock=self.clock, serials=serials)

    @property
    def verifier_key(self) -> str:
        return self.verifier.to_string()

    # ---- writing ------------------------------------------------------------------------------

    def submit(self, tenant: str, events: list[InputEvent] | bytes | list[Any]) -> Future[Any]:
        if not (isinstance(events, list) and events and isinstance(events[0], InputEvent)):
            events = parse_events(events, max_bytes=self.config.max_request_bytes,
                                  max_events=self.config.max_events_per_request)
        return self._seq.submit(_Request(self, tenant, events))

    async def asubmit(self, tenant: str, events: list[InputEvent],
                      idem: Idempotency | None = None) -> list[dict[str, Any]]:
        """Submit from asyncio; returns the acknowledgements once the events are durable. With `idem`, the
        acknowledgements are kept, in the same transaction, as the answer to that request's retries."""
        result: list[dict[str, Any]] = await self._seq.asubmit(_Request(self, tenant, events, idem))
        return result

    def idempotency_cutoff(self) -> str:
        """Idempotent answers made before this time are no longer kept."""
        return format_time(lambda: self.clock() - timedelta(hours=self.config.idempotency_hours))

    def _check_idempotency(self, log: TileLog, batch: _Batch, idem: Idempotency) -> None:
        """In the writer's transaction: a request whose Idempotency-Key already has an answer (committed,
        or in this batch) appends nothing; the API answers the retry with the first answer."""
        row = log.conn.execute("SELECT created FROM idempotency WHERE key_id = ? AND idem_key = ?",
                               (idem.key_id, idem.key)).fetchone()
        if (idem.key_id, idem.key) in batch.answers or (row is not None and row[0] >= self.idempotency_cutoff()):
            raise RefusedError("a request with this Idempotency-Key was acknowledged already; send it again to get "
                               "the first answer", code="idempotency_replay", status=409)

    def stored_answer(self, key_id: str, key: str) -> tuple[str, list[dict[str, Any]]] | None:
        """The first answer to a request with this Idempotency-Key (its fingerprint, its acknowledgements
        with their checkpoint sizes), if it is kept."""
        r = self.log._reader()
        row = r.execute("SELECT fingerprint, acks, created FROM idempotency WHERE key_id = ? AND idem_key = ?",
                        (key_id, key)).fetchone()
        if row is None or row[2] < self.idempotency_cutoff():
            return None
        acks: list[dict[str, Any]] = orjson.loads(row[1])
        (size,) = r.execute("SELECT min(size) FROM checkpoints WHERE size > ?",
                            (max(a["index"] for a in acks),)).fetchone()
        for a in acks:  # the checkpoint their commit made: the first that holds them all
            a["checkpoint_size"] = size
        return str(row[0]), acks

    async def acatch_up(self) -> int:
        """If another process appended to this ledger since this one last wrote, take its tree in now
        (published as this process's latest); returns the size. One indexed lookup when nothing is new."""
        newest = self.log.newest_size()
        if newest is None or newest <= self.log.size:
            return self.log.size
        size: int = await self._seq.asubmit(CatchUp())
        return size

    def commit_here(self, requests: Sequence[tuple[str, list[InputEvent], Callable[[bool, Any], None]]
                                             | tuple[str, list[InputEvent], Callable[[bool, Any], None],
                                                     Idempotency | None]]) -> None:
        """Sequence these requests, each (tenant, events, fn[, idempotency key]), as one batch on the calling
        thread; then `fn(True, acks)` once its events are durable, or `fn(False, refusal)`
        (`Sequencer.commit_here`)."""
        self._seq.commit_here([(_Request(self, r[0], r[1], r[3] if len(r) > 3 else None), r[2])
                               for r in requests])

    def append(self, tenant: str, events: list[InputEvent] | bytes | list[Any]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.submit(tenant, events).result()
        return result

    def _batch(self, log: TileLog) -> _Batch:
        """This write transaction's batch: made on its first request, written just before it commits.

        Valid within one transaction only: a failed batch must not leave stale state behind.
        """
        if self._batch_txn != log.transactions:
            self._current = _Batch()
            self._batch_txn = log.transactions
            log.before_commit(self._current.write)
        return self._current

    def _load_env(self, tenant: str, ref: str, batch: _Batch) -> _Env | None:
        if batch.known((tenant, ref)):
            return batch.envs.get((tenant, ref))
        return self._load_envs(tenant, [ref], batch).get(ref)

    def _load_envs(self, tenant: str, refs: list[str], batch: _Batch) -> dict[str, _Env]:
        """Load envelopes by reference into the batch (one query for all of them; absent ones noted)."""
        c = self.log.conn
        if len(refs) == 1:
            rows = c.execute("SELECT ref, env, seq, last_leaf, state FROM envelopes WHERE tenant = ? AND ref = ?",
                             (tenant, refs[0])).fetchall()
        else:
            rows = c.execute("SELECT ref, env, seq, last_leaf, state FROM envelopes WHERE tenant = ? AND ref IN"
                             " (SELECT value FROM json_each(?))", (tenant, json.dumps(refs))).fetchall()
        out: dict[str, _Env] = {}
        if rows:
            envs = {row[1]: row for row in rows}
            refs_of: dict[str, dict[tuple[str, str], int]] = {env: {} for env in envs}
            q = ("SELECT env, kind, ref, ordinal FROM refs WHERE env = ?" if len(envs) == 1 else
                 "SELECT env, kind, ref, ordinal FROM refs WHERE env IN (SELECT value FROM json_each(?))")
            for env, k, r, n in c.execute(q, (next(iter(envs)) if len(envs) == 1 else json.dumps(list(envs)),)):
                refs_of[env][(k, r)] = n
            for ref, env, seq, last_leaf, state in rows:
                out[ref] = batch.envs[(tenant, ref)] = _Env(
                    env, tenant, ref, EnvelopeState.from_json(json.loads(state)), seq, last_leaf, refs_of[env])
        batch.absent.update((tenant, r) for r in refs if r not in out)
        return out

    # ---- reading ------------------------------------------------------------------------------

    def envelope(self, tenant: str, ref: str) -> dict[str, Any]:
        r = self.log._reader()
        row = r.execute("SELECT env, status, seq, first_index, last_index, created, updated, state FROM envelopes"
                        " WHERE tenant = ? AND ref = ?", (tenant, ref)).fetchone()
        if row is None:
            raise NotFoundError(f"no envelope {ref!r}", code="unknown_envelope")
        env, status, seq, first, last, created, updated, state = row
        return {"envelope": ref, "env": env, "status": status, "events": seq, "first_index": first,
                "last_index": last, "created": created, "updated": updated, "state": json.loads(state)}

    def prove(self, index: int, size: int | None = None) -> TlogProof:
        """A C2SP tlog-proof of entry `index` against the checkpoint of `size` (default: the latest),
        carrying every witness cosignature kept for that checkpoint."""
        size = self.log.size if size is None else size
        if not 0 <= index < size:
            raise NotFoundError(f"entry {index} is not in a tree of size {size}", code="bad_index")
        note = cosigned_checkpoint(self, size)
        return TlogProof(index, tuple(self.log.inclusion_proof(index, size)), parse_checkpoint(note))

    def envelope_head(self, env: str, size: int) -> str:
        """The log's signed statement (a signed note, `verifier.head`) that, at the time it is signed,
        envelope `env`'s last event in the whole log is its last event in the tree of `size`. Only the
        writer holds the key to sign it.

        Refused (409, "stale_size") when the envelope has an event at an index >= `size` in the log as
        this process's database holds it: a fresh statement about an older tree would vouch for a
        view that hides that event (a void, a withdrawal). The caller asks again at the latest size.
        """
        if size <= 0:
            raise NotFoundError(f"no published tree of size {size}", code="bad_size")
        self.log.checkpoint_at(size)  # published, though perhaps a moment ago: a worker may see it first
        # Between two batches of this writer: an event is stamped with its time when its batch stages it,
        # before the batch commits, so a statement signed meanwhile could leave out an event stamped
        # before it. Here every event stamped so far is committed, and any later one is stamped later.
        # (Another process's writer, `ledger append`, stamps and commits on its own: a statement may
        # miss its event of the last moments; it is refused as stale the next time.)
        with self._seq.between_batches():
            signed_at = format_time(self.clock)  # before the read: what it finds already held at this time
            # one pass over the envelope's rows (primary key (env, seq)): its events in the tree, and its
            # last index in the whole log
            events, last, newest = self.log._reader().execute(  # an aggregate: always one row
                "SELECT count(CASE WHEN idx < ? THEN 1 END), max(CASE WHEN idx < ? THEN idx END), max(idx)"
                " FROM envelope_entries"
                " WHERE env = ?", (size, size, env)).fetchone()
        if newest is not None and newest >= size:  # even if none is in the tree: it was made after it
            raise RefusedError(f"the envelope has events after tree size {size} (its last is at index {newest}); "
                               "ask again at the latest tree size", code="stale_size", status=409)
        if not events:
            raise NotFoundError("the envelope has no events in that tree", code="unknown_envelope")
        # `size` was published (checkpoint_at above), if perhaps by another process this one has not
        # taken in yet: its entries are read in the database as they are
        head = EnvelopeHead(self.log.origin, env, size, events, last, leaf_hash(self.log.entry(last, within=size)),
                            signed_at)
        body = head.body()
        return body + "\n" + self.log.signer.sign(body).line()

    def key_fingerprint(self) -> str:
        """What a QR code pins of the log key: the first 16 bytes of SHA-256 of the Ed25519 public key, hex."""
        return hashlib.sha256(self.verifier.public_key).hexdigest()[:PIN_HEX]

    def qr_url(self, code: str) -> str:
        """The URL a printed copy's QR code holds: `<public_url>/v/<code>#k=<key fingerprint>&d=<sha prefix>`.

        The fragment never reaches a server: it pins the log key and the document for the in-browser check.
        """
        row = self.log._reader().execute(
            "SELECT d.sha256 FROM copies c JOIN documents d ON d.env = c.env AND d.document = c.document"
            " WHERE c.code = ?", (code,)).fetchone()
        if row is None:
            raise NotFoundError("no printed copy has this code", code="unknown_code")
        base = self.config.public_url.rstrip("/")
        return f"{base}/v/{code}#k={self.key_fingerprint()}&d={row[0][:PIN_HEX]}"

    def check_access_code(self, env: str, document: int, code_text: str) -> bool:
        """Does this access code open the document (policy "code")? Constant-time over the stored hash."""
        import hmac

        code = qr.fold(code_text) or ""  # typed as a QR code's code is (full-width, dashes, lower case)
        row = self.log._reader().execute("SELECT code_sha256 FROM access_codes WHERE env = ? AND document = ?",
                                         (env, document)).fetchone()
        return row is not None and hmac.compare_digest(row[0], qr.code_hash(code))

    def tenant_of_entry(self, index: int) -> str | None:
        """The tenant whose envelope holds entry `index`, or None."""
        row = self.log._reader().execute(
            "SELECT e.tenant FROM envelope_entries x JOIN envelopes e ON e.env = x.env WHERE x.idx = ?",
            (index,)).fetchone()
        return str(row[0]) if row else None

    def prove_anchored(self, index: int, tsa: str | None = None) -> AnchoredBundle:
        """Entry `index`'s trusted time: the earliest anchored checkpoint holding it, with its tokens."""
        # imported here: anchoring loads aiohttp and pyHanko, which most commands never need
        from ledger.anchoring.anchor import anchored_proof

        return anchored_proof(self, index, tsa)
