"""Errors of the notaries' tools, apart as DESIGN.md asks: *could not get the data* here, *the data is not
trustworthy* as `verifier.errors.VerificationError` (a fork is one of those)."""

from __future__ import annotations

from verifier.errors import VerificationError


class NotaryError(Exception):
    """Base of what stops a notary's tool that is not a verdict on the log: a log it cannot reach, a
    state folder it cannot use."""


class FetchError(NotaryError):
    """The log could not be asked: unreachable, too slow, an HTTP error, an answer too large."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StateError(NotaryError):
    """The notary's state folder cannot be read or written, or holds what it should not."""


class ForkError(VerificationError):
    """The log showed two views that cannot both be true: a fork (or a rollback) of its tree."""

    code = "fork"
