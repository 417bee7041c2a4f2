"""Tiles as files: the log published to a folder as C2SP tlog-tiles, for nginx or a CDN to serve.

`Publisher(log, folder).publish()` writes what is new since its last call: every full tile of every
level and every full entry bundle at its C2SP path (`tile/<L>/<N>`, `tile/entries/<N>`, N in the
`x001/234` encoding of `verifier.tiles`), the right edge of the current tree as partial tiles
(`tile/<L>/<N>.p/<W>`, `tile/entries/<N>.p/<W>`), then `checkpoint`. The bytes are exactly those the
portal's `/tile/...` and `/checkpoint` routes serve (the same `TileLog` calls make them).

Crash safety, file by file: each file is written under `.tmp/` in the folder (the same file system),
fsynced, then renamed to its final name, so a final name never shows a partial file. The directories
are fsynced before the checkpoint is replaced, and the checkpoint is replaced last: whoever reads the
checkpoint finds every tile it needs. A file that is already there is never rewritten (it is compared,
only in the window a crash can leave: see below). Once the checkpoint covers a full tile, its partial
tiles are deleted (tlog-tiles: a log MAY delete a partial tile once the full tile is available).

Restartable: where it is comes from the folder itself. The checkpoint on disk says which tree is
published in full; `publish()` starts from there, and what a crash left beyond it is found in place and
compared. A checkpoint on disk that this log never published (another log's folder, or a database
restored from an old backup) is refused. Memory does not grow with the log: one tile at a time.
One publisher per folder (a lock file, `.lock`): hosts of one PostgreSQL log that share a folder take turns,
and one that takes over behind the folder's tree publishes once it has taken that tree in.

It does not serve anything, and it does not decide *when* to publish: `publish_forever` does that in
the writer process (after each new checkpoint), see `portal.app`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import threading
from pathlib import Path

from ledger.errors import IntegrityError, LedgerError, NotFoundError, StorageError
from ledger.storage.files import fsync_dir
from ledger.storage.log import TILE_WIDTH, TileLog
from verifier.checkpoint import parse_checkpoint
from verifier.errors import FormatError
from verifier.tiles import tile_path

CHECKPOINT = "checkpoint"
TMP_DIR = ".tmp"
LOCK_FILE = ".lock"
POLL_S = 0.1  # how often the writer looks for a new checkpoint to publish
BACKOFF_MAX_S = 30.0  # the longest pause after failures in a row (a full disk, a folder not writable)
logger = logging.getLogger("ledger.storage.publish")


class Stopped(Exception):
    """`publish()` was interrupted by `stop()` between two files; the next call picks up from the folder."""


def published_size(folder: Path) -> int:
    """The size of the tree whose checkpoint is published in `folder` (0 while there is none): every full
    tile and entry bundle of that tree is there. Reads only the checkpoint's second line."""
    try:
        with open(folder / CHECKPOINT, "rb") as f:
            head = f.read(256)
    except OSError:
        return 0
    lines = head.split(b"\n", 2)
    return int(lines[1]) if len(lines) > 2 and lines[1].isdigit() else 0


