"""The evidence bundle's format (DESIGN.md §3 "Evidence bundle"): its file layout and `manifest.json`.

A bundle is a zip of plain files, so that an expert can check it with OpenSSL and Python's hashlib:

    manifest.json                 this format: the envelope, the log, every file with its SHA-256
    VERIFY.md                     the steps to check it by hand, with this bundle's file names
    report.pdf                    the human-readable report, sealed (PAdES), with the evidence manifest
                                  embedded as `manifest.json`
    entries/<index>.json          the exact bytes of each of the envelope's log entries (RFC 8785 JSON)
    proofs/<index>.tlog-proof     a C2SP tlog-proof of each entry, against the proof checkpoint
    proofs/consistency-<a>-<b>.txt  RFC 9162 consistency proof between two checkpoints (one base64 hash a line)
    checkpoints/<size>.txt        a signed checkpoint (with its witnesses' cosignatures)
    checkpoints/<size>.body       its body, the exact bytes an RFC 3161 anchor time-stamps
    checkpoints/head-<size>.txt   the log's signed statement of the envelope's last event (`verifier.head`)
    anchors/<size>-<tsa>-<id>.tsr an RFC 3161 TimeStampResp of the checkpoint body (or, for a renewal, of
                                  the token it renews)
    openings/<commitment>.json    {"commitment", "salt", "value"}: SHA-256(salt || value) = commitment
    certs/                        TSA roots, the platform seal's certificate and root (PEM)
    documents/                    the stored versions of each document (original, signed, sealed, scans)

The two manifests. The report must carry the list of the evidence it describes, and the zip's manifest
must carry the report's hash: one list cannot hold both. So the *evidence manifest* (this format without
`report`, listing every file but `manifest.json` and `report.pdf`) is embedded in the sealed report, and
`manifest.json` is that same object plus `report` (the report's path and the SHA-256 of the embedded
evidence manifest) with `report.pdf` added to `files`. A verifier checks every file against
`manifest.json`, then that `manifest.json` less the report is exactly the manifest sealed in the report:
the seal then covers every file, and the zip's manifest covers the report.

What it does not do: read a zip (`archive`) or check anything beyond the form (`bundle`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

from verifier.entry import strict_loads
from verifier.errors import FormatError
from verifier.evidence.archive import check_name

FORMAT = "evidence-ledger/evidence-bundle@v1"
MANIFEST = "manifest.json"
REPORT = "report.pdf"
VERIFY_MD = "VERIFY.md"
EMBEDDED_NAME = "manifest.json"  # the evidence manifest's name inside report.pdf
MAX_MANIFEST_BYTES = 16 << 20
KINDS = ("original", "signed", "sealed", "scan")
# Which entry registers a document version, and the data field holding its SHA-256.
REGISTERED_BY = {"original": ("document.added", "sha256"), "signed": ("party.signed", "signed_sha256"),
                 "sealed": ("document.sealed", "sha256"), "scan": ("paper.scanned", "sha256")}
# Entry fields that hold salted commitments (ledger.envelopes.core), whose openings travel in the bundle.
COMMITMENT_FIELDS = ("title", "owner", "name", "ref", "access", "identity", "reason", "by")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """A TSA's name as a file name part."""
    return _SLUG.sub("_", name).strip("._") or "tsa"


def entry_path(index: int) -> str:
    return f"entries/{index}.json"


def proof_path(index: int) -> str:
    return f"proofs/{index}.tlog-proof"


def consistency_path(old: int, new: int) -> str:
    return f"proofs/consistency-{old}-{new}.txt"


def checkpoint_paths(size: int) -> tuple[str, str]:
    return f"checkpoints/{size}.txt", f"checkpoints/{size}.body"


def head_path(size: int) -> str:
    return f"checkpoints/head-{size}.txt"


def anchor_path(size: int, tsa: str, ident: int) -> str:
    return f"anchors/{size}-{slug(tsa)}-{ident}.tsr"


def opening_path(commitment: str) -> str:
    return f"openings/{commitment}.json"


