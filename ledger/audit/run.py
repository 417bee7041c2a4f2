"""The audit of a whole ledger: the log's tables, the envelopes' tables, and the outside evidence.

`audit(log, ...)` checks what it is given (the tests' entry point); `audit_home(home, ...)` opens a
ledger folder for reading only (so a damaged database, which a writer refuses to open, can still be
audited) and checks everything, with the TSA roots and witness keys of its configuration and the
checkpoints held outside: `ledger.checkpoint` beside the database, and any the caller names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ledger.access.apikeys import KEY_COLUMNS, seal_problem
from ledger.anchoring.tsa import ROOT_CERT_FILE
from ledger.audit.envelopes import EnvelopeAudit
from ledger.audit.evidence import TsaTrust, check_anchors, check_cosignatures
from ledger.audit.log import Outside, audit_log
from ledger.audit.report import AuditReport
from ledger.config import LOCAL_TSA_NAME, Config, read_cert
from ledger.documents.blobs import BlobStore
from ledger.envelopes.core import TSA_DIR, Ledger
from ledger.envelopes.seals import COLUMNS as SEAL_COLUMNS
from ledger.envelopes.seals import row_problem
from ledger.errors import RefusedError
from ledger.storage.log import TileLog
from verifier.note import CosignatureVerifier, Ed25519Verifier


def audit(log: TileLog, *, verifier: Ed25519Verifier | None = None, events: bool = True,
          blobs: BlobStore | None = None, trust: Mapping[str, TsaTrust] | None = None,
          witnesses: Sequence[CosignatureVerifier] | None = None, outside: Sequence[Outside] = ()) -> AuditReport:
    """Recompute and compare everything the log and its tables hold.

    Args:
        log: the log (a reader will do).
        verifier: the log's verifier key (default: the writer's own).
        events: replay the envelopes and check their tables.
        blobs: check the stored originals too (only with `events`).
        trust: re-verify every anchor against these TSAs' roots (by TSA name).
        witnesses: re-verify every cosignature against these witness keys.
        outside: checkpoints held outside the database, which the log must hold.
    """
    verifier = verifier or log.signer.verifier
    rep = AuditReport()
    envelopes = EnvelopeAudit(rep) if events else None
    notes = audit_log(log, rep, verifier, verifier.name, outside,
                      envelopes.entry if envelopes is not None else lambda _i, _raw: None)
    if envelopes is not None:
        envelopes.check(log, blobs)
    if trust is not None:
        check_anchors(log, rep, notes, trust)
    if witnesses is not None:
        check_cosignatures(log, rep, notes, witnesses)
    _check_api_keys(log, rep, verifier)
    _check_seals(log, rep, verifier, blobs)
    return rep


def _check_api_keys(log: TileLog, rep: AuditReport, verifier: Ed25519Verifier) -> None:
    """Each API key's row against its seal by the log key (`ledger.access.apikeys`)."""
    for row in log.conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"):
        rep.api_keys += 1
        problem = seal_problem(verifier, row)
        if problem is not None:
            rep.add(f"api_keys row id={row[0]}: {problem}; the key is refused")


def _check_seals(log: TileLog, rep: AuditReport, verifier: Ed25519Verifier, blobs: BlobStore | None) -> None:
    """Each registered seal's row against its note by the log key (`ledger.envelopes.seals`), and the stored
    scan of a physical seal against its fingerprint."""
    for row in log.conn.execute(f"SELECT {SEAL_COLUMNS} FROM seals ORDER BY tenant, fingerprint"):
        rep.seals += 1
        problem = row_problem(verifier, row)
        if problem is not None:
            rep.add(f"seals row tenant={row[0]} fingerprint={row[1][:16]}…: {problem}; the seal is refused")
        image = row[4]
        if blobs is not None and image is not None and (digest := blobs.digest(image)) != image:
            rep.add(f"seals row tenant={row[0]} fingerprint={row[1][:16]}…: its image {image[:16]}… is "
                    + ("not stored" if digest is None else "damaged (it no longer hashes to its name)"))


def audit_home(home: Path, checkpoint_files: Sequence[Path] = ()) -> AuditReport:
    """`ledger audit`: everything, on the ledger in `home` opened for reading only, as of one snapshot of its
    database (taken after the checkpoint file is read, which is written after each COMMIT: so an honest
    database holds it), whatever the hosts write meanwhile."""
    outside = [_read_outside(p) for p in checkpoint_files]
    led = Ledger.open_reader(home)
    try:
        published = led.log.checkpoint_file
        if published.exists():
            outside.insert(0, Outside(str(published), published.read_text(errors="replace")))
        trust = tsa_trust(home, led.config)
        with led.log.snapshot():
            return audit(led.log, verifier=led.verifier, blobs=led.blobs, trust=trust,
                         witnesses=led.config.witness_verifiers(), outside=outside)
    finally:
        led.close()


def tsa_trust(home: Path, config: Config) -> dict[str, TsaTrust]:
    """The roots each TSA's tokens are checked against: the local TSA's own root, and the configured ones."""
    trust: dict[str, TsaTrust] = {}
    local_root = home / TSA_DIR / ROOT_CERT_FILE
    if local_root.exists():
        trust[LOCAL_TSA_NAME] = TsaTrust((local_root.read_bytes(),))
    for t in config.tsa:
        trust[t.name] = TsaTrust(tuple(read_cert(home, p, t.name) for p in t.roots),
                                 tuple(read_cert(home, p, t.name) for p in t.certs))
    return trust


def _read_outside(path: Path) -> Outside:
    try:
        return Outside(str(path), path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise RefusedError(f"cannot read checkpoint {path}: {getattr(e, 'strerror', None) or e}",
                           code="bad_input") from None
