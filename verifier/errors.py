"""Errors of the verifier: every one means "this data is not trustworthy".

The verifier never does I/O, so it has no "could not get the data" errors; those belong to
the ledger (`ledger.errors.StorageError`) and the portal.
"""

from __future__ import annotations


class VerificationError(Exception):
    """Base of every verification failure. `code` is a stable machine-readable name."""

    code = "verification_failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class FormatError(VerificationError):
    """Bytes that do not parse as the format they claim to be."""

    code = "malformed"


class RootMismatchError(VerificationError):
    """A proof computes a different root than the trusted one."""

    code = "root_mismatch"

    def __init__(self, expected: bytes, computed: bytes, what: str = "root") -> None:
        super().__init__(
            f"{what} mismatch: expected {expected.hex()}, computed {computed.hex()}",
            code=self.code,
        )
        self.expected = expected
        self.computed = computed


class SignatureError(VerificationError):
    """A signature is missing, from an unknown key, or does not verify."""

    code = "bad_signature"


class TimestampError(VerificationError):
    """An RFC 3161 time-stamp token failed one of the checks of verifier.timestamp."""

    code = "bad_timestamp"