def tsa_root_path(tsa: str, n: int) -> str:
    return f"certs/tsa-{slug(tsa)}-root{'' if n == 0 else f'-{n + 1}'}.pem"


def tsa_cert_path(tsa: str, n: int) -> str:
    return f"certs/tsa-{slug(tsa)}-cert-{n + 1}.pem"


SEAL_CERT = "certs/seal.pem"
SEAL_ROOT = "certs/seal-root.pem"


def document_path(ordinal: int, kind: str, sha256: str, ext: str, *, party: int | None = None,
                  copy: int | None = None) -> str:
    who = f"-party{party}" if party is not None else f"-copy{copy}" if copy is not None else ""
    return f"documents/{ordinal}-{kind}{who}-{sha256[:12]}.{ext}"


@dataclass(frozen=True)
class FileRef:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class EntryRef:
    index: int
    seq: int
    file: str
    proof: str


@dataclass(frozen=True)
class CheckpointRef:
    size: int
    note: str
    body: str


@dataclass(frozen=True)
class ConsistencyRef:
    old: int
    new: int
    file: str


@dataclass(frozen=True)
class AnchorRef:
    id: int
    tsa: str
    size: int
    renews: int | None
    gen_time: str
    serial: str
    file: str


@dataclass(frozen=True)
class VersionRef:
    """A version of a document as an entry registers it; `file` is None when the bundle does not hold
    its bytes (`note` says why)."""

    kind: str
    sha256: str
    index: int
    file: str | None = None
    size: int | None = None
    party: int | None = None
    copy: int | None = None
    note: str = ""


@dataclass(frozen=True)
class DocumentRef:
    ordinal: int
    sha256: str
    versions: tuple[VersionRef, ...]


@dataclass(frozen=True)
class EnvelopeRef:
    ref: str
    tenant: str
    env: str
    status: str
    events: int
    portal_url: str | None = None


@dataclass(frozen=True)
class LogRef:
    origin: str
    verifier_key: str
    size: int  # the checkpoint the entries' proofs are against, anchored
    checkpoints: tuple[CheckpointRef, ...]
    anchors: tuple[AnchorRef, ...]
    witnesses: tuple[str, ...] = ()
    consistency: tuple[ConsistencyRef, ...] = ()
    head: str | None = None
    tsa_roots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tsa_certs: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportRef:
    path: str
    evidence_sha256: str  # SHA-256 of the evidence manifest embedded in the report


