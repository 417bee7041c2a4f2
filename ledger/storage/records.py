"""Checkpoint records: the log's signed statement of when each checkpoint was made and which one it follows.

A checkpoint note (C2SP tlog-checkpoint) signs the origin, size and root only; the row that stores it
also holds when it was made (`created`), and nothing in the note says which checkpoint came before it.
So that neither can be changed or removed unseen by someone who can write the database file but does
not hold the log key, each new checkpoint gets a record in `checkpoint_records`, a signed note by the
log key (like envelope heads, told apart by its first line):

    evidence-ledger/checkpoint-record/v1
    <origin>
    <size>
    <size of the previous checkpoint, or "none">
    <created, RFC 3339 UTC>
    <base64 root>

`ledger audit` checks that every checkpoint made since records exist has one, that each record's
previous size is the checkpoint stored before it (a deleted row in between breaks the chain), and that
the row's `created` and root are the record's.

What it does not do: stand for the checkpoint itself (verifiers check notes, tiles and proofs), or
detect the removal of the newest rows (`ledger audit --checkpoint FILE` compares with what others hold).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from verifier.errors import FormatError, VerificationError
from verifier.note import Ed25519Signer, Ed25519Verifier, parse_note, verify_note

HEADER = "evidence-ledger/checkpoint-record/v1"


@dataclass(frozen=True)
class CheckpointRecord:
    origin: str
    size: int
    prev: int | None
    created: str
    root: bytes

    def body(self) -> str:
        prev = "none" if self.prev is None else str(self.prev)
        return (f"{HEADER}\n{self.origin}\n{self.size}\n{prev}\n{self.created}\n"
                f"{base64.b64encode(self.root).decode()}\n")

    def sign(self, signer: Ed25519Signer) -> str:
        body = self.body()
        return body + "\n" + signer.sign(body).line()


def verify_record(note_text: str, verifier: Ed25519Verifier) -> CheckpointRecord:
    """The record a signed note states, once its signature by the log key checks out.

    Raises:
        VerificationError: not a checkpoint record, malformed, or not signed by this log's key.
    """
    note = parse_note(note_text)
    verify_note(note, [verifier])
    lines = note.text.split("\n")
    if len(lines) != 7 or lines[0] != HEADER or lines[6] != "":
        raise FormatError("not a checkpoint record")
    _, origin, size, prev, created, root, _ = lines
    try:
        return CheckpointRecord(origin, _count(size), None if prev == "none" else _count(prev), created,
                                base64.b64decode(root, validate=True))
    except ValueError as e:
        raise FormatError(f"checkpoint record: {e}") from None


def _count(text: str) -> int:
    if not text.isdigit() or (text != "0" and text.startswith("0")):
        raise ValueError(f"{text!r} is not a tree size")
    return int(text)


__all__ = ["CheckpointRecord", "HEADER", "VerificationError", "verify_record"]
