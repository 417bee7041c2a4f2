"""Checking the signatures of a PDF (ISO 32000-1 §12.8, PAdES: ETSI EN 319 142-1) offline.

What it does: read a PDF from bytes, find every signature field's signature and validate each with
pyHanko (`pyhanko.sign.validation`), against trust roots the caller gives and at the time the caller
gives, with fetching turned off. Each signature gets one `SignatureCheck`, in the order of the file:

 (1) integrity: the digest over the byte range matches and the CMS signature verifies (RFC 5652 §5.4)
 (2) trust: the signer's certificate chains to a given root and is valid at `at` (RFC 5280 §6); or, when
     it no longer is (expired) but the signature carries a time-stamp that is valid and trusted at `at`,
     valid at the time-stamp's genTime, which proves the signature existed then (ETSI EN 319 102-1
     §5.6.2.4: a seal outlives its certificate for as long as its TSA's certificate holds)
 (3) time-stamp, if the signature carries one: its token is intact and chains to a given TSA root
     (RFC 3161, ETSI EN 319 142-1 §5.3); its genTime is reported
 (4) changes after signing: how much of the file the signature covers, and pyHanko's analysis of the
     incremental updates after it (ISO 32000-1 §7.5.6); only updates it allows (form filling, further
     signatures, validation data) keep the document unchanged
 (5) the signed revision: the SHA-256 of the file up to the end of the revision the signature covers
     (the bytes the signer produced), so a caller can tell which registered version was signed

What it does not do: read a clock, a file, the network or a database; revocation is not checked
(nothing is fetched, so a CRL or OCSP response is only used if the file embeds one: soft-fail). A file
that is not a PDF, is encrypted, is larger than `MAX_PDF_BYTES` or cannot be read is refused with a
`PdfRefusedError`; whatever a signature holds is a failed check of that signature, never an exception.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import x509

from verifier import _cms
from verifier._cms import quiet_pyhanko
from verifier.errors import FormatError, SignatureError
from verifier.timestamp import _run_coroutine

# The largest PDF checked: above the ledger's `max_document_bytes` default (50 MiB), and small enough
# for a reader's objects of it to stay well within the portal checker's memory limit.
MAX_PDF_BYTES = 64 << 20
# Where the header may sit: ISO 32000-1 says at the start; readers accept it within the first 1 KiB.
HEADER_WINDOW = 1024


class PdfRefusedError(FormatError):
    """A file the signature check refuses to read: not a PDF, encrypted, too large or damaged."""

    code = "pdf_refused"


@dataclass(frozen=True)
class SignatureCheck:
    """What one signature says and how it fared. Times are aware datetimes; the hash is hex."""

    field: str
    signer: str
    issuer: str
    serial: int
    signing_time: datetime | None
    intact: bool
    trusted: bool
    trust_detail: str
    tsa: str | None
    tsa_time: datetime | None
    timestamp_ok: bool | None
    coverage: str
    modification_level: str | None
    changed_after_signing: bool
    revision: int
    revision_sha256: str
    revision_bytes: int
    ok: bool
    problem: str = ""

    def lines(self) -> list[str]:
        """The checklist, one line per check."""
        mark = {True: "ok  ", False: "FAIL"}
        time = self.signing_time.isoformat() if self.signing_time else "not given"
        lines = [
            f"signature {self.field!r} by {self.signer!r} (issuer {self.issuer!r}, serial {self.serial}), "
            f"signing time claimed {time}",
            f"(1) {mark[self.intact]} integrity: "
            + ("the signed bytes and the signature match" if self.intact else self.problem or "does not verify"),
            f"(2) {mark[self.trusted]} trust: {self.trust_detail}",
        ]
        if self.timestamp_ok is None:
            lines.append("(3) --   time-stamp: none (the signing time is only the signer's claim)")
        else:
            lines.append(f"(3) {mark[self.timestamp_ok]} time-stamp by {self.tsa!r} at "
                         f"{self.tsa_time.isoformat() if self.tsa_time else 'unknown'}")
        level = self.modification_level or "not analysed"
        lines.append(f"(4) {mark[not self.changed_after_signing]} changes after signing: coverage {self.coverage}, "
                     f"modifications {level}"
                     + ("; the document was CHANGED after signing" if self.changed_after_signing else ""))
        lines.append(f"(5) signed revision {self.revision}: {self.revision_bytes} bytes, "
                     f"SHA-256 {self.revision_sha256}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field, "signer": self.signer, "issuer": self.issuer, "serial": str(self.serial),
            "signing_time": _time_json(self.signing_time), "intact": self.intact, "trusted": self.trusted,
            "trust_detail": self.trust_detail, "tsa": self.tsa, "tsa_time": _time_json(self.tsa_time),
            "timestamp_ok": self.timestamp_ok, "coverage": self.coverage,
            "modification_level": self.modification_level, "changed_after_signing": self.changed_after_signing,
            "revision": self.revision, "revision_sha256": self.revision_sha256,
            "revision_bytes": self.revision_bytes, "ok": self.ok, "problem": self.problem,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SignatureCheck:
        """Parse `to_json`'s form. Raises `FormatError` if it is not that."""
        try:
            fields = dict(obj)
            fields["serial"] = int(fields["serial"])
            fields["signing_time"] = _time_from_json(fields["signing_time"])
            fields["tsa_time"] = _time_from_json(fields["tsa_time"])
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"not a signature check: {e}") from None


