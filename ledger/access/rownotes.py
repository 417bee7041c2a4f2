"""Rows kept beside the log, sealed by the log key: each row's statement (its fields, one a line, under
a header naming what it is) signed as a note, so that writing the database without the key cannot add
or change such a row unseen. API keys (`apikeys`) and the seal registry (`ledger.envelopes.seals`) use it.
"""

from __future__ import annotations

from verifier.errors import VerificationError
from verifier.note import Ed25519Signer, Ed25519Verifier, parse_note, verify_note


def signed(signer: Ed25519Signer, statement: str) -> str:
    """`statement` as a note signed by the log key: what a row keeps in its seal column."""
    return statement + "\n" + signer.sign(statement).line()


def stated(verifier: Ed25519Verifier, note: str | None) -> str | None:
    """The statement a row's seal column signs, or None if it is no note signed by the log key."""
    try:
        parsed = parse_note(note)  # type: ignore[arg-type]  # a damaged row may hold anything
        verify_note(parsed, [verifier])
    except (VerificationError, TypeError, AttributeError):
        return None
    return parsed.text
