"""Errors of the ledger.

`LedgerError` is the base. `RefusedError` means the caller sent something the ledger will not accept
(bad input, an illegal lifecycle transition); it carries a stable `code` and an HTTP `status`.
`StorageError` means the ledger could not do its job (disk full, database locked, corrupt storage):
nothing was acknowledged. Untrustworthy data found while verifying is a `verifier.errors.VerificationError`.
"""

from __future__ import annotations


class LedgerError(Exception):
    code = "ledger_error"
    status = 500
    event: int | None = None  # for a refused request: the position of the event that was refused

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class RefusedError(LedgerError):
    """The request was understood and refused; nothing was written."""

    code = "refused"
    status = 400


class NotFoundError(LedgerError):
    code = "not_found"
    status = 404


class StorageError(LedgerError):
    """Storage failed; nothing from the failed operation was acknowledged."""

    code = "storage_error"
    status = 503


class IntegrityError(LedgerError):
    """The stored log is inconsistent (tampering, a restored backup, a bug): refuse to go on."""

    code = "integrity_error"
    status = 500
