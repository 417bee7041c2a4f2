"""`verifier notary lookup`: is a document, by its SHA-256, in a log? In which entry, and since when?

 (1) `GET /d/<sha256>`: whether the log says a document with that hash is registered
 (2) the log's latest checkpoint, signed by its key (`--log-key`, the key pinned in `--state`, or
     `/log-key` on first use, with a warning)
 (3) every entry bundle and tile of that tree, recomputed up to its root (`notary.tiles`); the entries
     that name the hash (`sha256` of document.added, document.sealed and paper.scanned, `signed_sha256`
     of party.signed) are found in what the log signed, not in what an index says
 (4) the trusted time of the first of them, an anchored proof checked by `verifier.anchored`: with
     `--api-key` (of the entry's tenant) the log's `/api/v1/entries/<i>/anchored`, whose checkpoint is
     the earliest anchored one holding the entry; without, one assembled from public routes: the
     checkpoints the TSAs anchored (`GET /tsa`), `GET /checkpoint/<size>`, `GET /anchors/<size>`, and
     the inclusion proof computed from the tiles

Exit codes: 0 found, 1 not in the log (or the log's answers do not agree), 2 the log could not be asked.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from notary._http import LogClient
from notary.errors import FetchError
from notary.tiles import Tree, fetch_tree, inclusion_hashes
from notary.trust import Say, anchored_sizes, anchors_at, log_key, tsa_roots
from verifier.anchored import AnchoredBundle, AnchoredReport, verify_anchored
from verifier.checkpoint import verify_checkpoint
from verifier.errors import RootMismatchError, VerificationError
from verifier.merkle import root_of_hashes
from verifier.note import MAX_NOTE_SIZE, Ed25519Verifier
from verifier.tlogproof import TlogProof

HASH_FIELDS = ("sha256", "signed_sha256")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_ANCHORED = 16 << 20


def naming(tree: Tree, sha256: str) -> list[tuple[int, str]]:
    """(index, event type) of each entry whose data names the hash."""
    found = []
    needle = sha256.encode()
    for i, raw in enumerate(tree.entries):
        if needle not in raw:  # most entries: no JSON to parse
            continue
        try:
            entry = json.loads(raw)
            data = entry["data"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(data, dict) and any(data.get(f) == sha256 for f in HASH_FIELDS):
            found.append((i, str(entry.get("type"))))
    return found


class Lookup:
    def __init__(self, client: LogClient, sha256: str, *, key: str | None, state: Path | None, roots: list[bytes],
                 say: Say, now: datetime | None = None) -> None:
        sha256 = sha256.strip().lower()
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"--sha256 {sha256!r} is not 64 hex digits")
        self.client, self.sha, self.given_key, self.state, self.given_roots = client, sha256, key, state, roots
        self.say = say
        self.now = now or datetime.now(UTC)

    def run(self) -> int:
        # (1) does the log say it holds the document?
        said = self.client.json(f"/d/{self.sha}", 1 << 20)
        registered = isinstance(said, dict) and said.get("registered") is True
        self.say(f"{'ok' if registered else '--'} the log says a document with SHA-256 {self.sha} is "
                 f"{'registered' if registered else 'not registered'}")
        # (2) its signed tree, (3) the entries of that tree naming it
        key = log_key(self.client, self.state, self.given_key, self.say)
        new = verify_checkpoint(self.client.text("/checkpoint", MAX_NOTE_SIZE), key)
        cp = new.checkpoint
        tree = fetch_tree(self.client, cp.size, cp.root)
        self.say(f"ok read the {cp.size} entries of {cp.origin}'s signed tree (size {cp.size}) from its tiles")
        found = naming(tree, self.sha)
        if not found:
            if registered:
                raise VerificationError(f"the log says the document is registered, but no entry of its tree of size "
                                        f"{cp.size} names SHA-256 {self.sha}", code="not_in_log")
            self.say(f"NOT FOUND no entry of {cp.origin} (size {cp.size}) names SHA-256 {self.sha}")
            return 1
        for i, kind in found:
            self.say(f"ok entry {i} ({kind}) names it")
        index = found[0][0]
        # (4) since when
        report = self._anchored(index, tree, key)
        if report is None:
            self.say(f"FOUND entry {index} of {cp.origin}; no anchor of a checkpoint holding it yet (the log anchors "
                     "at its interval): no trusted time yet")
            return 0
        for line in report.lines():
            self.say(f"   {line}")
        report.require_valid()
        by = report.trusted_by
        assert by is not None and report.trusted_time is not None
        kind = ", a local TSA, not accredited" if by.local else ""
        self.say(f"FOUND entry {index} of {cp.origin}, which existed no later than {report.trusted_time.isoformat()} "
                 f"(genTime of anchor #{by.id}, TSA {by.tsa}{kind})")
        return 0

    def _anchored(self, index: int, tree: Tree, key: Ed25519Verifier) -> AnchoredReport | None:
        roots = tsa_roots(self.client, self.state, self.given_roots, self.say)
        entry = tree.entries[index]
        if self.client.api_key:
            try:
                bundle = self.client.get(f"/api/v1/entries/{index}/anchored", MAX_ANCHORED, auth=True)
            except FetchError as e:
                if e.status == 404 and "not_anchored" in str(e):
                    return None
                raise
            return verify_anchored(bundle, key, roots, at=self.now, entry=entry)
        for size in anchored_sizes(self.client):
            if not index < size <= tree.size:
                continue
            signed = verify_checkpoint(self.client.text(f"/checkpoint/{size}", MAX_NOTE_SIZE), key)
            computed = root_of_hashes(tree.leaves[:size])
            if computed != signed.checkpoint.root:
                raise RootMismatchError(signed.checkpoint.root, computed,
                                        f"root of the log's checkpoint of size {size} and of its tiles'")
            records = anchors_at(self.client, size)
            if not records:
                continue
            proof = TlogProof(index, tuple(inclusion_hashes(tree.leaves, index, size)), signed)
            bundle_text = AnchoredBundle(index, entry, proof.to_text(), tuple(records)).to_text()
            return verify_anchored(bundle_text, key, roots, at=self.now, entry=entry)
        return None
