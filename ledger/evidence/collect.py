"""Gather one envelope's evidence from the ledger, as the files of a bundle (`verifier.evidence.manifest`).

What it gathers, all about one checkpoint (the *proof checkpoint*, anchored, chosen by the caller):
the exact bytes of the envelope's entries in it, a C2SP tlog-proof of each, that checkpoint with its
witnesses' cosignatures (and, when a witness cosigned another checkpoint, that one with an RFC 9162
consistency proof between the two), the log's signed statement of the envelope's last event if the
caller has one, every RFC 3161 anchor of that checkpoint and its renewals (as TimeStampResp files, so
`openssl ts -verify -in` reads them), the roots of the configured TSAs, the openings of the entries'
commitments, the platform seal's certificate and root, and every version of each document whose
bytes the blob store holds (the others are listed as registered by hash only). Small files are kept
in memory; documents stay in the blob store, hashed once here and streamed into the zip later.

What it does not do: check anything (`verifier.evidence.bundle`), write the report or the zip
(`ledger.evidence.bundle`), or decide which checkpoint (`ledger.evidence.bundle.proof_size`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ledger.anchoring.witness import cosigned_checkpoint
from ledger.config import LOCAL_TSA_NAME, read_cert
from ledger.documents.sealca import ROOT_CERT_FILE as SEAL_ROOT_FILE
from ledger.documents.sealca import SEAL_CERT_FILE
from ledger.envelopes.core import SEAL_DIR, TSA_DIR, Ledger
from ledger.envelopes.printing import held_by
from ledger.errors import LedgerError, NotFoundError
from verifier.checkpoint import parse_checkpoint
from verifier.entry import Entry
from verifier.errors import FormatError
from verifier.evidence import manifest as fmt
from verifier.evidence.manifest import (
    COMMITMENT_FIELDS,
    AnchorRef,
    CheckpointRef,
    ConsistencyRef,
    DocumentRef,
    EntryRef,
    EnvelopeRef,
    FileRef,
    LogRef,
    Manifest,
    VersionRef,
)
from verifier.lifecycle import EnvelopeState, apply
from verifier.tlogproof import TlogProof

IN_PROGRESS = ("draft", "sent")
MAX_EVENTS = 100_000  # an envelope's events in one bundle
_CHUNK = 1 << 20


@dataclass
class Member:
    """One file of the bundle: its bytes in memory, or a document in the blob store."""

    path: str
    sha256: str
    size: int
    data: bytes | None = None
    blob: Path | None = None

    @property
    def compressed(self) -> bool:
        """Deflate text; PDFs and images are compressed already."""
        return self.blob is None and not self.path.endswith((".pdf", ".tsr"))


class Collected:
    """The evidence files of one envelope (the verifier's `Files`), and their manifest."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.manifest: Manifest | None = None
        self.entries: list[tuple[int, Entry]] = []
        self.openings: dict[str, dict[str, Any]] = {}
        self.refs: dict[tuple[str, int], str] = {}
        self.tenant = ""

    def add(self, path: str, data: bytes) -> str:
        self.members[path] = Member(path, hashlib.sha256(data).hexdigest(), len(data), data=data)
        return path

    def add_blob(self, path: str, blob: Path) -> Member:
        h, n = hashlib.sha256(), 0
        with open(blob, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                n += len(chunk)
        member = self.members[path] = Member(path, h.hexdigest(), n, blob=blob)
        return member

    # the verifier's `Files`
    @property
    def names(self) -> list[str]:
        return sorted(self.members)

    def read(self, name: str, limit: int) -> bytes:
        m = self.members.get(name)
        if m is None:
            raise FormatError(f"the bundle has no file {name}", code="missing_file")
        if m.size > limit:
            raise FormatError(f"{name} is {m.size} bytes, more than the {limit} such a file may have",
                              code="file_too_large")
        return m.data if m.data is not None else m.blob.read_bytes() if m.blob else b""

    def sha256(self, name: str) -> tuple[str, int]:
        m = self.members.get(name)
        if m is None:
            raise FormatError(f"the bundle has no file {name}", code="missing_file")
        return m.sha256, m.size


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _as_der(data: bytes) -> list[bytes]:
    """Every certificate of a PEM or DER file, as DER."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data)]
    return [data]


def _response(token: bytes) -> bytes:
    """A granted TimeStampResp around a stored TimeStampToken (RFC 3161 §2.4.2): what `openssl ts -in` reads."""
    return bytes(tsp.TimeStampResp({"status": {"status": "granted"},
                                    "time_stamp_token": cms.ContentInfo.load(token)}).dump())


def _ext(head: bytes) -> str:
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return "bin"


def collect(led: Ledger, tenant: str, ref: str, *, size: int, head: str | None, lang: str, generated: str,
            portal_url: str | None) -> Collected:
    """The evidence files of envelope `ref` of `tenant`, about the proof checkpoint of `size`."""
    col = Collected()
    col.tenant = tenant
    info = led.envelope(tenant, ref)
    env = str(info["env"])
    r = led.log._reader()
    rows = r.execute("SELECT seq, idx FROM envelope_entries WHERE env = ? AND idx < ? ORDER BY seq LIMIT ?",
                     (env, size, MAX_EVENTS)).fetchall()
    if not rows:
        raise NotFoundError(f"envelope {ref!r} has no event in the tree of size {size}", code="unknown_envelope")
    col.refs = {(k, int(n)): str(x) for k, x, n in r.execute("SELECT kind, ref, ordinal FROM refs WHERE env = ?",
                                                              (env,))}
    note = cosigned_checkpoint(led, size)
    cp = parse_checkpoint(note)
    state: EnvelopeState | None = None
    entries: list[EntryRef] = []
    for seq, idx in rows:
        raw = led.log.entry(int(idx), within=size)
        e = Entry.from_bytes(raw)
        state = apply(state, e.type, e.data, e.time)
        col.entries.append((int(idx), e))
        proof = TlogProof(int(idx), tuple(led.log.inclusion_proof(int(idx), size)), cp)
        entries.append(EntryRef(int(idx), int(seq), col.add(fmt.entry_path(idx), raw),
                                col.add(fmt.proof_path(idx), proof.to_text().encode())))
    assert state is not None
    checkpoints, consistency = _checkpoints(led, col, size, note)
    openings = _openings(led, col, env)
    m = Manifest(
        generated=generated, interim=state.status in IN_PROGRESS, lang=lang,
        envelope=EnvelopeRef(ref, tenant, env, state.status, len(entries), portal_url),
        log=LogRef(origin=led.log.origin, verifier_key=led.verifier_key, size=size, checkpoints=checkpoints,
                   anchors=_anchors(led, col, size), witnesses=tuple(led.config.witnesses), consistency=consistency,
                   head=col.add(fmt.head_path(size), head.encode()) if head else None,
                   tsa_roots=_tsa_roots(led, col), tsa_certs=_tsa_certs(led, col)),
        entries=tuple(entries), openings=openings, documents=_documents(led, col), files=())
    seal_certs, seal_roots = _seal_certs(led, col)
    m = replace(m, seal_certs=seal_certs, seal_roots=seal_roots)
    from ledger.evidence.verifymd import render

    col.add(fmt.VERIFY_MD, render(m, zip_name=f"{ref}-evidence.zip").encode())
    col.manifest = replace(m, files=tuple(FileRef(p, x.sha256, x.size) for p, x in sorted(col.members.items())))
    return col


def _checkpoints(led: Ledger, col: Collected, size: int,
                 note: str) -> tuple[tuple[CheckpointRef, ...], tuple[ConsistencyRef, ...]]:
    """The proof checkpoint; and the latest checkpoint a witness cosigned, with a consistency proof."""

    def add(n: int, text: str) -> CheckpointRef:
        a, b = fmt.checkpoint_paths(n)
        return CheckpointRef(n, col.add(a, text.encode()), col.add(b, parse_checkpoint(text).note.text.encode()))

    out = [add(size, note)]
    (witnessed,) = led.log._reader().execute("SELECT max(size) FROM cosignatures WHERE size <= ?",
                                             (led.log.size,)).fetchone()
    if witnessed is None or witnessed == size:
        return tuple(out), ()
    old, new = sorted((size, int(witnessed)))
    try:
        proof = led.log.consistency_proof(old, new)
    except LedgerError:  # a tree this process has not taken in: the bundle goes without
        return tuple(out), ()
    import base64

    out.append(add(int(witnessed), cosigned_checkpoint(led, int(witnessed))))
    text = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return tuple(out), (ConsistencyRef(old, new, col.add(fmt.consistency_path(old, new), text.encode())),)


def _anchors(led: Ledger, col: Collected, size: int) -> tuple[AnchorRef, ...]:
    rows = led.log._reader().execute("SELECT id, tsa, token, renews, gen_time, serial FROM anchors WHERE size = ?"
                                     " ORDER BY id", (size,)).fetchall()
    return tuple(AnchorRef(int(i), str(t), size, ren, str(g), str(s),
                           col.add(fmt.anchor_path(size, t, i), _response(bytes(tok))))
                 for i, t, tok, ren, g, s in rows)


def _tsa_roots(led: Ledger, col: Collected) -> dict[str, tuple[str, ...]]:
    """The roots of every configured TSA (the anchors' and the seals' time-stamps chain to them)."""
    out: dict[str, tuple[str, ...]] = {}
    local = led.home / TSA_DIR / "tsa-root.pem"
    if led.local_tsa is not None:
        out[LOCAL_TSA_NAME] = (col.add(fmt.tsa_root_path(LOCAL_TSA_NAME, 0), _pem(led.local_tsa.root_der)),)
    elif local.is_file():
        out[LOCAL_TSA_NAME] = (col.add(fmt.tsa_root_path(LOCAL_TSA_NAME, 0), local.read_bytes()),)
    for t in led.config.tsa:
        ders = [d for p in t.roots for d in _as_der(read_cert(led.home, p, t.name))]
        out[t.name] = tuple(col.add(fmt.tsa_root_path(t.name, n), _pem(d)) for n, d in enumerate(ders))
    return out


def _seal_certs(led: Ledger, col: Collected) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The platform seal's certificates and roots: the ledger's own seal (`seal/`), and those `[seal]` names."""
    certs: list[str] = []
    roots: list[str] = []
    seal, conf = led.home / SEAL_DIR, led.config.seal
    if (seal / SEAL_CERT_FILE).is_file() and (seal / SEAL_ROOT_FILE).is_file():
        certs.append(col.add(fmt.SEAL_CERT, (seal / SEAL_CERT_FILE).read_bytes()))
        roots.append(col.add(fmt.SEAL_ROOT, (seal / SEAL_ROOT_FILE).read_bytes()))
    own = [d for p in conf.roots for d in _as_der(read_cert(led.home, p, "[seal]"))]
    roots += [col.add(f"certs/seal-root-{n + 2}.pem", _pem(d)) for n, d in enumerate(own)]
    names = (*conf.chain, *([conf.cert] if conf.cert else []))
    chain = [d for p in names for d in _as_der(read_cert(led.home, p, "[seal]"))]
    certs += [col.add(f"certs/seal-cert-{n + 2}.pem", _pem(d)) for n, d in enumerate(chain)]
    return tuple(certs), tuple(roots)


def _tsa_certs(led: Ledger, col: Collected) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for t in led.config.tsa:
        ders = [d for p in t.certs for d in _as_der(read_cert(led.home, p, t.name))]
        if ders:
            out[t.name] = tuple(col.add(fmt.tsa_cert_path(t.name, n), _pem(d)) for n, d in enumerate(ders))
    return out


def _openings(led: Ledger, col: Collected, env: str) -> tuple[str, ...]:
    """The openings of the commitments the bundle's entries hold (an erased one is simply not there)."""
    used = {v for _, e in col.entries for k in COMMITMENT_FIELDS if isinstance(v := e.data.get(k), str)}
    out = []
    for commitment, salt, value in led.log._reader().execute(
            "SELECT commitment, salt, value FROM openings WHERE env = ? ORDER BY commitment", (env,)):
        if commitment in used:
            col.openings[commitment] = json.loads(value)
            body = {"commitment": commitment, "salt": salt, "value": value}
            out.append(col.add(fmt.opening_path(commitment),
                               (json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n").encode()))
    return tuple(out)


def _documents(led: Ledger, col: Collected) -> tuple[DocumentRef, ...]:
    """Each document and its versions, as the entries register them; the stored ones as files."""
    docs: dict[int, tuple[str, list[VersionRef]]] = {}
    placed: dict[str, str] = {}  # a SHA-256 already in the bundle: one file for every version it is
    # only the bytes this envelope may serve: its tenant's uploads and scans, the versions the ledger sealed
    held = held_by(led, col.entries[0][1].env) if col.entries else set()
    for idx, e in col.entries:
        d = e.data
        kind = {"document.added": "original", "party.signed": "signed", "document.sealed": "sealed",
                "paper.scanned": "scan"}.get(e.type)
        if kind is None:
            continue
        sha = str(d["signed_sha256"] if kind == "signed" else d["sha256"])
        party = d["party"] if kind == "signed" else None
        copy = d.get("copy") if kind == "scan" else None
        ordinal = int(d["document"])
        if kind == "original":
            docs[ordinal] = (sha, [])
        path = led.blobs.path(sha)
        file, size, note = placed.get(sha), None, ""
        if file is None and sha in held and path.is_file():
            with open(path, "rb") as f:
                head = f.read(1024)
            file = fmt.document_path(ordinal, kind, sha, _ext(head), party=party, copy=copy)
            col.add_blob(file, path)
            placed[sha] = file
        if file is not None:
            size = col.members[file].size
        else:
            note = "registered by its SHA-256 only: the ledger does not hold these bytes"
        docs.setdefault(ordinal, (sha, []))[1].append(VersionRef(kind, sha, idx, file, size, party, copy, note))
    return tuple(DocumentRef(n, sha, tuple(vs)) for n, (sha, vs) in sorted(docs.items()))
