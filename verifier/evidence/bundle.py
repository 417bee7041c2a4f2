"""Check an evidence bundle offline (DESIGN.md §3 "Evidence bundle"): every check, one checklist, one verdict.

The steps, in the order of the checklist (numbers as in `_log` and `_docs`):

 (0) `manifest.json` parses, and every file in the bundle is one it lists, with its SHA-256 and size
 (1) the log key: the one the caller gives (the bundle must be of it), else the bundle's own, said so
 (2-4) checkpoints signed by the log key, consistency proofs between them, witness cosignatures
 (5-7) every entry in canonical form, one unbroken envelope chain, each in the proof checkpoint
 (8) the log's signed statement that these are all of the envelope's events, if the bundle has one
 (9) the lifecycle replayed from the entries gives the status the bundle states
 (10) the openings open the entries' commitments
 (11) the RFC 3161 anchors of the proof checkpoint, standing at the moment of judgment
 (12-13) the documents are the versions the log registered; the platform's seals on them hold
 (14) the report's seal holds, and the manifest it embeds is the bundle's evidence manifest

`check_evidence` runs (1)-(13) on the evidence files alone (no report yet): the ledger runs it on its
export before it writes the report, which states the result. `verify_bundle` runs everything on a
bundle. What it does not do: read files or a clock (the caller opens the zip and gives the time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from verifier.anchored import AnchoredReport
from verifier.documents.pdfsig import PdfReport
from verifier.errors import VerificationError
from verifier.evidence import _anchors, _docs, _log
from verifier.evidence._log import Files as Files
from verifier.evidence._log import Trust as Trust
from verifier.evidence._log import _Ctx
from verifier.evidence.manifest import MANIFEST, MAX_MANIFEST_BYTES, VERIFY_MD, Manifest, parse_manifest
from verifier.evidence.result import Check, Checklist, Report

T = TypeVar("T")


@dataclass(frozen=True)
class Evidence:
    """What the checks of the evidence files found: the checklist, and the facts a report states."""

    checks: tuple[Check, ...]
    caveats: tuple[str, ...]
    status: str | None
    trusted_time: datetime | None
    anchored: AnchoredReport | None
    witnessed: tuple[tuple[str, int, int], ...]  # witness, checkpoint size, Unix time
    proofs: tuple[dict[str, Any], ...]
    pdfs: dict[str, PdfReport]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def check_files(cl: Checklist, files: Files, manifest: Manifest) -> dict[str, str]:
    """(0) every listed file present with its SHA-256 and size, none unlisted; returns the verified hashes."""
    listed = {f.path: f for f in manifest.files}
    present = set(files.names)
    problems: list[tuple[str, str | None]] = []
    if len(listed) != len(manifest.files):
        problems.append(("manifest.json lists a file twice", MANIFEST))
    for path in sorted(present - set(listed) - {MANIFEST}):
        problems.append((f"{path} is in the bundle but not in manifest.json (a file added to the bundle)", path))
    for path in sorted(set(listed) - present):
        problems.append((f"{path} is listed in manifest.json but not in the bundle (a file dropped)", path))
    for path in sorted((manifest.paths() | {VERIFY_MD}) - set(listed)):
        problems.append((f"manifest.json refers to {path} but does not list it with a hash", MANIFEST))
    verified: dict[str, str] = {}
    for path in sorted(set(listed) & present):
        try:
            sha, size = files.sha256(path)
        except VerificationError as e:
            problems.append((f"{path}: {e}", path))
            continue
        if sha != listed[path].sha256 or size != listed[path].size:
            problems.append((f"{path} has SHA-256 {sha} ({size} bytes), manifest.json says {listed[path].sha256} "
                             f"({listed[path].size} bytes): the file was changed", path))
            continue
        verified[path] = sha
    cl.family("files", problems, f"{len(verified)} files have the SHA-256 manifest.json lists; nothing added, nothing "
              "missing")
    return verified


def check_evidence(manifest: Manifest, files: Files, trust: Trust, at: datetime, *,
                   hashes: dict[str, str] | None = None, cl: Checklist | None = None) -> tuple[_Ctx, Evidence]:
    """Steps (1)-(13) on the evidence manifest and its files; with `hashes` from `check_files`, the files'
    hashes are taken as verified, else step (0) runs on them first."""
    if at.utcoffset() is None:
        raise ValueError("the moment of judgment must be timezone-aware")
    cl = cl if cl is not None else Checklist()
    if hashes is None:
        hashes = check_files(cl, files, manifest)
    c = _Ctx(files, manifest, trust, at, cl)
    c.tsa_roots = _step(cl, "TSA roots", _anchors.tsa_roots, c) or []
    c.seal_roots = _step(cl, "seal roots", _docs.seal_roots, c) or []
    status = None
    pdfs: dict[str, PdfReport] = {}
    if _step(cl, "log key", _log.check_key, c):
        _step(cl, "checkpoints", _log.check_checkpoints, c)
        _step(cl, "entries", _log.check_entries, c)
        _step(cl, "envelope head", _log.check_head, c)
        status = _step(cl, "lifecycle", _log.check_lifecycle, c)
        _step(cl, "openings", _log.check_openings, c)
        _step(cl, "anchors", _anchors.check_anchors, c)
        pdfs = _step(cl, "documents", _docs.check_documents, c, hashes) or {}
    ev = Evidence(tuple(cl.checks), tuple(dict.fromkeys(c.caveats)), status, _anchors.trusted_time(c), c.anchored,
                  tuple(c.witnessed), tuple(_log.proof_hashes(c)), pdfs)
    return c, ev


def _step(cl: Checklist, name: str, check: Callable[..., T], *args: Any) -> T | None:
    """Run one step; whatever a hostile bundle makes it raise is a failed check of that step, never a crash."""
    try:
        return check(*args)
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # noqa: BLE001  # parsers of hostile data raise many types: all mean "fails"
        cl.fail(name, f"could not be checked: {type(e).__name__}: {str(e)[:200]}")
        return None


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def verify_bundle(files: Files, trust: Trust | None = None, *, at: datetime | None = None) -> Report:
    """Check a whole bundle (steps (0)-(14)) at the moment `at` (default: the time the bundle was made,
    which the verdict says)."""
    cl = Checklist()
    try:
        manifest = parse_manifest(files.read(MANIFEST, MAX_MANIFEST_BYTES))
    except VerificationError as e:
        cl.fail("manifest", f"manifest.json cannot be used: {e}", MANIFEST)
        return Report("bundle", tuple(cl.checks), at)
    caveats: list[str] = []
    when = at or parse_time(manifest.generated)
    if when is None:
        cl.fail("manifest", f"manifest.json's generated time {manifest.generated!r} is no RFC 3339 time", MANIFEST)
        return Report("bundle", tuple(cl.checks), at)
    if at is None:
        caveats.append(f"judged at the moment the bundle was made, {manifest.generated} (give --at to judge at "
                       "another moment, e.g. now)")
    hashes = check_files(cl, files, manifest)
    c, ev = check_evidence(manifest.evidence(), files, trust or Trust(), when, hashes=hashes, cl=cl)
    _step(cl, "report", _docs.check_report, c, manifest)
    env = manifest.envelope
    summary = (f"the {env.events} events of envelope {env.ref!r} (tenant {env.tenant!r}) replay to status "
               f"{ev.status or env.status!r}" + (" (INTERIM: still in progress)" if manifest.interim else "")
               + f"; in log {manifest.log.origin} at size {manifest.log.size}")
    if ev.trusted_time is not None:
        summary += f"; they existed no later than {ev.trusted_time.astimezone(UTC).isoformat()} (RFC 3161)"
    facts = {"envelope": {"ref": env.ref, "tenant": env.tenant, "env": env.env, "status": env.status,
                          "events": env.events, "interim": manifest.interim},
             "log": {"origin": manifest.log.origin, "size": manifest.log.size},
             "trusted_time": ev.trusted_time.isoformat() if ev.trusted_time else None}
    return Report("bundle", tuple(cl.checks), when, tuple(dict.fromkeys(c.caveats + caveats)), summary, facts)
