"""Anchored proofs: when did an entry exist? A tlog-proof plus RFC 3161 anchors and their renewals.

What it does: parse and check the anchored-proof bundle of DESIGN.md §3 "Proof of one event", a
UTF-8 JSON object:

    {"format": "evidence-ledger/anchored-proof@v1",
     "index": 5, "entry": "<base64 leaf bytes>",
     "tlog_proof": "<C2SP tlog-proof text, checkpoint note at its end>",
     "anchors": [{"id": 1, "tsa": "local", "renews": null, "gen_time": "...Z", "serial": "7",
                  "token": "<base64 DER TimeStampToken>"}, ...]}

An anchor with `renews` null time-stamps SHA-256 of the checkpoint body (the note text before the
blank line). A renewal time-stamps SHA-256 of the DER token of the anchor it renews, the idea of
RFC 4998 §5.2 (renewing an archive time-stamp before its certificate expires). The check:

 (1) the tlog-proof: the log key signed the checkpoint and the entry is at `index` (C2SP tlog-proof)
 (2) every token passes `verifier.timestamp.verify_timestamp` over its data, with its chain
     checked at its own genTime (RFC 3161 §2.4.2, §4)
 (3) at the moment of judgment `at`, an anchor stands if its TSA certificate is still valid, or if
     a renewal that stands was made (genTime) no later than that certificate's notAfter
 (4) the entry existed no later than the earliest genTime of an anchor that stands

What it does not do: I/O or reading a clock (`at` comes from the caller), revocation, or trusting
the `tsa`, `gen_time` and `serial` labels (they are checked against the tokens, which are the
evidence). A token whose certificate says "not accredited" is reported as a local TSA's.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from asn1crypto import x509

from verifier.errors import FormatError, VerificationError
from verifier.note import Ed25519Verifier
from verifier.timestamp import TimestampReport, verify_timestamp
from verifier.tlogproof import TlogProof, verify_tlog_proof

FORMAT = "evidence-ledger/anchored-proof@v1"
MAX_BUNDLE_SIZE = 16 << 20
LOCAL_TSA = "local"


@dataclass(frozen=True)
class AnchorRecord:
    """One stored anchor or renewal: the token is the evidence, the other fields are labels."""

    id: int
    tsa: str
    token: bytes
    renews: int | None = None
    gen_time: str = ""
    serial: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "tsa": self.tsa, "renews": self.renews, "gen_time": self.gen_time,
                "serial": self.serial, "token": base64.b64encode(self.token).decode()}

    @classmethod
    def from_json(cls, raw: Any) -> AnchorRecord:
        if not isinstance(raw, dict):
            raise FormatError("an anchor is not a JSON object")
        ident, renews, tsa = raw.get("id"), raw.get("renews"), raw.get("tsa")
        if not _is_int(ident) or not (renews is None or _is_int(renews)) or not isinstance(tsa, str):
            raise FormatError("an anchor needs an integer id, a tsa name and renews (an id or null)")
        labels = [raw.get("gen_time", ""), raw.get("serial", "")]
        if not all(isinstance(v, str) for v in labels):
            raise FormatError(f"anchor #{ident}: gen_time and serial must be strings")
        return cls(ident, tsa, _b64(raw.get("token"), f"anchor #{ident} token"), renews, *labels)


@dataclass(frozen=True)
class AnchoredBundle:
    index: int
    entry: bytes
    tlog_proof: str
    anchors: tuple[AnchorRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "index": self.index, "entry": base64.b64encode(self.entry).decode(),
                "tlog_proof": self.tlog_proof, "anchors": [a.to_json() for a in self.anchors]}

    def to_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, raw: Any) -> AnchoredBundle:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise FormatError(f"not an anchored proof: the format must be {FORMAT!r}")
        index, proof, anchors = raw.get("index"), raw.get("tlog_proof"), raw.get("anchors")
        if not _is_int(index) or not isinstance(proof, str) or not isinstance(anchors, list):
            raise FormatError("an anchored proof needs index (integer), tlog_proof (text) and anchors (list)")
        records = tuple(AnchorRecord.from_json(a) for a in anchors)
        ids = [a.id for a in records]
        if len(set(ids)) != len(ids):
            raise FormatError("two anchors have the same id")
        for a in records:
            if a.renews is not None and (a.renews >= a.id or a.renews not in ids):
                raise FormatError(f"anchor #{a.id} renews #{a.renews}, which is not an earlier anchor here")
        return cls(index, _b64(raw.get("entry"), "entry"), proof, records)


def parse_anchored(data: bytes | str) -> AnchoredBundle:
    if len(data) > MAX_BUNDLE_SIZE:
        raise FormatError(f"anchored proof is larger than {MAX_BUNDLE_SIZE} bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"anchored proof is not JSON: {e}") from None
    except RecursionError:
        raise FormatError("anchored proof is JSON nested too deeply; an anchored proof is a few levels deep") from None
    return AnchoredBundle.from_json(raw)


@dataclass(frozen=True)
class AnchorCheck:
    """The standing of one anchor of the checkpoint at the moment of judgment."""

    id: int
    tsa: str
    local: bool
    ok: bool
    detail: str
    gen_time: datetime | None
    tsa_subject: str | None
    renewed_by: tuple[int, ...] = ()

    def line(self) -> str:
        kind = "local TSA, not accredited" if self.local else "TSA"
        when = f"genTime {self.gen_time.isoformat()}, " if self.gen_time else ""
        return f"anchor #{self.id} {self.tsa} ({kind}): {'ok' if self.ok else 'FAIL'}, {when}{self.detail}"


@dataclass(frozen=True)
class AnchoredReport:
    proof: TlogProof
    anchors: tuple[AnchorCheck, ...]
    ok: bool
    trusted_time: datetime | None
    trusted_by: AnchorCheck | None

    def lines(self) -> list[str]:
        cp = self.proof.checkpoint.checkpoint
        out = [f"entry {self.proof.index} is in {cp.origin} at size {cp.size} "
               "(checkpoint signature and inclusion proof verified)"]
        out += [a.line() for a in self.anchors]
        return out

    def require_valid(self) -> AnchoredReport:
        if not self.ok:
            failures = "; ".join(a.line() for a in self.anchors) or "the bundle holds no anchor"
            raise VerificationError(f"no anchor of the checkpoint stands: {failures}", code="not_anchored")
        return self


def certificate_expiry(cert_der: bytes) -> datetime:
    """The notAfter of a DER certificate (an aware UTC datetime)."""
    value: datetime = x509.Certificate.load(cert_der)["tbs_certificate"]["validity"]["not_after"].native
    return value


def verify_anchored(
    data: bytes | str,
    log_key: Ed25519Verifier,
    trusted_roots: Sequence[bytes],
    *,
    at: datetime,
    entry: bytes | None = None,
    extra_certs: Sequence[bytes] = (),
) -> AnchoredReport:
    """Check an anchored proof; see the module docstring for the four steps.

    Args:
        data: the bundle (JSON).
        log_key: the log's verifier key.
        trusted_roots: TSA root certificates (DER or PEM) the caller trusts.
        at: the moment of judgment (aware): TSA certificates expired by then need a standing renewal.
        entry: if given, the entry bytes the caller holds; they must be the bundle's.
        extra_certs: TSA certificates for tokens that do not carry them.

    Raises:
        VerificationError: the bundle does not parse, or (1) fails. Anchor failures are in the report.
    """
    if at.utcoffset() is None:
        raise ValueError("`at` must be a timezone-aware datetime")
    bundle = parse_anchored(data)
    if entry is not None and entry != bundle.entry:
        raise VerificationError("the bundle proves a different entry than the one given", code="entry_mismatch")
    # (1) the entry is in the checkpoint the log signed (C2SP tlog-proof)
    proof = verify_tlog_proof(bundle.tlog_proof, bundle.entry, log_key)
    if proof.index != bundle.index:
        raise FormatError(f"bundle index {bundle.index} differs from the proof's {proof.index}")
    body = proof.checkpoint.note.text.encode()
    # (2) every token over its data: the checkpoint body, or the token it renews
    by_id = {a.id: a for a in bundle.anchors}
    reports = {
        a.id: verify_timestamp(a.token, data=body if a.renews is None else by_id[a.renews].token,
                               trusted_roots=trusted_roots, extra_certs=extra_certs)
        for a in bundle.anchors
    }
    standing = _Standing(bundle.anchors, reports, at)
    checks = tuple(standing.check(a) for a in bundle.anchors if a.renews is None)
    # (4) the earliest genTime among anchors that stand
    good = sorted((c for c in checks if c.ok and c.gen_time), key=lambda c: (c.gen_time, c.id))
    first = good[0] if good else None
    return AnchoredReport(proof, checks, first is not None, first.gen_time if first else None, first)


class _Standing:
    """(3) Whether an anchor stands at `at`, following renewals (memoised; renewals have larger ids)."""

    def __init__(self, anchors: Sequence[AnchorRecord], reports: dict[int, TimestampReport], at: datetime) -> None:
        self.reports, self.at = reports, at
        self.renewals: dict[int, list[AnchorRecord]] = {}
        for a in anchors:
            if a.renews is not None:
                self.renewals.setdefault(a.renews, []).append(a)
        self.memo: dict[int, AnchorCheck] = {}

    def check(self, a: AnchorRecord) -> AnchorCheck:
        if a.id not in self.memo:
            self.memo[a.id] = self._check(a)
        return self.memo[a.id]

    def _check(self, a: AnchorRecord) -> AnchorCheck:
        rep = self.reports[a.id]
        subject = rep.tsa_name
        local = a.tsa == LOCAL_TSA or "not accredited" in (subject or "")

        def result(ok: bool, detail: str, chain: tuple[int, ...] = ()) -> AnchorCheck:
            return AnchorCheck(a.id, a.tsa, local, ok, detail, rep.gen_time, subject, chain)

        failed = rep.first_failure()
        if failed is not None or not rep.ok or rep.gen_time is None or rep.signer_cert_der is None:
            why = f"({failed.number}) {failed.name}: {failed.detail}" if failed else "token check incomplete"
            return result(False, f"token refused: {why}")
        mislabelled = _label_mismatch(a, rep)
        if mislabelled:
            return result(False, mislabelled)
        if rep.gen_time > self.at:
            return result(False, f"genTime is later than the moment of judgment {self.at.isoformat()}")
        expires = certificate_expiry(rep.signer_cert_der)
        if expires >= self.at:
            return result(True, f"by {subject!r}; TSA certificate valid until {expires.isoformat()}")
        for renewal in self.renewals.get(a.id, []):
            r = self.check(renewal)
            if r.ok and r.gen_time is not None and r.gen_time <= expires:
                return result(True, f"by {subject!r}; TSA certificate expired {expires.isoformat()}, renewed "
                              f"before then by anchor #{r.id} ({r.tsa}, genTime {r.gen_time.isoformat()})",
                              (r.id, *r.renewed_by))
        return result(False, f"TSA certificate expired {expires.isoformat()} and no standing renewal was made "
                      "before then (RFC 4998 §5.2)")


def _label_mismatch(a: AnchorRecord, rep: TimestampReport) -> str:
    assert rep.gen_time is not None
    if a.serial and a.serial != str(rep.serial):
        return f"the bundle labels serial {a.serial}, the token holds {rep.serial}"
    if a.gen_time and _parse_time(a.gen_time) != rep.gen_time:
        return f"the bundle labels genTime {a.gen_time}, the token holds {rep.gen_time.isoformat()}"
    return ""


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not valid base64") from None