@dataclass(frozen=True)
class PdfReport:
    """The outcome of `check_pdf`: one `SignatureCheck` per signature, in file order."""

    size: int
    sha256: str
    signatures: tuple[SignatureCheck, ...]

    @property
    def ok(self) -> bool:
        """At least one signature, and every one intact, trusted and not followed by disallowed changes."""
        return bool(self.signatures) and all(s.ok for s in self.signatures)

    def verdict(self) -> str:
        n = len(self.signatures)
        if n == 0:
            return "NOT VERIFIED: the PDF has no signatures"
        if self.ok:
            return f"VERIFIED {n} signature(s): intact, trusted, no disallowed changes after signing"
        bad = [s for s in self.signatures if not s.ok]
        return f"NOT VERIFIED: {len(bad)} of {n} signature(s) failed: " + "; ".join(
            f"{s.field!r}: {_failure(s)}" for s in bad)

    def lines(self) -> list[str]:
        out = [f"PDF of {self.size} bytes, SHA-256 {self.sha256}, {len(self.signatures)} signature(s)"]
        for s in self.signatures:
            out += s.lines()
        return out

    def require_valid(self) -> PdfReport:
        """Return self if `ok`, else raise `SignatureError` with the verdict."""
        if not self.ok:
            code = "unsigned" if not self.signatures else "bad_signature"
            raise SignatureError(self.verdict().removeprefix("NOT VERIFIED: "), code=code)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256, "ok": self.ok, "verdict": self.verdict(),
                "signatures": [s.to_json() for s in self.signatures]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PdfReport:
        """Parse `to_json`'s form (`ok` and `verdict` are recomputed). Raises `FormatError`."""
        try:
            return cls(size=int(obj["size"]), sha256=str(obj["sha256"]),
                       signatures=tuple(SignatureCheck.from_json(s) for s in obj["signatures"]))
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"not a PDF signature report: {e}") from None


def _failure(s: SignatureCheck) -> str:
    if not s.intact:
        return "not intact"
    if not s.trusted:
        return f"not trusted ({s.trust_detail})"
    if s.timestamp_ok is False:
        return "its time-stamp is not valid"
    if s.changed_after_signing:
        return "changed after signing"
    return s.problem or "not valid"


