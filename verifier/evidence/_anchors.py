"""The time side of a bundle check: the RFC 3161 anchors of the proof checkpoint and their renewals, and the
certificates (TSA roots and intermediates, seal roots) the bundle carries.

 (11) every token over its checkpoint body (a renewal: over the token it renews), chained to a TSA root
      at its genTime, standing at the moment of judgment, or renewed before its certificate expired
      (RFC 3161 §2.4.2, RFC 4998 §5.2, through `verifier.anchored` and `verifier.timestamp`)

A file that holds no certificate is a failed check naming it, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from verifier._cms import load_certificates
from verifier.anchored import AnchoredBundle, AnchorRecord, verify_anchored
from verifier.errors import VerificationError
from verifier.evidence._log import CERT_LIMIT, TOKEN_LIMIT, _Ctx
from verifier.timestamp import token_from_response, verify_timestamp


def check_anchors(c: _Ctx) -> None:
    """(11) the anchors of the proof checkpoint: every RFC 3161 token over its checkpoint body (a renewal:
    over the token it renews), chained to a TSA root at its genTime, standing at the moment of judgment
    (or renewed before its certificate expired: RFC 4998 §5.2); the entry existed no later than the
    earliest genTime of an anchor that stands (verifier.anchored)."""
    assert c.key is not None
    m = c.manifest
    roots = c.tsa_roots
    extra = certificates(c, [p for paths in m.log.tsa_certs.values() for p in paths], "TSA certificates")
    records: list[AnchorRecord] = []
    files: dict[int, str] = {}
    for a in m.log.anchors:
        data = c.read(a.file, TOKEN_LIMIT, "anchors")
        if data is None:
            continue
        if a.size != m.log.size:
            c.cl.fail("anchors", f"{a.file} anchors checkpoint {a.size}, not the proof checkpoint {m.log.size}", a.file)
            continue
        try:
            records.append(AnchorRecord(a.id, a.tsa, token_from_response(data), a.renews, a.gen_time, a.serial))
        except VerificationError as e:
            c.cl.fail("anchors", f"{a.file} is not a granted RFC 3161 response: {e}", a.file)
            continue
        files[a.id] = a.file
    last = m.entries[-1].index if m.entries else -1
    proof = c.proofs.get(last)
    if not records or proof is None:
        c.cl.fail("anchors", "no anchor of the proof checkpoint can be checked: the bundle proves no trusted time"
                  if not records else "the last entry's proof failed, so its anchors cannot be checked", None)
        return
    raw = next(e.raw for f, e in c.entries if f == m.entries[-1].file)
    try:
        bundle = AnchoredBundle(last, raw, proof, tuple(records))
        rep = verify_anchored(bundle.to_text(), c.key, roots, at=c.at, extra_certs=extra)
    except VerificationError as e:
        c.cl.fail("anchors", f"the anchors cannot be checked: {e}", None)
        return
    c.anchored = rep
    by_id = {r.id: r for r in records}
    for check in rep.anchors:
        c.cl.add("anchor", check.ok, check.line(), files.get(check.id))
    for r in records:
        if r.renews is None or r.renews not in by_id:
            continue
        ts = verify_timestamp(r.token, data=by_id[r.renews].token, trusted_roots=roots, extra_certs=extra)
        failed = ts.first_failure()
        c.cl.add("anchor renewal", ts.ok, f"anchor #{r.id} ({r.tsa}) renews #{r.renews}: "
                 + (f"genTime {ts.gen_time.isoformat() if ts.gen_time else '?'}" if ts.ok else
                    f"({failed.number}) {failed.name}: {failed.detail}" if failed else "incomplete"), files.get(r.id))
    if rep.ok and rep.trusted_by is not None and all(x.local for x in rep.anchors if x.ok):
        c.caveats.append("the trusted time comes from the ledger's local TSA, which is not accredited")


def tsa_roots(c: _Ctx) -> list[bytes]:
    if c.trust.tsa_roots is not None:
        return list(c.trust.tsa_roots)
    paths = [p for v in c.manifest.log.tsa_roots.values() for p in v]
    c.caveats.append("the TSA roots were taken from the bundle itself (give --trust-tsa with the roots you trust)")
    return certificates(c, paths, "TSA roots")


def certificates(c: _Ctx, paths: Sequence[str], check: str) -> list[bytes]:
    """The certificates in these files of the bundle (PEM or DER); a file that holds none is a failed check."""
    out = []
    for p in paths:
        data = c.read(p, CERT_LIMIT, check)
        if data is None:
            continue
        try:
            load_certificates([data])
        except Exception as e:  # noqa: BLE001  # asn1crypto raises many types on a damaged file
            c.cl.fail(check, f"{p} is not a certificate: {type(e).__name__}: {str(e)[:120]}", p)
            continue
        out.append(data)
    return out


def trusted_time(c: _Ctx) -> datetime | None:
    return c.anchored.trusted_time if c.anchored is not None else None
