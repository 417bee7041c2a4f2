"""QR codes: one random lookup code per printed copy, in Crockford base32.

A code is 100 random bits, 20 Crockford base32 characters, printed grouped in fives for typing.
Input is normalised (full-width forms, case, spaces, dashes, and Crockford's I/L -> 1, O -> 0). The log stores only
SHA-256 of the code, so reading the public log never yields a working code.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 20
_DECODE = {c: c for c in ALPHABET} | {"I": "1", "L": "1", "O": "0"}


def new_code() -> str:
    n = secrets.randbits(5 * CODE_LENGTH)
    return "".join(ALPHABET[(n >> (5 * i)) & 31] for i in range(CODE_LENGTH))


# What may separate the groups of a typed code: spaces and dashes, as a phone or an input method
# (full-width forms are folded to ASCII first) may type them.
_SEPARATORS = frozenset(" \t-\u00a0\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u3000")


def normalise(text: str) -> str | None:
    """The canonical code for user input, or None if it cannot be one."""
    if len(text) > 4 * CODE_LENGTH:
        return None
    out = []
    for ch in unicodedata.normalize("NFKC", text).upper():
        if ch in _SEPARATORS:
            continue
        c = _DECODE.get(ch)
        if c is None:
            return None
        out.append(c)
    code = "".join(out)
    return code if len(code) == CODE_LENGTH else None


def grouped(code: str) -> str:
    return "-".join(code[i : i + 5] for i in range(0, len(code), 5))


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
