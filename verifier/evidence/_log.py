"""The log side of a bundle check: checkpoints, consistency, cosignatures, entries and their chain, the
inclusion proofs, the envelope head, the replayed lifecycle and the openings (the anchors: `_anchors`).

Each step adds lines to the checklist of `_Ctx` and goes on after a failure (so a tampered bundle is
named in every place it shows), except where a later step has nothing to stand on. Steps are numbered
after DESIGN.md §3; the standards are cited where they apply (RFC 9162 §2.1.3-4, C2SP tlog-checkpoint,
tlog-cosignature and tlog-proof).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from verifier.anchored import AnchoredReport
from verifier.checkpoint import SignedCheckpoint, verify_checkpoint
from verifier.entry import Entry, strict_loads
from verifier.errors import FormatError, VerificationError
from verifier.evidence.manifest import COMMITMENT_FIELDS, Manifest, opening_path
from verifier.evidence.result import Checklist
from verifier.head import verify_head
from verifier.lifecycle import EnvelopeState, LifecycleError, apply
from verifier.merkle import verify_consistency
from verifier.note import CosignatureVerifier, Ed25519Verifier, cosignature_time
from verifier.tlogproof import hash_lines, parse_tlog_proof, verify_tlog_proof

NOTE_LIMIT = 1 << 16
PROOF_LIMIT = 1 << 17
ENTRY_LIMIT = 0xFFFF
TOKEN_LIMIT = 1 << 20
CERT_LIMIT = 1 << 20
OPENING_LIMIT = 1 << 16
MIN_SALT = 16
IN_PROGRESS = ("draft", "sent")


class Files(Protocol):
    """The files of a bundle: a zip (`archive.Archive`), or the ledger's own before it writes one."""

    @property
    def names(self) -> list[str]: ...

    def read(self, name: str, limit: int) -> bytes: ...

    def sha256(self, name: str) -> tuple[str, int]: ...


@dataclass(frozen=True)
class Trust:
    """What the caller trusts; None: take it from the bundle itself (and say so)."""

    log_key: Ed25519Verifier | None = None
    tsa_roots: tuple[bytes, ...] | None = None
    seal_roots: tuple[bytes, ...] | None = None
    witnesses: tuple[CosignatureVerifier, ...] | None = None


@dataclass
class _Ctx:
    files: Files
    manifest: Manifest
    trust: Trust
    at: datetime
    cl: Checklist
    caveats: list[str] = field(default_factory=list)
    key: Ed25519Verifier | None = None
    checkpoints: dict[int, SignedCheckpoint] = field(default_factory=dict)
    entries: list[tuple[str, Entry]] = field(default_factory=list)  # (file, entry), by seq
    proofs: dict[int, str] = field(default_factory=dict)  # index -> proof text that verified
    tsa_roots: list[bytes] = field(default_factory=list)
    seal_roots: list[bytes] = field(default_factory=list)
    anchored: AnchoredReport | None = None
    witnessed: list[tuple[str, int, int]] = field(default_factory=list)  # witness, size, unix time

    def read(self, name: str, limit: int, check: str) -> bytes | None:
        try:
            return self.files.read(name, limit)
        except VerificationError as e:
            self.cl.fail(check, str(e), name)
            return None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 text (byte {e.start})") from None


def check_key(c: _Ctx) -> bool:
    """(1) the log key: the caller's, which the bundle must name, or the bundle's own."""
    lg = c.manifest.log
    try:
        bundled = Ed25519Verifier.from_string(lg.verifier_key)
    except FormatError as e:
        return c.cl.fail("log key", f"manifest.json's verifier_key is not a log key: {e}", "manifest.json")
    if c.trust.log_key is not None:
        c.key = c.trust.log_key
        if bundled != c.key:
            return c.cl.fail("log key", f"the bundle is of the log key {lg.verifier_key}, not of the key given",
                             "manifest.json")
        detail = f"the key given, {c.key.to_string()}"
    else:
        c.key = bundled
        c.caveats.append("the log key was taken from the bundle itself (give --log-key to check it against the "
                         "key you trust)")
        detail = f"TAKEN FROM THE BUNDLE: {c.key.to_string()}"
    if c.key.name != lg.origin:
        return c.cl.fail("log key", f"the key is for log {c.key.name!r}, the manifest says {lg.origin!r}",
                         "manifest.json")
    return c.cl.add("log key", True, detail)