def _time_json(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time_from_json(text: Any) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    if moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def check_pdf(pdf: bytes, *, roots: Sequence[bytes], at: datetime, tsa_roots: Sequence[bytes] = ()) -> PdfReport:
    """Check every signature of a PDF; see the module docstring for the checks.

    Args:
        pdf: the whole file.
        roots: DER or PEM root certificates the signers must chain to.
        at: the aware moment of judgment: certificates must be valid then.
        tsa_roots: DER or PEM roots for signature time-stamps (default: `roots`).

    Returns:
        A report; `report.ok` only if there is a signature and every one passed.

    Raises:
        PdfRefusedError: the file is not a PDF, is encrypted, larger than `MAX_PDF_BYTES` or damaged.
        ValueError: `at` is naive, or a root is not a certificate (the caller's input, not the file).
    """
    if at.utcoffset() is None:
        raise ValueError("check_pdf needs a timezone-aware `at`")
    reader = _open(pdf)
    try:
        embedded = list(reader.embedded_signatures)
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # noqa: BLE001  # a hostile file makes the reader fail in any way
        raise _damaged(e) from None
    trust = _roots(roots, "a root")
    tsa_trust = _roots(tsa_roots, "a TSA root") if tsa_roots else trust
    checks = tuple(_check_one(pdf, reader, sig, trust, tsa_trust, at) for sig in embedded)
    return PdfReport(size=len(pdf), sha256=hashlib.sha256(pdf).hexdigest(), signatures=checks)


def _roots(blobs: Sequence[bytes], what: str) -> list[x509.Certificate]:
    try:
        return _cms.load_certificates(blobs)
    except Exception as e:  # noqa: BLE001  # asn1crypto raises many exception types on bad input
        raise ValueError(f"{what} given is not a certificate (PEM or DER): {e}") from None


def _damaged(e: BaseException) -> PdfRefusedError:
    return PdfRefusedError(f"the PDF is damaged and cannot be read: {type(e).__name__}: {str(e)[:200]}",
                           code="pdf_damaged")


def _open(pdf: bytes) -> Any:
    with quiet_pyhanko():  # (the reader's encryption support loads pyHanko's signers)
        from pyhanko.pdf_utils.reader import PdfFileReader

    if len(pdf) > MAX_PDF_BYTES:
        raise PdfRefusedError(f"the file is {len(pdf)} bytes; PDFs of at most {MAX_PDF_BYTES} bytes are checked",
                              code="pdf_too_large")
    if b"%PDF-" not in pdf[:HEADER_WINDOW]:
        raise PdfRefusedError("not a PDF: no %PDF- header at its start", code="not_pdf")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        encrypted = bool(reader.encrypted)
        if not encrypted:
            reader.root["/Pages"]  # noqa: B018  # the document catalogue must resolve
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # noqa: BLE001  # a hostile file makes the reader fail in any way
        raise _damaged(e) from None
    if encrypted:
        raise PdfRefusedError("the PDF is encrypted; its signatures are checked only on the decrypted file",
                              code="pdf_encrypted")
    return reader


def _check_one(pdf: bytes, reader: Any, sig: Any, trust: list[x509.Certificate],
               tsa_trust: list[x509.Certificate], at: datetime) -> SignatureCheck:
    with quiet_pyhanko():  # pyHanko's signers import DSA classes cryptography deprecates
        from pyhanko.sign.validation import async_validate_pdf_signature
        from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    field = str(sig.field_name)
    revision, end = _signed_revision(sig, len(pdf))
    digest = hashlib.sha256(pdf[:end]).hexdigest()
    signer, issuer, serial = "unknown", "unknown", 0

    def context(roots: list[x509.Certificate], moment: datetime = at) -> Any:
        return ValidationContext(trust_roots=roots, moment=moment, allow_fetching=False, revocation_mode="soft-fail")

    poe: datetime | None = None  # the time-stamp the signer's certificate was judged at, if not at `at`
    try:
        cert = sig.signer_cert
        signer, issuer, serial = cert.subject.human_friendly, cert.issuer.human_friendly, cert.serial_number
        status = _run_coroutine(async_validate_pdf_signature(
            sig, signer_validation_context=context(trust), ts_validation_context=context(tsa_trust)))
        ts = status.timestamp_validity
        if (status.intact and status.valid and not status.trusted and ts is not None and ts.intact and ts.valid
                and ts.trusted and ts.timestamp < at):
            # the time-stamp, trusted now, proves the signature existed at its genTime: the signer's
            # certificate is judged then (ETSI EN 319 102-1 §5.6.2.4, validation with a proof of existence),
            # so a seal stays valid after its certificate expires, for as long as its TSA's does
            then = _run_coroutine(async_validate_pdf_signature(
                sig, signer_validation_context=context(trust, ts.timestamp), ts_validation_context=context(tsa_trust)))
            if then.intact and then.valid and then.trusted:
                status, poe = then, ts.timestamp
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # noqa: BLE001  # whatever a signature holds fails that signature only
        return SignatureCheck(
            field=field, signer=signer, issuer=issuer, serial=serial, signing_time=None, intact=False,
            trusted=False, trust_detail="not checked", tsa=None, tsa_time=None, timestamp_ok=None,
            coverage="unknown", modification_level=None, changed_after_signing=True, revision=revision,
            revision_sha256=digest, revision_bytes=end, ok=False,
            problem=f"the signature cannot be validated: {type(e).__name__}: {str(e)[:200]}")
    intact = bool(status.intact and status.valid)
    trusted = bool(status.trusted)
    ts = status.timestamp_validity
    timestamp_ok = None if ts is None else bool(ts.intact and ts.valid and ts.trusted)
    level = status.modification_level
    covers_all = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    changed = not covers_all and not status.docmdp_ok
    return SignatureCheck(
        field=field,
        signer=signer,
        issuer=issuer,
        serial=serial,
        signing_time=status.signer_reported_dt,
        intact=intact,
        trusted=trusted,
        trust_detail=_trust_detail(status, at, poe),
        tsa=ts.signing_cert.subject.human_friendly if ts is not None else None,
        tsa_time=ts.timestamp if ts is not None else None,
        timestamp_ok=timestamp_ok,
        coverage=status.coverage.name.lower() if status.coverage is not None else "unknown",
        modification_level=level.name.lower() if level is not None else None,
        changed_after_signing=changed,
        revision=revision,
        revision_sha256=digest,
        revision_bytes=end,
        ok=intact and trusted and timestamp_ok is not False and not changed and bool(status.bottom_line),
        problem="" if intact else "the signed bytes or the signature do not match: not intact",
    )


def _signed_revision(sig: Any, size: int) -> tuple[int, int]:
    """The signed revision's number (0 is the first) and where it ends: the end of the byte range."""
    try:
        ranges = [int(x) for x in sig.byte_range]
        end = ranges[-2] + ranges[-1]
        revision = int(sig.signed_revision)
    except Exception:  # noqa: BLE001  # a hostile /ByteRange: the whole file is reported
        return -1, size
    return revision, max(0, min(end, size))


def _trust_detail(status: Any, at: datetime, poe: datetime | None = None) -> str:
    if status.trusted:
        path = status.validation_path
        anchor = path.trust_anchor.authority.name.human_friendly if path is not None else "a given root"
        if poe is not None:
            return (f"chains to {anchor!r}, valid at its time-stamp {poe.isoformat()} (the time-stamp, valid at "
                    f"{at.isoformat()}, proves the signature existed then; the certificate is not valid now)")
        return f"chains to {anchor!r}, valid at {at.isoformat()}"
    indic = status.trust_problem_indic
    why = indic.name.lower() if indic is not None else "no path to a given root"
    return f"not trusted at {at.isoformat()}: {why}"