class Publisher:
    """Publishes one log to one folder. Not thread-safe: one `publish()` at a time (the lock file keeps
    other processes out)."""

    def __init__(self, log: TileLog, folder: Path) -> None:
        self.log = log
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock: int | None = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise StorageError(f"another process publishes tiles to {folder}; one publisher per folder",
                               code="publisher_busy") from None
        try:
            tmp = folder / TMP_DIR
            shutil.rmtree(tmp, ignore_errors=True)  # what a crash left half-written: never at a final name
            tmp.mkdir()
            self.size = self._size_on_disk()
        except BaseException:
            self.close()
            raise
        self._stop = threading.Event()
        self._serial = 0
        self._dirty: set[Path] = set()  # directories to fsync before the checkpoint names their files
        self._known_dir: Path | None = None  # the last directory found or made (tiles come in order)
        self.files_written = 0

    def _size_on_disk(self) -> int:
        try:
            text = (self.folder / CHECKPOINT).read_text()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as e:
            raise StorageError(f"cannot read {self.folder / CHECKPOINT}: {e}") from e
        try:
            size = parse_checkpoint(text).checkpoint.size
            ours = self.log.checkpoint_at(size)
        except (FormatError, NotFoundError):
            ours = None
        if ours != text:
            raise IntegrityError(
                f"{self.folder / CHECKPOINT} holds a checkpoint this log did not publish: the folder is another "
                "log's, or this database was restored from an old backup (see `ledger audit`); publish to an "
                "empty folder", code="foreign_tiles")
        return size

    def stop(self) -> None:
        """Make a running `publish()` (in another thread) end after the file it is writing."""
        self._stop.set()

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- publishing ----------------------------------------------------------------------------

    def publish(self) -> int:
        """Publish the log's latest checkpoint and everything it needs; return the number of files written
        (0 when that checkpoint is already published)."""
        note = self.log.latest_checkpoint
        size = parse_checkpoint(note).checkpoint.size
        if size == self.size and (self.folder / CHECKPOINT).exists():
            return 0
        if size < self.size:
            if (self.log.newest_size() or 0) >= self.size:
                # another process (a host that published here before this one took the lock) is further on in
                # the same database: this one takes its appends in within a second (`following`), then publishes
                return 0
            raise IntegrityError(f"the log's latest tree has {size} entries, fewer than the {self.size} published in "
                                 f"{self.folder}; this database looks restored from an old backup (see `ledger audit`)",
                                 code="restored_backup")
        old, written = self.size, 0
        self._dirty.clear()
        self._known_dir = None  # a failed publish, or a hand, may have changed the folder since
        level = 0
        while size >> (8 * level):
            have, want = size >> (8 * level), (size >> (8 * level)) // TILE_WIDTH
            for n in range((old >> (8 * level)) // TILE_WIDTH, want):
                if level == 0:
                    written += self._put(tile_path(None, n), self.log.entry_bundle(n))
                written += self._put(tile_path(level, n), self.log.tile(level, n)[0])
            width = have % TILE_WIDTH
            if width:
                if level == 0:
                    written += self._put(tile_path(None, want, width), self.log.entry_bundle(want, width))
                written += self._put(tile_path(level, want, width), self.log.tile(level, want, width)[0][: 32 * width])
            level += 1
        for d in sorted(self._dirty, key=lambda p: -len(p.parts)):  # deepest first: then the names of new folders
            fsync_dir(d)
        self._dirty.clear()
        written += self._put(CHECKPOINT, note.encode(), replace=True)
        fsync_dir(self.folder)
        self.size = size
        self._drop_partials(old, size)
        return written

    def _put(self, rel: str, data: bytes, replace: bool = False) -> int:
        """Write `data` at `rel` in the folder by way of a temporary file; 0 if it is there already."""
        if self._stop.is_set():
            raise Stopped(f"publishing to {self.folder} stopped")
        final = self.folder / rel
        if not replace:
            try:
                st = final.stat()
            except FileNotFoundError:
                pass
            else:  # left by a publish a crash cut short: it must be what the log says, and stays as it is
                if st.st_size != len(data) or final.read_bytes() != data:
                    raise IntegrityError(f"{final} is not the log's {rel}: the folder was changed, or is another "
                                         "log's; publish to an empty folder", code="foreign_tiles")
                return 0
        self._make_dirs(final.parent)
        self._serial += 1
        tmp = self.folder / TMP_DIR / f"{self._serial}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._dirty.add(final.parent)
        self.files_written += 1
        return 1

    def _make_dirs(self, d: Path) -> None:
        if d == self._known_dir or d == self.folder:
            return
        missing = []
        p = d
        while p != self.folder and not p.is_dir():
            missing.append(p)
            p = p.parent
        for m in reversed(missing):
            m.mkdir(mode=0o755)
            self._dirty.add(m.parent)
        self._known_dir = d

    def _drop_partials(self, old: int, size: int) -> None:
        """Delete the partial tiles of the tiles the new checkpoint made full (tlog-tiles: a client falls
        back to the full tile)."""
        level = 0
        while size >> (8 * level):
            for n in range((old >> (8 * level)) // TILE_WIDTH, (size >> (8 * level)) // TILE_WIDTH):
                for lv in ((None, 0) if level == 0 else (level,)):
                    shutil.rmtree(self.folder / tile_path(lv, n, 1).rsplit("/", 1)[0], ignore_errors=True)
            level += 1


async def publish_forever(log: TileLog, folder: Path, poll_s: float = POLL_S,
                          backoff_max_s: float = BACKOFF_MAX_S) -> None:
    """In the writer, until cancelled: publish each new checkpoint of `log` to `folder` within `poll_s`.

    Publishing runs in a thread and never holds up an append. A failure (a full disk, a folder that cannot
    be written, a foreign folder) is logged and tried again after a pause that doubles up to `backoff_max_s`.
    """
    made: list[Publisher] = []  # the publisher, once the folder could be opened
    stopping = threading.Event()

    def step() -> None:
        if not made:
            made.append(Publisher(log, folder))
            logger.info("publishing tiles to %s (published there: %d entries)", folder, made[0].size)
        if not stopping.is_set():
            made[0].publish()

    delay = poll_s
    # the thread's work, awaited through a shield: this task, cancelled, still waits for it (see finally)
    running: asyncio.Future[None] | None = None
    try:
        while True:
            if not made or log.size != made[0].size or not (folder / CHECKPOINT).exists():
                running = asyncio.ensure_future(asyncio.to_thread(step))
                try:
                    await asyncio.shield(running)
                    delay = poll_s
                except (LedgerError, OSError) as e:
                    delay = min(backoff_max_s, max(poll_s, delay * 2))
                    logger.warning("could not publish tiles to %s: %s; trying again in %g s", folder, e, delay)
                except Exception:  # a bug must not stop publishing for good, nor the writer
                    delay = min(backoff_max_s, max(poll_s, delay * 2))
                    logger.exception("could not publish tiles to %s; trying again in %g s", folder, delay)
                running = None
            await asyncio.sleep(delay)
    finally:
        stopping.set()
        if made:
            made[0].stop()
        if running is not None:  # let the thread end (after the file it writes) before the log closes
            await asyncio.gather(running, return_exceptions=True)
        if made:
            made[0].close()