def check_checkpoints(c: _Ctx) -> None:
    """(2) each checkpoint signed by the log key (C2SP tlog-checkpoint), its .body the exact note text;
    (3) consistency proofs between them (RFC 9162 §2.1.4.2); (4) witness cosignatures (tlog-cosignature)."""
    assert c.key is not None
    problems: list[tuple[str, str | None]] = []
    for ref in c.manifest.log.checkpoints:
        note, body = c.read(ref.note, NOTE_LIMIT, "checkpoints"), c.read(ref.body, NOTE_LIMIT, "checkpoints")
        if note is None or body is None:
            continue
        try:
            signed = verify_checkpoint(note, c.key)
        except VerificationError as e:
            problems.append((f"{ref.note}: {e}", ref.note))
            continue
        if signed.checkpoint.size != ref.size:
            problems.append((f"{ref.note} is of size {signed.checkpoint.size}, the manifest says {ref.size}", ref.note))
            continue
        if body != signed.note.text.encode():
            problems.append((f"{ref.body} is not the text of {ref.note} (what its anchors time-stamp)", ref.body))
        c.checkpoints[ref.size] = signed
    size = c.manifest.log.size
    if size not in c.checkpoints and not problems:
        problems.append((f"the proof checkpoint (size {size}) is not in the bundle", "manifest.json"))
    c.cl.family("checkpoints", problems, f"{len(c.checkpoints)} checkpoint(s) signed by the log key, bodies exact")
    linked = _consistency(c, size)
    _cosignatures(c, linked)


def _consistency(c: _Ctx, size: int) -> set[int]:
    """The checkpoint sizes proven consistent with the proof checkpoint (itself included)."""
    linked = {size} if size in c.checkpoints else set()
    problems: list[tuple[str, str | None]] = []
    for ref in c.manifest.log.consistency:
        data = c.read(ref.file, PROOF_LIMIT, "consistency")
        old, new = c.checkpoints.get(ref.old), c.checkpoints.get(ref.new)
        if data is None or old is None or new is None:
            if data is not None:
                problems.append((f"{ref.file} links checkpoints {ref.old} and {ref.new}, not both verified", ref.file))
            continue
        try:
            verify_consistency(ref.old, ref.new, old.checkpoint.root, new.checkpoint.root, _hash_lines(data))
        except VerificationError as e:
            problems.append((f"{ref.file}: {e}", ref.file))
            continue
        if size in (ref.old, ref.new):
            linked |= {ref.old, ref.new}
    if c.manifest.log.consistency:
        c.cl.family("consistency", problems, f"{len(c.manifest.log.consistency)} consistency proof(s) hold: the log "
                    "only grew between the checkpoints")
    return linked


def _hash_lines(data: bytes) -> list[bytes]:
    text = _text(data)
    if text and not text.endswith("\n"):
        raise FormatError("the last line does not end with a newline")
    return hash_lines(text.split("\n")[:-1])


def _cosignatures(c: _Ctx, linked: set[int]) -> None:
    given = c.trust.witnesses is not None
    witnesses: list[CosignatureVerifier] = list(c.trust.witnesses or ())
    if not given:
        for text in c.manifest.log.witnesses:
            try:
                witnesses.append(CosignatureVerifier.from_string(text))
            except FormatError as e:
                c.cl.fail("cosignatures", f"manifest.json names a witness key that is not one ({e})", "manifest.json")
    problems: list[tuple[str, str | None]] = []
    by_size = {ref.size: ref.note for ref in c.manifest.log.checkpoints}
    for size in sorted(linked):
        note = c.checkpoints[size].note
        for w in witnesses:
            sig = next((s for s in note.signatures if (s.name, s.key_id) == (w.name, w.key_id)), None)
            if sig is None:
                continue
            if not w.verify(note.text, sig.signature):
                problems.append((f"the cosignature of {w.name} on checkpoint {size} does not verify", by_size[size]))
                continue
            c.witnessed.append((w.name, size, cosignature_time(sig)))
    names = sorted({w for w, _, _ in c.witnessed})
    if given:
        for w in witnesses:
            if w.name not in names:
                problems.append((f"witness {w.name} cosigned no checkpoint the proofs reach", None))
    if problems:
        c.cl.family("cosignatures", problems, "")
    elif names:
        src = "the witness key(s) given" if given else "witness keys TAKEN FROM THE BUNDLE"
        c.cl.add("cosignatures", True, f"cosigned by {', '.join(names)} ({src}), on checkpoint(s) "
                 f"{', '.join(str(s) for s in sorted({s for _, s, _ in c.witnessed}))}")
        if not given:
            c.caveats.append("the witness keys were taken from the bundle (give --witness to name the notaries "
                             "you trust)")
    else:
        c.cl.add("cosignatures", True, "no witness cosigned the checkpoints the proofs reach (not witnessed; only "
                 "the log key and the anchors vouch for them)")


