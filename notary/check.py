"""`verifier notary check`: a notary's cross-check of a log it does not run.

Each run, against the log at `--log` and the state folder `--state`:

 (1) the log key: `--log-key`, or the one pinned in the state, or `/log-key` on first use (pinned, with
     a warning: trust on first use)
 (2) `GET /checkpoint` is signed by that key (c2sp.org/tlog-checkpoint, signed-note)
 (3) it extends the checkpoint kept in the state (RFC 9162 §2.1.4.2, `GET /proof/consistency/<old>/<new>`);
     same size with another root, a smaller size, a proof that does not verify, or a log that denies the
     checkpoint it signed is a FORK: both checkpoints (and the proof) are kept in `forks/<time>/`
 (4) the RFC 3161 anchors of the new checkpoint, and of the latest checkpoints the log says its TSAs
     anchored since the kept one (`GET /anchors/<size>`), verify against the trusted TSA roots
     (`--trust-tsa`, or the local TSA's root pinned on first use)
 (5) with `--full`, every entry bundle and tile of the new tree hashes up to its root (`notary.tiles`)
 (6) the new checkpoint replaces the kept one (atomically), only when every step passed

Exit codes: 0 verified, 1 not trustworthy (a fork, a bad signature, proof, anchor or tile), 2 the log
could not be asked or the state folder used. State files: `checkpoint`, and those of `notary.trust`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from notary._files import make_folder, read_state, write_atomic
from notary._http import LogClient
from notary.errors import FetchError, ForkError, StateError
from notary.tiles import fetch_tree
from notary.trust import Say, anchored_sizes, anchors_at, judge_anchors, log_key, require_anchors, tsa_roots
from verifier.checkpoint import SignedCheckpoint, verify_checkpoint
from verifier.errors import FormatError, VerificationError
from verifier.merkle import verify_consistency
from verifier.note import MAX_NOTE_SIZE, Ed25519Verifier
from verifier.tlogproof import hash_lines

CHECKPOINT_FILE = "checkpoint"
FORKS = "forks"
MAX_PROOF_BYTES = 1 << 16


def parse_proof(text: str, where: str) -> list[bytes]:
    """A consistency proof as the log serves it: one base64 hash of 32 bytes a line."""
    try:
        return hash_lines(text.splitlines())
    except FormatError as e:
        raise FormatError(f"{where}: {e}") from None


class Check:
    """One run of the check; `run()` returns the exit code, `say` prints each finding as it is made."""

    def __init__(self, client: LogClient, state: Path, *, key: str | None, roots: list[bytes], full: bool,
                 say: Say, now: datetime | None = None) -> None:
        self.client, self.state, self.given_key, self.given_roots = client, state, key, roots
        self.full, self.say = full, say
        self.now = now or datetime.now(UTC)

    def run(self) -> int:
        try:
            make_folder(self.state)
        except OSError as e:
            raise StateError(f"cannot use the state folder {self.state}: {e}") from None
        # (1) the log key
        key = log_key(self.client, self.state, self.given_key, self.say)
        kept = self._kept(key)
        # (2) the log's latest checkpoint, signed by its key
        served = self.client.text("/checkpoint", MAX_NOTE_SIZE)
        new = verify_checkpoint(served, key)
        cp = new.checkpoint
        self.say(f"ok checkpoint of {cp.origin}: size {cp.size}, root {cp.root.hex()} (signature verified)")
        # (3) consistent with the kept one
        if kept is None:
            self.say("ok first run: nothing kept yet to check consistency with")
        else:
            self._consistent(kept, new)
        # (4) anchors, (5) the whole tree
        self._anchors(new, key, kept.checkpoint.size if kept else 0)
        if self.full and cp.size:
            tree = fetch_tree(self.client, cp.size, cp.root)
            self.say(f"ok --full: {tree.size} entries in {tree.bundles} entry bundles and {tree.tiles} tiles "
                     "hash up to the checkpoint's root")
        # (6) keep it
        try:
            write_atomic(self.state / CHECKPOINT_FILE, new.to_text().encode())
        except OSError as e:
            raise StateError(f"cannot keep the checkpoint in {self.state}: {e}") from None
        self.say(f"VERIFIED {cp.origin} at size {cp.size}; kept in {self.state / CHECKPOINT_FILE}")
        return 0

    def _kept(self, key: Ed25519Verifier) -> SignedCheckpoint | None:
        path = self.state / CHECKPOINT_FILE
        data = read_state(path)
        if data is None:
            return None
        try:
            return verify_checkpoint(data, key)
        except VerificationError as e:
            raise StateError(f"{path} is not a checkpoint of this log signed by its key ({e}); it was written "
                             "atomically, so something else changed it, or --log names another log") from None

    def _consistent(self, kept: SignedCheckpoint, new: SignedCheckpoint) -> None:
        old, cp = kept.checkpoint, new.checkpoint
        if cp.size < old.size:
            self._fork(kept, new, None, f"the log's checkpoint has size {cp.size}, smaller than the {old.size} it "
                                        "signed before: a log never shrinks (a rollback, or a fork)")
        if cp.size == old.size:
            if cp.root != old.root:
                self._fork(kept, new, None, f"the log signed two different trees of size {cp.size}: roots "
                                            f"{old.root.hex()} and {cp.root.hex()}")
            self.say(f"ok same tree as the kept checkpoint (size {cp.size})")
            return
        if old.size == 0:
            self.say("ok the kept checkpoint is the empty tree: every tree extends it")
            return
        path = f"/proof/consistency/{old.size}/{cp.size}"
        try:
            text = self.client.text(path, MAX_PROOF_BYTES)
        except FetchError as e:
            if e.status != 404:
                raise
            self._fork(kept, new, None, f"the log denies having published the checkpoint of size {old.size} it "
                                        f"signed ({e})")
        try:
            verify_consistency(old.size, cp.size, old.root, cp.root, parse_proof(text, self.client.base + path))
        except VerificationError as e:
            self._fork(kept, new, text, f"the checkpoint of size {cp.size} does not extend the kept one of size "
                                        f"{old.size}: {e}")
        self.say(f"ok size {cp.size} extends the kept size {old.size} (consistency proof verified)")

    def _fork(self, kept: SignedCheckpoint, new: SignedCheckpoint, proof: str | None, why: str) -> NoReturn:
        stamp = self.now.strftime("%Y%m%dT%H%M%S.%fZ")
        folder = self.state / FORKS / f"{stamp}-{new.checkpoint.size}"
        try:
            make_folder(folder)
            write_atomic(folder / "kept.checkpoint", kept.to_text().encode())
            write_atomic(folder / "served.checkpoint", new.to_text().encode())
            if proof is not None:
                write_atomic(folder / "consistency-proof.txt", proof.encode())
            write_atomic(folder / "why.txt", f"{why}\nlog: {self.client.base}\nseen: {self.now.isoformat()}\n".encode())
            where = f"the evidence is kept in {folder}"
        except OSError as e:
            where = f"and the evidence could not be kept ({e}): save the output of this run"
        raise ForkError(f"FORK of {new.checkpoint.origin}: {why}; {where}")

    def _anchors(self, new: SignedCheckpoint, key: Ed25519Verifier, old_size: int) -> None:
        cp = new.checkpoint
        if cp.size == 0:
            return
        roots = tsa_roots(self.client, self.state, self.given_roots, self.say)
        checkpoints = [new]
        for size in anchored_sizes(self.client):
            if old_size < size < cp.size:  # anchored since the kept checkpoint: check it is one of this tree's
                checkpoints.append(self._earlier(size, new, key))
        trusted = 0
        for signed in checkpoints:
            records = anchors_at(self.client, signed.checkpoint.size)
            verdicts = judge_anchors(records, signed.note.text.encode(), roots)
            for v in verdicts:
                self.say(f"{'ok' if v.ok else '--' if not v.trusted else 'FAIL'} size {signed.checkpoint.size} {v.line}")
            require_anchors(verdicts)
            trusted += sum(v.ok for v in verdicts)
        if not trusted:
            self.say(f"-- no anchor by a trusted TSA yet for size {cp.size} (the log anchors at its interval)")

    def _earlier(self, size: int, new: SignedCheckpoint, key: Ed25519Verifier) -> SignedCheckpoint:
        """The log's checkpoint of `size`, signed and consistent with `new`."""
        signed = verify_checkpoint(self.client.text(f"/checkpoint/{size}", MAX_NOTE_SIZE), key)
        path = f"/proof/consistency/{size}/{new.checkpoint.size}"
        proof = parse_proof(self.client.text(path, MAX_PROOF_BYTES), self.client.base + path)
        try:
            verify_consistency(size, new.checkpoint.size, signed.checkpoint.root, new.checkpoint.root, proof)
        except VerificationError as e:
            raise ForkError(f"FORK of {new.checkpoint.origin}: its anchored checkpoint of size {size} is not part "
                            f"of its tree of size {new.checkpoint.size}: {e}") from None
        return signed
