"""A small tmpfs for the tests that fill a disk for real, and a file that fills it.

Mounting needs root (CI runs the tests as root) in a system that allows it (a container needs
CAP_SYS_ADMIN). A test that cannot mount one fails and says why: what a full disk does is a promise
of the ledger, and a skipped test would hide that it is no longer checked.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` (`mount -o size=`, like `20m`) on `path` for the block; unmount it after,
    whatever happens (lazily, should a file still be open in it)."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.fail("this test mounts a small tmpfs to fill it, and `mount` is not installed; install util-linux")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = " ".join(done.stderr.split()).rstrip(".") or f"exit status {done.returncode}"
        pytest.fail(f"cannot mount a tmpfs of {size} on {path} ({reason}); this test fills a real volume: run it "
                    "as root (CI does), in a container allowed to mount (CAP_SYS_ADMIN, or --privileged)",
                    pytrace=False)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)


def fill(folder: Path, name: str = "filler") -> Path:
    """Write one file in `folder` until its volume is full (ENOSPC); return the file."""
    filler = folder / name
    chunk = b"\0" * (1 << 16)
    with open(filler, "wb", buffering=0) as f:  # unbuffered: closing it writes nothing more
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    return filler