def check_entries(c: _Ctx) -> None:
    """(5) every entry in canonical form (RFC 8785), of this envelope; (6) the chain: seq 0, 1, ... and each
    prev the leaf hash of the one before; (7) each entry's tlog-proof against the proof checkpoint."""
    assert c.key is not None
    m = c.manifest
    problems: list[tuple[str, str | None]] = []
    last: Entry | None = None
    last_index = -1
    for n, ref in enumerate(m.entries):
        data = c.read(ref.file, ENTRY_LIMIT, "entries")
        if data is None:
            continue
        try:
            e = Entry.from_bytes(data)
        except VerificationError as err:
            problems.append((f"{ref.file} is not a valid entry: {err}", ref.file))
            continue
        if e.env != m.envelope.env:
            problems.append((f"{ref.file} is of envelope {e.env}, not {m.envelope.env}", ref.file))
        elif e.seq != ref.seq or ref.seq != n:
            problems.append((f"{ref.file} holds seq {e.seq}; the chain needs seq {n} here", ref.file))
        elif n > 0 and (last is None or e.prev != last.leaf.hex()):
            problems.append((f"{ref.file} (seq {e.seq}) does not link to the entry before it (prev)", ref.file))
        elif ref.index <= last_index:
            problems.append((f"{ref.file}: index {ref.index} is not after the entry before it", ref.file))
        last, last_index = e, ref.index
        c.entries.append((ref.file, e))
    if len(m.entries) != m.envelope.events:
        problems.append((f"the manifest lists {len(m.entries)} entries but says the envelope has "
                         f"{m.envelope.events}", "manifest.json"))
    if not m.entries:
        problems.append(("the bundle holds no entry", "manifest.json"))
    c.cl.family("entries", problems, f"{len(c.entries)} entries in canonical form, one unbroken chain (seq 0-"
                f"{len(c.entries) - 1}, each prev linking)")
    _proofs(c)


def _proofs(c: _Ctx) -> None:
    assert c.key is not None
    size = c.manifest.log.size
    cp = c.checkpoints.get(size)
    problems: list[tuple[str, str | None]] = []
    parsed = {file: e for file, e in c.entries}
    for ref in c.manifest.entries:
        e = parsed.get(ref.file)
        data = c.read(ref.proof, PROOF_LIMIT, "proofs")
        if e is None or data is None:
            continue
        try:
            proof = verify_tlog_proof(data, e.raw, c.key)
        except VerificationError as err:
            problems.append((f"{ref.proof} does not prove {ref.file}: {err}", ref.proof))
            continue
        if proof.index != ref.index:
            problems.append((f"{ref.proof} proves index {proof.index}, not {ref.index} ({ref.file})", ref.proof))
        elif cp is None or proof.checkpoint.note.text != cp.note.text:
            problems.append((f"{ref.proof} is against another checkpoint than checkpoints/{size}.txt", ref.proof))
        else:
            c.proofs[ref.index] = data.decode()
    c.cl.family("proofs", problems, f"every entry is in the log at its index: {len(c.proofs)} inclusion proofs "
                f"(RFC 9162) to checkpoint {size}")


def check_head(c: _Ctx) -> None:
    """(8) the log's signed statement that, when signed, the envelope had no event beyond these."""
    assert c.key is not None
    path = c.manifest.log.head
    if path is None:
        c.cl.add("envelope head", True, "none in the bundle: that these are all of the envelope's events rests on "
                 "the export (the log did not sign it)")
        return
    data = c.read(path, NOTE_LIMIT, "envelope head")
    if data is None:
        return
    try:
        head = verify_head(_text(data), c.key, now=None, max_age=timedelta(0), size=c.manifest.log.size)
    except VerificationError as e:
        c.cl.fail("envelope head", str(e), path)
        return
    last_file, last = c.entries[-1] if c.entries else (None, None)
    ref = c.manifest.entries[-1] if c.manifest.entries else None
    if last is None or ref is None or head.env != last.env or head.events != len(c.entries) or \
            head.last_index != ref.index or head.last_leaf != last.leaf:
        c.cl.fail("envelope head", f"the log says the envelope had {head.events} event(s), the last at index "
                  f"{head.last_index}; the bundle's entries end otherwise ({last_file})", path)
        return
    c.cl.add("envelope head", True, f"the log signed at {head.time} that the envelope's last event was index "
             f"{head.last_index}: the bundle holds every one of its {head.events} events")


