"""One `ledger serve` per ledger folder: an exclusive `flock` on `serve.lock`, held for the server's life.

Two servers would both run (the port is shared with SO_REUSEPORT) and take the same socket files. The
lock goes with the process, however it ends. CLI writes need no lock: the log takes turns with them
(`TileLog.begin`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ledger.config import load_config
from ledger.errors import LedgerError, RefusedError
from ledger.storage.schema import DB_NAME

LOCK_NAME = "serve.lock"


def lock_serving(home: Path) -> int | None:
    """Take the lock for this process's life (the open descriptor, to close at the end); refused if
    another `ledger serve` holds it. None when the folder holds no ledger (opening it says what is missing)."""
    if not (home / DB_NAME).exists() and not _names_database(home):
        return None
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise RefusedError(f"{path} is locked: another `ledger serve`{f' (pid {holder})' if holder else ''} is "
                           "running on this ledger; stop it first, or serve more processes with --workers",
                           code="already_serving") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _names_database(home: Path) -> bool:
    """Does the folder's config.toml name a PostgreSQL database (a ledger whose database is elsewhere)?"""
    try:
        return bool(load_config(home).database)
    except LedgerError:
        return False  # opening the ledger says what is wrong with config.toml


def check_not_serving(home: Path) -> None:
    """Refuse at once (before anything else is tried) if another `ledger serve` runs on this ledger."""
    fd = lock_serving(home)
    if fd is not None:
        os.close(fd)  # the server takes it for good when it starts
