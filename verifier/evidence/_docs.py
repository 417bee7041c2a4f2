"""The document side of a bundle check: every registered version accounted for, each included file the
one its entry registered, the platform's seals on documents and on the report (PAdES, through
`verifier.documents.pdfsig`), and the evidence manifest embedded in the report.

 (12) each version the entries register (document.added, party.signed, document.sealed,
      paper.scanned) is listed; a listed version's file has the SHA-256 its entry names
 (13) a sealed version's seal is intact, chains to a seal root valid at the moment of judgment, is
      time-stamped, has nothing changed after it, and was made with the certificate `document.sealed`
      names (its SHA-256); signatures in other versions must be intact (whose they are is reported)
 (14) the report's seal holds as (13), and the manifest it embeds is the bundle's evidence manifest

What it does not do: judge whose signatures the party-signed versions carry (the bundle holds no
roots of the parties' CAs), or read images (scans are checked by their hash only).
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from verifier._cms import quiet_pyhanko
from verifier.documents.pdfsig import MAX_PDF_BYTES, PdfRefusedError, PdfReport, SignatureCheck, check_pdf
from verifier.entry import Entry
from verifier.errors import VerificationError
from verifier.evidence._anchors import certificates
from verifier.evidence._log import _Ctx
from verifier.evidence.manifest import EMBEDDED_NAME, REGISTERED_BY, Manifest, VersionRef, parse_manifest

MAX_NAME_TREE_DEPTH = 8
MAX_EMBEDDED_BYTES = 16 << 20


def seal_roots(c: _Ctx) -> list[bytes]:
    if c.trust.seal_roots is not None:
        return list(c.trust.seal_roots)
    if c.manifest.seal_roots:
        c.caveats.append("the seal roots were taken from the bundle itself (give --trust-seal with the roots you "
                         "trust)")
    return certificates(c, c.manifest.seal_roots, "seal roots")


def signer_certificates(pdf: bytes) -> list[bytes]:
    """The DER certificate of each signature's signer, in file order (empty if the PDF cannot be read)."""
    with quiet_pyhanko():
        from pyhanko.pdf_utils.reader import PdfFileReader
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        return [bytes(s.signer_cert.dump()) for s in reader.embedded_signatures]
    except (MemoryError, RecursionError):
        raise
    except Exception:  # noqa: BLE001  # a hostile file: the signature check reports it
        return []


def embedded_file(pdf: bytes, name: str) -> bytes | None:
    """The file named `name` in the PDF's EmbeddedFiles name tree (ISO 32000-1 §7.11.4), or None."""
    with quiet_pyhanko():
        from pyhanko.pdf_utils.reader import PdfFileReader
    try:
        root = PdfFileReader(io.BytesIO(pdf), strict=False).root
        return _find(root["/Names"]["/EmbeddedFiles"], name, 0)
    except (MemoryError, RecursionError):
        raise
    except Exception:  # noqa: BLE001  # no such tree, or a damaged one: nothing embedded
        return None


def _find(node: Any, name: str, depth: int) -> bytes | None:
    if depth > MAX_NAME_TREE_DEPTH:
        return None
    pairs = list(node["/Names"]) if "/Names" in node else []
    for key, spec in zip(pairs[::2], pairs[1::2], strict=False):
        if str(key.get_object()) == name:
            stream = spec.get_object()["/EF"]["/F"]
            if int(stream.get("/Length", 0)) > MAX_EMBEDDED_BYTES:
                return None
            data = stream.data
            return bytes(data) if len(data) <= MAX_EMBEDDED_BYTES else None
    for kid in (node["/Kids"] if "/Kids" in node else []):
        found = _find(kid.get_object(), name, depth + 1)
        if found is not None:
            return found
    return None