@dataclass(frozen=True)
class Manifest:
    generated: str
    interim: bool
    lang: str
    envelope: EnvelopeRef
    log: LogRef
    entries: tuple[EntryRef, ...]
    openings: tuple[str, ...]
    documents: tuple[DocumentRef, ...]
    files: tuple[FileRef, ...]
    seal_certs: tuple[str, ...] = ()
    seal_roots: tuple[str, ...] = ()
    report: ReportRef | None = None

    def to_json(self) -> dict[str, Any]:
        e, lg = self.envelope, self.log
        out: dict[str, Any] = {
            "format": FORMAT, "generated": self.generated, "interim": self.interim, "lang": self.lang,
            "envelope": {"ref": e.ref, "tenant": e.tenant, "env": e.env, "status": e.status, "events": e.events,
                         "portal_url": e.portal_url},
            "log": {"origin": lg.origin, "verifier_key": lg.verifier_key, "witnesses": list(lg.witnesses),
                    "size": lg.size, "head": lg.head,
                    "checkpoints": [{"size": c.size, "note": c.note, "body": c.body} for c in lg.checkpoints],
                    "consistency": [{"from": c.old, "to": c.new, "file": c.file} for c in lg.consistency],
                    "anchors": [{"id": a.id, "tsa": a.tsa, "size": a.size, "renews": a.renews,
                                 "gen_time": a.gen_time, "serial": a.serial, "file": a.file} for a in lg.anchors],
                    "tsa_roots": {k: list(v) for k, v in lg.tsa_roots.items()},
                    "tsa_certs": {k: list(v) for k, v in lg.tsa_certs.items()}},
            "entries": [{"index": x.index, "seq": x.seq, "file": x.file, "proof": x.proof} for x in self.entries],
            "openings": list(self.openings),
            "seal_certs": list(self.seal_certs), "seal_roots": list(self.seal_roots),
            "documents": [{"ordinal": d.ordinal, "sha256": d.sha256, "versions": [
                {"kind": v.kind, "sha256": v.sha256, "index": v.index, "file": v.file, "size": v.size,
                 "party": v.party, "copy": v.copy, "note": v.note} for v in d.versions]} for d in self.documents],
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }
        if self.report is not None:
            out["report"] = {"path": self.report.path, "evidence_sha256": self.report.evidence_sha256}
        return out

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    def evidence(self) -> Manifest:
        """The evidence manifest: this one without the report (what the report embeds)."""
        path = self.report.path if self.report is not None else REPORT
        return replace(self, report=None, files=tuple(f for f in self.files if f.path != path))

    def with_report(self, report: bytes, sha256: str, embedded_sha256: str) -> Manifest:
        """The zip's manifest: the evidence manifest plus the sealed report."""
        files = (*self.files, FileRef(REPORT, sha256, len(report)))
        return replace(self, files=tuple(sorted(files, key=lambda f: f.path)), report=ReportRef(REPORT, embedded_sha256))

    def paths(self) -> set[str]:
        """Every file the manifest refers to, outside `files`."""
        lg = self.log
        out = {x for e in self.entries for x in (e.file, e.proof)} | set(self.openings)
        out |= {x for c in lg.checkpoints for x in (c.note, c.body)} | {c.file for c in lg.consistency}
        out |= {a.file for a in lg.anchors} | {p for v in lg.tsa_roots.values() for p in v}
        out |= {p for v in lg.tsa_certs.values() for p in v} | set(self.seal_certs) | set(self.seal_roots)
        out |= {v.file for d in self.documents for v in d.versions if v.file is not None}
        if lg.head is not None:
            out.add(lg.head)
        return out


def parse_manifest(data: bytes) -> Manifest:
    """Parse `manifest.json` (or the evidence manifest). Raises `FormatError` saying what is wrong."""
    raw = strict_loads(data, max_bytes=MAX_MANIFEST_BYTES)
    return _Reader(raw).manifest()


class _Reader:
    """from_json of the whole manifest, each error naming the field."""

    def __init__(self, raw: Any) -> None:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise FormatError(f"manifest.json is not an evidence bundle manifest (format {FORMAT!r})")
        self.raw = raw

    def manifest(self) -> Manifest:
        r = self.raw
        env = _obj(r, "envelope")
        lg = _obj(r, "log")
        report = r.get("report")
        return Manifest(
            generated=_str(r, "generated"), interim=_bool(r, "interim"), lang=_str(r, "lang"),
            envelope=EnvelopeRef(_str(env, "ref"), _str(env, "tenant"), _str(env, "env"), _str(env, "status"),
                                 _int(env, "events"), _opt_str(env, "portal_url")),
            log=LogRef(
                origin=_str(lg, "origin"), verifier_key=_str(lg, "verifier_key"), size=_int(lg, "size"),
                checkpoints=tuple(CheckpointRef(_int(c, "size"), _path(c, "note"), _path(c, "body"))
                                  for c in _list(lg, "checkpoints")),
                anchors=tuple(AnchorRef(_int(a, "id"), _str(a, "tsa"), _int(a, "size"), _opt_int(a, "renews"),
                                        _str(a, "gen_time"), _str(a, "serial"), _path(a, "file"))
                              for a in _list(lg, "anchors")),
                witnesses=tuple(_strs(lg, "witnesses")),
                consistency=tuple(ConsistencyRef(_int(c, "from"), _int(c, "to"), _path(c, "file"))
                                  for c in _list(lg, "consistency")),
                head=_opt_path(lg, "head"), tsa_roots=_path_map(lg, "tsa_roots"),
                tsa_certs=_path_map(lg, "tsa_certs")),
            entries=tuple(EntryRef(_int(x, "index"), _int(x, "seq"), _path(x, "file"), _path(x, "proof"))
                          for x in _list(r, "entries")),
            openings=tuple(_check_path(p, "openings") for p in _strs(r, "openings")),
            documents=tuple(DocumentRef(_int(d, "ordinal"), _hex(d, "sha256"), tuple(
                VersionRef(_kind(v), _hex(v, "sha256"), _int(v, "index"), _opt_path(v, "file"), _opt_int(v, "size"),
                           _opt_int(v, "party"), _opt_int(v, "copy"), _str(v, "note"))
                for v in _list(d, "versions"))) for d in _list(r, "documents")),
            files=tuple(FileRef(_path(f, "path"), _hex(f, "sha256"), _int(f, "size")) for f in _list(r, "files")),
            seal_certs=tuple(_check_path(p, "seal_certs") for p in _strs(r, "seal_certs")),
            seal_roots=tuple(_check_path(p, "seal_roots") for p in _strs(r, "seal_roots")),
            report=None if report is None else ReportRef(_path(_as_obj(report, "report"), "path"),
                                                         _hex(_as_obj(report, "report"), "evidence_sha256")),
        )


