"""C2SP tlog-proof (c2sp.org/tlog-proof@v1): an offline-verifiable proof that an entry is in a log.

Format: `c2sp.org/tlog-proof@v1`, an optional `extra <base64>` line, `index <n>`, the inclusion
proof hashes (base64, one a line, leaf's sibling first), a blank line, then the checkpoint note
verbatim. This module formats, parses and verifies; it does no I/O.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from verifier.checkpoint import SignedCheckpoint, parse_checkpoint, verify_checkpoint
from verifier.errors import FormatError
from verifier.merkle import leaf_hash, verify_inclusion
from verifier.note import Ed25519Verifier, NoteVerifier

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_SIZE = 1 << 17


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    extra: bytes | None = None

    def to_text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines += [base64.b64encode(h).decode() for h in self.hashes]
        return "\n".join(lines) + "\n\n" + self.checkpoint.to_text()


def hash_lines(lines: list[str], first: int = 1) -> list[bytes]:
    """Proof hashes, one base64 hash of 32 bytes a line (as consistency proofs are served and posted);
    `first` is the number of the first line, for the messages.

    Raises:
        FormatError: naming the first line that is not base64 or not 32 bytes.
    """
    hashes = []
    for n, line in enumerate(lines, first):
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"line {n} is not base64") from None
        if len(h) != 32:
            raise FormatError(f"line {n} is a {len(h)}-byte hash, not 32")
        hashes.append(h)
    return hashes


def parse_tlog_proof(data: bytes | str) -> TlogProof:
    if isinstance(data, bytes):
        if len(data) > MAX_PROOF_SIZE:
            raise FormatError(f"proof is {len(data)} bytes, more than {MAX_PROOF_SIZE}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("proof is not valid UTF-8") from None
    head, sep, rest = data.partition("\n\n")
    if not sep:
        raise FormatError("proof has no blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise FormatError(f"proof does not start with {HEADER!r}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        try:
            extra = base64.b64decode(lines[pos][6:], validate=True)
        except (binascii.Error, ValueError):
            raise FormatError("proof extra data is not valid base64") from None
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise FormatError("proof has no index line")
    idx_s = lines[pos][6:]
    if not idx_s.isascii() or not idx_s.isdigit() or (idx_s != "0" and idx_s.startswith("0")):
        raise FormatError(f"proof index {idx_s!r} is not a decimal number without leading zeros")
    hashes = []
    for ln in lines[pos + 1 :]:
        try:
            h = base64.b64decode(ln, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError("proof hash is not valid base64") from None
        if len(h) != 32:
            raise FormatError(f"proof hash is {len(h)} bytes, not 32")
        hashes.append(h)
    return TlogProof(int(idx_s), tuple(hashes), parse_checkpoint(rest), extra)


def verify_tlog_proof(
    data: bytes | str,
    entry: bytes,
    log_key: Ed25519Verifier,
    *,
    witnesses: list[NoteVerifier] | None = None,
    witness_quorum: int = 0,
) -> TlogProof:
    """Verify that `entry` sits at the proof's index in a checkpoint signed by the log (and witnesses)."""
    proof = parse_tlog_proof(data)
    verify_checkpoint(proof.checkpoint.to_text(), log_key, witnesses=witnesses, witness_quorum=witness_quorum)
    cp = proof.checkpoint.checkpoint
    verify_inclusion(proof.index, cp.size, leaf_hash(entry), proof.hashes, cp.root)
    return proof