class _Pdfs:
    """PDF checks, once per file."""

    def __init__(self, c: _Ctx, roots: list[bytes], tsa_roots: list[bytes]) -> None:
        self.c, self.roots, self.tsa_roots = c, roots, tsa_roots
        self.reports: dict[str, PdfReport | str] = {}
        self.signer_hashes: dict[str, list[str]] = {}  # (not the files: one document in memory at a time)

    def check(self, path: str) -> PdfReport | str | None:
        """The report of a PDF file, the reason it was refused, or None for a file that is no PDF."""
        if path not in self.reports:
            data = self.c.read(path, MAX_PDF_BYTES, "documents")
            if data is None:
                self.reports[path] = "it cannot be read"
                return self.reports[path]
            if not data[:1024].lstrip().startswith(b"%PDF-") and b"%PDF-" not in data[:1024]:
                return None
            try:
                self.reports[path] = check_pdf(data, roots=self.roots, at=self.c.at, tsa_roots=self.tsa_roots)
            except PdfRefusedError as e:
                self.reports[path] = str(e)
            else:
                self.signer_hashes[path] = [hashlib.sha256(der).hexdigest() for der in signer_certificates(data)]
        return self.reports[path]

    def signers(self, path: str) -> list[str]:
        """SHA-256 of each signature's signer certificate (DER), in file order."""
        return self.signer_hashes.get(path, [])


def check_documents(c: _Ctx, hashes: dict[str, str]) -> dict[str, PdfReport]:
    """(12) and (13); returns the PDF reports of the included versions, by file."""
    m = c.manifest
    pdfs = _Pdfs(c, c.seal_roots, c.tsa_roots)
    index_of = {ref.file: ref.index for ref in m.entries}
    registered: dict[int, tuple[str, Entry]] = {}
    for file, e in c.entries:
        for kind, (etype, _) in REGISTERED_BY.items():
            if e.type == etype:
                registered[index_of[file]] = (kind, e)
    listed: set[int] = set()
    problems: list[tuple[str, str | None]] = []
    seals: list[tuple[bool, str, str | None]] = []
    included = hashes_only = 0
    for d in m.documents:
        for v in d.versions:
            listed.add(v.index)
            why = _registration(v, d.ordinal, registered.get(v.index))
            if why:
                problems.append((why, v.file or "manifest.json"))
                continue
            if v.kind == "original" and v.sha256 != d.sha256:
                problems.append((f"document {d.ordinal}: its original is not the document's hash", "manifest.json"))
            if v.file is None:
                hashes_only += 1
                continue
            included += 1
            got = hashes.get(v.file, "")
            if not got:
                try:
                    got = c.files.sha256(v.file)[0]
                except VerificationError as e:
                    problems.append((f"{v.file}: {e}", v.file))
                    continue
            if got != v.sha256:
                problems.append((f"{v.file} is not the {v.kind} version the log registered at index {v.index} "
                                 f"(SHA-256 {got[:16]}..., the entry names {v.sha256[:16]}...)", v.file))
                continue
            seals.append(_signatures(pdfs, v, registered[v.index][1]))
    for index, (kind, _) in sorted(registered.items()):
        if index not in listed:
            problems.append((f"the entry at index {index} registers {_a(kind)} version the manifest does not list",
                             "manifest.json"))
    c.cl.family("documents", problems, f"{included} document file(s) are the versions the log registered"
                + (f"; {hashes_only} version(s) registered by hash only, not in the bundle" if hashes_only else ""))
    for ok, detail, where in seals:
        c.cl.add("document seal" if detail.startswith("sealed") else "document signatures", ok, detail, where)
    return {p: r for p, r in pdfs.reports.items() if isinstance(r, PdfReport)}


def _registration(v: VersionRef, ordinal: int, reg: tuple[str, Entry] | None) -> str:
    if reg is None or reg[0] != v.kind:
        return f"document {ordinal}: no entry at index {v.index} registers {_a(v.kind)} version"
    kind, e = reg
    _, field = REGISTERED_BY[kind]
    d = e.data
    if d.get("document") != ordinal or d.get(field) != v.sha256:
        return f"document {ordinal}: the entry at index {v.index} registers another document or hash"
    if (kind == "signed" and v.party != d.get("party")) or (kind == "scan" and v.copy != d.get("copy")):
        return f"document {ordinal}: the {kind} version at index {v.index} names another party or copy"
    return ""


