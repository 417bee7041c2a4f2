"""Outside evidence the ledger keeps: RFC 3161 anchors and witness cosignatures, re-verified.

1. `anchors`: ids run without a gap (a deleted row leaves one), each token verifies (RFC 3161, against
   the roots configured for its TSA) over the body of the checkpoint of its `size` or over the token it
   renews, and the row's `gen_time`, `serial` and `cert_expires` are the token's; each TSA's
   `tsa_status.anchored_size` has its anchor (the newest row, deleted, is named so);
2. `cosignatures`: each line is a `cosignature/v1` by a configured witness over the checkpoint of its
   size, and the row's `time` is the one the line signs.
A page shows both as trusted time and as notaries' confirmation: a row that does not verify is named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.audit.report import AuditReport
from ledger.storage.log import TileLog
from verifier.anchored import certificate_expiry
from verifier.errors import VerificationError
from verifier.note import CosignatureVerifier, cosignature_time, parse_note
from verifier.timestamp import verify_timestamp


@dataclass(frozen=True)
class TsaTrust:
    """What a TSA's tokens are checked against: its roots, and certificates its tokens may leave out."""

    roots: tuple[bytes, ...]
    extra_certs: tuple[bytes, ...] = ()


def check_anchors(log: TileLog, rep: AuditReport, notes: Mapping[int, str], trust: Mapping[str, TsaTrust]) -> None:
    rows = log.conn.execute("SELECT id, size, tsa, gen_time, serial, token, renews, cert_expires FROM anchors"
                            " ORDER BY id").fetchall()
    tokens = {int(r[0]): bytes(r[5]) for r in rows}
    expected = 1
    for ident, size, tsa, gen_time, serial, token, renews, cert_expires in rows:
        rep.anchors += 1
        if ident != expected:
            missing = f"id {expected}" if ident == expected + 1 else f"ids {expected} to {ident - 1}"
            rep.add(f"anchors: {missing} missing before row id={ident} (a row was deleted)")
        expected = ident + 1
        where = f"anchors row id={ident} (TSA {tsa}, size {size})"
        t = trust.get(tsa)
        if t is None:
            rep.add(f"{where}: TSA {tsa!r} is not configured, so its token cannot be checked (configure its "
                    "roots in a [[tsa]] table)")
            continue
        if renews is None:
            note = notes.get(size)
            if note is None:
                rep.add(f"{where}: no checkpoint of size {size} is stored")
                continue
            data = parse_note(note).text.encode()
        else:
            if renews not in tokens:
                rep.add(f"{where}: it renews anchor {renews}, which is not stored")
                continue
            data = tokens[renews]
        try:
            report = verify_timestamp(bytes(token), data=data, trusted_roots=t.roots, extra_certs=t.extra_certs)
        except (VerificationError, ValueError) as e:
            rep.add(f"{where}: the token cannot be read ({e})")
            continue
        failed = report.first_failure()
        if failed is not None:
            over = "the checkpoint" if renews is None else f"anchor {renews}'s token"
            rep.add(f"{where}: the token does not verify over {over}: step {failed.number} ({failed.name}): "
                    f"{failed.detail}")
            continue
        assert report.gen_time is not None and report.signer_cert_der is not None
        if _instant(gen_time) != report.gen_time:
            rep.add(f"{where}: gen_time is {gen_time}, but the token says {_text(report.gen_time)}")
        if serial != str(report.serial):
            rep.add(f"{where}: serial is {serial}, but the token's is {report.serial}")
        if _instant(cert_expires) != certificate_expiry(report.signer_cert_der):
            rep.add(f"{where}: cert_expires is {cert_expires}, but the TSA certificate expires "
                    f"{_text(certificate_expiry(report.signer_cert_der))}")
    anchored = {(tsa, size) for _, size, tsa, _, _, _, renews, _ in rows if renews is None}
    for tsa, size in log.conn.execute(
            "SELECT tsa, anchored_size FROM tsa_status WHERE anchored_size > 0 ORDER BY tsa"):
        if (tsa, size) not in anchored:
            rep.add(f"anchors: TSA {tsa} anchored the checkpoint of size {size} (tsa_status), but no anchor of it is "
                    "stored (the row was deleted)")


def check_cosignatures(log: TileLog, rep: AuditReport, notes: Mapping[int, str],
                       witnesses: Sequence[CosignatureVerifier]) -> None:
    by_name = {w.name: w for w in witnesses}
    for size, witness, time, line in log.conn.execute(
            "SELECT size, witness, time, line FROM cosignatures ORDER BY size, witness"):
        rep.cosignatures += 1
        where = f"cosignatures row size={size} witness={witness}"
        w = by_name.get(witness)
        if w is None:
            rep.add(f"{where}: {witness!r} is not a configured witness, so its cosignature cannot be checked "
                    "(add its verifier key to `witnesses`)")
            continue
        note = notes.get(size)
        if note is None:
            rep.add(f"{where}: no checkpoint of size {size} is stored")
            continue
        try:
            signed = parse_note(note + str(line) + "\n")
            sig = next(s for s in signed.signatures if s.name == w.name and s.key_id == w.key_id)
            ok = w.verify(signed.text, sig.signature)
        except (VerificationError, StopIteration):
            ok = False
        if not ok:
            rep.add(f"{where}: the line is not {witness}'s cosignature of the checkpoint of size {size}")
            continue
        if cosignature_time(sig) != time:
            rep.add(f"{where}: time is {time}, but the cosignature signs {cosignature_time(sig)}")


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
