"""QR codes: one random lookup code per printed copy, in Crockford base32.

A code is 100 random bits, 20 Crockford base32 characters, printed grouped in fives for typing.
Input is normalised (full-width forms, case, spaces, dashes, and Crockford's I/L -> 1, O -> 0). The log stores only
SHA-256 of the code, so reading the public log never yields a working code.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 20
_DECODE = {c: c for c in ALPHABET} | {"I": "1", "L": "1", "O": "0"}


def new_code() -> str:
    n = secrets.randbits(5 * CODE_LENGTH)
    return "".join(ALPHABET[(n >> (5 * i)) & 31] for i in range(CODE_LENGTH))


# What may separate the groups of a typed code: spaces and dashes, as a phone or an input method may
# type them (after full-width forms are folded to ASCII).
_SEPARATORS = frozenset(" \t-\u00a0\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
# Full-width ASCII (U+FF01-U+FF5E, as a Chinese input method types letters and digits) and the
# ideographic space, folded to ASCII; nothing else is folded.
_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold(text: str, *, max_length: int = 4 * CODE_LENGTH) -> str | None:
    """Typed text as the characters of a code (full-width folded, upper case, separators dropped,
    Crockford's I/L -> 1, O -> 0), or None if it holds anything else or is too long to be one."""
    if len(text) > max_length:
        return None
    out = []
    for ch in text.translate(_FULL_WIDTH):
        if ch in _SEPARATORS:
            continue
        c = _DECODE.get(ch.upper()) if ch.isascii() else None  # ("ß".upper() is "SS": ASCII only)
        if c is None:
            return None
        out.append(c)
    return "".join(out)


def normalise(text: str) -> str | None:
    """The canonical code for user input, or None if it cannot be one."""
    code = fold(text)
    return code if code is not None and len(code) == CODE_LENGTH else None


def grouped(code: str) -> str:
    return "-".join(code[i : i + 5] for i in range(0, len(code), 5))


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