def _signatures(pdfs: _Pdfs, v: VersionRef, e: Entry) -> tuple[bool, str, str | None]:
    assert v.file is not None
    rep = pdfs.check(v.file)
    if rep is None:
        return True, f"{v.kind} version: not a PDF, checked by its hash only", v.file
    if isinstance(rep, str):
        return v.kind != "sealed", f"{v.kind} version: its signatures cannot be checked: {rep}", v.file
    broken = [s.field for s in rep.signatures if not s.intact]
    if v.kind == "sealed":
        seal = rep.signatures[-1] if rep.signatures else None
        if seal is None or not seal.ok or seal.timestamp_ok is not True or broken:
            why = ("no signature" if seal is None else f"signature(s) {', '.join(broken)} not intact" if broken
                   else "its signature carries no time-stamp" if seal.ok else rep.verdict())
            return False, f"sealed version: the platform's seal does not hold: {why}", v.file
        if e.data.get("certificate") not in pdfs.signers(v.file)[-1:]:
            return False, "sealed version: not sealed with the certificate its document.sealed entry names", v.file
        return True, _sealed(seal), v.file
    if broken:
        return False, f"{v.kind} version: signature(s) {', '.join(broken)} not intact", v.file
    n = len(rep.signatures)
    return True, (f"{v.kind} version: {n} signature(s), all intact (by "
                  f"{', '.join(sorted({s.signer for s in rep.signatures}))}; their CAs are not in the bundle)"
                  if n else f"{v.kind} version: no signature in the PDF"), v.file


def check_report(c: _Ctx, outer: Manifest) -> PdfReport | None:
    """(14) the report's seal, and the evidence manifest it embeds."""
    ref = outer.report
    if ref is None:
        c.cl.fail("report", "manifest.json names no report", "manifest.json")
        return None
    data = c.read(ref.path, MAX_PDF_BYTES, "report")
    if data is None:
        return None
    embedded = embedded_file(data, EMBEDDED_NAME)
    if embedded is None:
        c.cl.fail("report manifest", f"{ref.path} embeds no {EMBEDDED_NAME}", ref.path)
    elif hashlib.sha256(embedded).hexdigest() != ref.evidence_sha256:
        c.cl.fail("report manifest", f"the manifest embedded in {ref.path} is not the one manifest.json names",
                  ref.path)
    else:
        try:
            same = parse_manifest(embedded).to_json() == outer.evidence().to_json()
        except VerificationError:
            same = False
        c.cl.add("report manifest", same, f"manifest.json is the evidence manifest sealed in {ref.path}, plus the "
                 "report" if same else f"manifest.json differs from the evidence manifest sealed in {ref.path}",
                 "manifest.json")
    try:
        rep = check_pdf(data, roots=c.seal_roots, at=c.at, tsa_roots=c.tsa_roots)
    except PdfRefusedError as e:
        c.cl.fail("report seal", str(e), ref.path)
        return None
    s = rep.signatures[-1] if rep.signatures else None
    if s is None or not s.ok or s.timestamp_ok is not True or not all(x.intact for x in rep.signatures):
        why = "the seal carries no time-stamp" if s is not None and s.ok else rep.verdict()
        c.cl.fail("report seal", why, ref.path)
        return rep
    c.cl.add("report seal", True, _sealed(s))
    return rep


def _sealed(s: SignatureCheck) -> str:
    when = f"time-stamped by {s.tsa!r} at {s.tsa_time.isoformat()}" if s.tsa_time else "NOT time-stamped"
    return f"sealed by {s.signer!r}: intact, {s.trust_detail}, {when}, nothing changed after it"


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
