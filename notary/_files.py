"""Durable small files: written whole or not at all (temporary file, fsync, rename, fsync of the folder),
so that a crash at any moment leaves either the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from notary.errors import StateError

TEMP_MARK = ".tmp-"


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` durably: once this returns, a crash leaves the new content."""
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def read_state(path: Path) -> bytes | None:
    """A state file's bytes, or None if there is none yet.

    Raises:
        StateError: it is there but cannot be read.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"cannot read {path}: {e}") from None


def remove_temporaries(folder: Path) -> None:
    """Remove what a write cut short by a crash left behind (never the files it was replacing)."""
    for p in folder.glob(f".*{TEMP_MARK}*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def make_folder(folder: Path) -> None:
    """The state folder, owner only (it holds what the notary's verdicts rest on)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
