"""C2SP tlog-checkpoint bodies (c2sp.org/tlog-checkpoint) carried in signed notes.

A checkpoint body is `<origin>\\n<decimal size>\\n<base64 root>\\n`, optionally followed by extension
lines. This module formats and parses bodies and verifies a checkpoint note against the log's key
(and, optionally, witnesses). It does no I/O.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from verifier.errors import FormatError, SignatureError
from verifier.note import Ed25519Verifier, Note, NoteVerifier, parse_note, verify_note

MAX_TREE_SIZE = (1 << 63) - 1


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text: what the log signs and what an RFC 3161 anchor's imprint covers."""
        ext = "".join(e + "\n" for e in self.extensions)
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n{ext}"

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise FormatError("checkpoint body does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError("checkpoint body needs an origin, a size and a root hash")
        origin, size_s, root_s = lines[:3]
        if not origin:
            raise FormatError("checkpoint origin is empty")
        if not size_s.isascii() or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise FormatError(f"checkpoint size {size_s!r} is not a decimal number without leading zeros")
        size = int(size_s)
        if size > MAX_TREE_SIZE:
            raise FormatError("checkpoint size is too large")
        try:
            root = base64.b64decode(root_s, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError("checkpoint root is not valid base64") from None
        if len(root) != 32:
            raise FormatError(f"checkpoint root is {len(root)} bytes, not 32")
        if any(not ln for ln in lines[3:]):
            raise FormatError("checkpoint has an empty extension line")
        return cls(origin, size, root, tuple(lines[3:]))


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: Note

    def to_text(self) -> str:
        return self.note.to_text()


def parse_checkpoint(data: bytes | str) -> SignedCheckpoint:
    """Parse a checkpoint note without verifying any signature."""
    note = parse_note(data)
    return SignedCheckpoint(Checkpoint.from_body(note.text), note)


def verify_checkpoint(
    data: bytes | str,
    log_key: Ed25519Verifier,
    *,
    origin: str | None = None,
    witnesses: list[NoteVerifier] | None = None,
    witness_quorum: int = 0,
) -> SignedCheckpoint:
    """Parse and verify a checkpoint signed by the log key, with an optional witness quorum."""
    if witness_quorum < 0:
        raise ValueError(f"a witness quorum is 0 or more, not {witness_quorum}")
    signed = parse_checkpoint(data)
    want = origin if origin is not None else log_key.name
    if signed.checkpoint.origin != want:
        raise FormatError(f"checkpoint origin {signed.checkpoint.origin!r} is not the log's {want!r}")
    verify_note(signed.note, [log_key])
    if witness_quorum:
        try:
            ok = verify_note(signed.note, list(witnesses or []))
        except SignatureError:
            ok = []
        if len(ok) < witness_quorum:
            raise SignatureError(f"checkpoint has {len(ok)} valid witness cosignatures, {witness_quorum} needed")
    return signed