def check_lifecycle(c: _Ctx) -> str | None:
    """(9) the lifecycle replayed from the entries (verifier.lifecycle) gives the manifest's status."""
    m = c.manifest
    state: EnvelopeState | None = None
    for file, e in c.entries:
        try:
            state = apply(state, e.type, e.data, e.time)
        except LifecycleError as err:
            c.cl.fail("lifecycle", f"{file}: {e.type} is not allowed here: {err}", file)
            return None
    if state is None:
        return None
    if state.status != m.envelope.status:
        c.cl.fail("lifecycle", f"the entries replay to status {state.status!r}, the bundle says "
                  f"{m.envelope.status!r}", "manifest.json")
    elif m.interim != (state.status in IN_PROGRESS):
        c.cl.fail("lifecycle", f"the bundle is marked {'interim' if m.interim else 'final'}, but the envelope is "
                  f"{state.status}", "manifest.json")
    else:
        c.cl.add("lifecycle", True, f"the events replay to status {state.status!r}"
                 + (" (in progress: an interim bundle)" if m.interim else ""))
    return state.status


def check_openings(c: _Ctx) -> dict[str, dict[str, Any]]:
    """(10) each opening opens its commitment, SHA-256(salt || value), and the entries hold that commitment;
    the envelope's owner commitment opens to the tenant and reference the bundle names."""
    m = c.manifest
    used: dict[str, str] = {}
    for file, e in c.entries:
        for k in COMMITMENT_FIELDS:
            v = e.data.get(k)
            if isinstance(v, str):
                used.setdefault(v, f"{k} of {file}")
    opened: dict[str, dict[str, Any]] = {}
    problems: list[tuple[str, str | None]] = []
    for path in m.openings:
        data = c.read(path, OPENING_LIMIT, "openings")
        if data is None:
            continue
        try:
            o = strict_loads(data, max_bytes=OPENING_LIMIT)
            commitment, salt, value = o["commitment"], bytes.fromhex(o["salt"]), o["value"]
            parsed = strict_loads(value, max_bytes=OPENING_LIMIT)
            if not isinstance(commitment, str) or not isinstance(parsed, dict):
                raise TypeError
        except (VerificationError, KeyError, TypeError, ValueError):
            problems.append((f"{path} is not an opening {{commitment, salt, value}}", path))
            continue
        if path != opening_path(commitment):
            problems.append((f"{path} holds the opening of {commitment}", path))
        elif len(salt) < MIN_SALT:
            problems.append((f"{path}: a salt of {len(salt)} bytes (at least {MIN_SALT})", path))
        elif hashlib.sha256(salt + value.encode()).hexdigest() != commitment:
            problems.append((f"{path} does not open its commitment: SHA-256(salt || value) differs", path))
        elif commitment not in used:
            problems.append((f"{path} opens a commitment no entry of the bundle holds", path))
        else:
            opened[commitment] = parsed
    owner = next((e.data.get("owner") for _, e in c.entries if e.type == "envelope.created"), None)
    if isinstance(owner, str) and owner in opened and \
            opened[owner] != {"tenant": m.envelope.tenant, "ref": m.envelope.ref}:
        problems.append((f"the envelope's owner commitment opens to {json.dumps(opened[owner])}, not the bundle's "
                         f"tenant {m.envelope.tenant!r} and reference {m.envelope.ref!r}", opening_path(owner)))
    erased = len(set(used) - set(opened))
    c.cl.family("openings", problems, f"{len(opened)} opening(s) open their commitments"
                + (f"; {erased} commitment(s) without an opening (erased or not exported)" if erased else ""))
    return opened


def proof_hashes(c: _Ctx) -> list[dict[str, Any]]:
    """Each entry's inclusion proof, for the report: index, tree size, hashes (hex)."""
    out = []
    for ref in c.manifest.entries:
        text = c.proofs.get(ref.index)
        if text is not None:
            p = parse_tlog_proof(text)
            out.append({"index": p.index, "size": p.checkpoint.checkpoint.size, "hashes": [h.hex() for h in p.hashes]})
    return out


def entries_of(c: _Ctx) -> Sequence[tuple[str, Entry]]:
    return c.entries