def _as_obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise FormatError(f"manifest: {where} is not an object")
    return v


def _obj(o: dict[str, Any], k: str) -> dict[str, Any]:
    return _as_obj(o.get(k), k)


def _list(o: dict[str, Any], k: str) -> list[dict[str, Any]]:
    v = o.get(k)
    if not isinstance(v, list):
        raise FormatError(f"manifest: {k} is not a list")
    return [_as_obj(x, f"an item of {k}") for x in v]


def _str(o: dict[str, Any], k: str) -> str:
    v = o.get(k)
    if not isinstance(v, str):
        raise FormatError(f"manifest: {k} is not a string")
    return v


def _opt_str(o: dict[str, Any], k: str) -> str | None:
    return None if o.get(k) is None else _str(o, k)


def _strs(o: dict[str, Any], k: str) -> list[str]:
    v = o.get(k, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise FormatError(f"manifest: {k} is not a list of strings")
    return v


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _int(o: dict[str, Any], k: str) -> int:
    v = o.get(k)
    if not _is_int(v):
        raise FormatError(f"manifest: {k} is not a non-negative integer")
    return v


def _opt_int(o: dict[str, Any], k: str) -> int | None:
    return None if o.get(k) is None else _int(o, k)


def _bool(o: dict[str, Any], k: str) -> bool:
    v = o.get(k)
    if not isinstance(v, bool):
        raise FormatError(f"manifest: {k} is not true or false")
    return v


def _hex(o: dict[str, Any], k: str) -> str:
    v = _str(o, k)
    if not _HEX64.fullmatch(v):
        raise FormatError(f"manifest: {k} is not a SHA-256 in lowercase hex")
    return v


def _kind(o: dict[str, Any]) -> str:
    v = _str(o, "kind")
    if v not in KINDS:
        raise FormatError(f"manifest: document version kind {v!r} is not one of {', '.join(KINDS)}")
    return v


def _check_path(p: str, where: str) -> str:
    why = check_name(p)
    if why or p.endswith("/"):
        raise FormatError(f"manifest: {where} names {p!r}, which is no plain file path ({why or 'a folder'})")
    return p


def _path(o: dict[str, Any], k: str) -> str:
    return _check_path(_str(o, k), k)


def _opt_path(o: dict[str, Any], k: str) -> str | None:
    return None if o.get(k) is None else _path(o, k)


def _path_map(o: dict[str, Any], k: str) -> dict[str, tuple[str, ...]]:
    v = o.get(k, {})
    if not isinstance(v, dict):
        raise FormatError(f"manifest: {k} is not an object")
    return {name: tuple(_check_path(p, k) for p in _strs(v, name)) for name in v}
