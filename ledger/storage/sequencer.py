"""The one writer: a thread that batches submitted work into group commits.

Threads `submit()` work and get a `concurrent.futures.Future`; asyncio code awaits `asubmit()`,
whose futures are resolved with one wake-up of the event loop per batch rather than one per event.
The thread takes whatever is queued, up to `max_batch` items (waiting up to `max_delay_ms` for more
when the queue runs dry), stages every item in one transaction, commits with one signed checkpoint,
and only then resolves the futures: an acknowledgement means durable. A caller with a batch of its
own may also commit it on its own thread (`commit_here`), taking turns with the thread.
A refused item fails alone; a storage failure fails the whole batch and acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.errors import LedgerError, StorageError
from ledger.storage.log import AppendResult, TileLog
from verifier.errors import VerificationError

log = logging.getLogger("ledger.storage.sequencer")

Finish = Callable[[AppendResult], Any]


class Work(Protocol):
    """One unit of work: stage it (may raise a refusal); return how to build the ack after commit.

    A kind of work may also define `prepare_batch(log, works)` (a class method), called once per batch
    with all of its items before any is staged: to read what they need from the database in one go.
    """

    size: int

    def stage(self, log: TileLog) -> Finish: ...


@dataclass(frozen=True)
class Ack:
    index: int
    leaf_hash: bytes
    size: int


class RawEntry:
    """Append one opaque entry to the log (used by benchmarks and tests of the log layer).

    Consecutive raw entries of one batch are staged together (see `Sequencer._commit`).
    """

    size = 1

    def __init__(self, entry: bytes) -> None:
        self.entry = entry

    def stage(self, log: TileLog) -> Finish:
        first, leaves = log.stage([self.entry])
        return lambda r: Ack(first, leaves[0], r.size)


class CatchUp:
    """No entry: a transaction that only takes in what another process appended (`TileLog.begin`),
    for a writer that has nothing to write when it learns that the log grew elsewhere."""

    size = 0

    def stage(self, log: TileLog) -> Finish:
        return lambda r: r.size


class _AsyncSlot:
    """Where an asyncio caller waits: its loop and a future of that loop."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()


def _resolve(items: list[tuple[_AsyncSlot, bool, Any]]) -> None:
    for waiter, ok, value in items:
        fut = waiter.future
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


_STOP = object()


class Sequencer:
    def __init__(self, log: TileLog, max_batch: int = 1000, max_delay_ms: float = 0.0) -> None:
        self.log = log
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000
        self._q: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._commit_lock = threading.Lock()  # the sequencer's thread and `commit_here` callers take turns
        self._stamping = threading.Lock()  # held from a batch's BEGIN (once it has the write lock) to its end
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="ledger-sequencer", daemon=True)
        self._thread.start()

    def submit(self, work: Work | bytes) -> Future[Any]:
        if self._closed:
            raise StorageError("the sequencer is closed")
        fut: Future[Any] = Future()
        self._q.put((RawEntry(work) if isinstance(work, bytes) else work, fut))
        return fut

    async def asubmit(self, work: Work | bytes) -> Any:
        """Submit from asyncio and await the acknowledgement (durable when it returns)."""
        if self._closed:
            raise StorageError("the sequencer is closed")
        slot = _AsyncSlot(asyncio.get_running_loop())
        self._q.put((RawEntry(work) if isinstance(work, bytes) else work, slot))
        return await slot.future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._q.put(_STOP)
            self._thread.join()

    def _collect(self) -> tuple[list[tuple[Work, Future[Any]]], bool]:
        item = self._q.get()
        if item is _STOP:
            return [], True
        batch, count = [item], item[0].size
        deadline = time.monotonic() + self.max_delay
        while count < self.max_batch:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    item = self._q.get(timeout=wait)
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, True
            batch.append(item)
            count += item[0].size
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._collect()
            if batch:
                self._settle(self._commit_locked(batch))

    def commit_here(self, items: list[tuple[Work, Callable[[bool, Any], None]]]) -> None:
        """Sequence `items` as one batch on the calling thread, then call each one's function with
        (True, result) once durable, or (False, exception).

        For a caller that has nothing better to do while the batch commits: the writer process's
        event loop, which takes the requests of every worker from the link. One thread then reads,
        stages and commits, instead of handing each request over to the sequencer's thread and each
        answer back. Commits of both threads take turns.
        """
        if self._closed:
            raise StorageError("the sequencer is closed")
        for fn, ok, value in self._commit_locked(items):
            try:
                fn(ok, value)
            except Exception:  # one caller's failure must not keep the others waiting
                log.exception("a caller of the sequencer failed on its answer")

    def between_batches(self) -> threading.Lock:
        """Held, no batch is being staged or committed (by the sequencer's thread or `commit_here`). A
        batch waiting for SQLite's write lock (another process writes) does not hold it."""
        return self._stamping

    def _commit_locked(self, batch: list[tuple[Work, Any]]) -> list[tuple[Any, bool, Any]]:
        with self._commit_lock:
            try:
                return self._commit(batch)
            except Exception as e:  # the one writer must survive anything a batch does
                log.exception("unexpected error in the sequencer")
                return self._fail_all(batch, StorageError(f"internal error: {e}; nothing was acknowledged"))

    def _commit(self, batch: list[tuple[Work, Any]]) -> list[tuple[Any, bool, Any]]:
        """Stage and commit one batch; return (waiter, ok, result or exception) for every item."""
        try:
            self.log.begin()
        except LedgerError as e:
            return [(w, False, e) for _, w in batch]
        with self._stamping:
            return self._commit_begun(batch)

    def _commit_begun(self, batch: list[tuple[Work, Any]]) -> list[tuple[Any, bool, Any]]:
        """The rest of `_commit`, once the write transaction is open."""
        done: list[tuple[Any, bool, Any]] = []
        accepted: list[tuple[Any, Finish]] = []
        try:
            for kind in {type(w) for w, _ in batch}:
                prepare = getattr(kind, "prepare_batch", None)
                if prepare is not None:
                    prepare(self.log, [w for w, _ in batch if type(w) is kind])
        except sqlite3.Error as e:
            return self._fail_all(batch, StorageError(f"could not read the ledger database: {e}; "
                                                      "nothing was acknowledged"))
        i = 0
        while i < len(batch):
            work, waiter = batch[i]
            if isinstance(work, RawEntry):
                # stage a run of raw entries in one call: the hot path of bulk appends
                j = i
                while j < len(batch) and isinstance(batch[j][0], RawEntry):
                    j += 1
                run = batch[i:j]
                first, leaves = self.log.stage([w.entry for w, _ in run])  # type: ignore[attr-defined]
                for k, (_, wt) in enumerate(run):
                    accepted.append((wt, _raw_finish(first + k, leaves[k])))
                i = j
                continue
            i += 1
            try:
                accepted.append((waiter, work.stage(self.log)))
            except (LedgerError, VerificationError) as e:
                if isinstance(e, StorageError):
                    return self._fail_all(batch, e)
                done.append((waiter, False, e))
            except sqlite3.Error as e:  # disk full, I/O error: nothing in this batch is acknowledged
                return self._fail_all(batch, StorageError(f"could not write to the ledger database: {e}; "
                                                          "nothing was acknowledged"))
            except Exception as e:  # a bug must not kill the writer thread
                log.exception("unexpected error while staging")
                return self._fail_all(batch, StorageError(f"internal error while staging: {e}"))
        try:
            result = self.log.commit()
        except Exception as e:
            return self._fail_all(batch, e if isinstance(e, StorageError) else StorageError(f"commit failed: {e}"))
        self.batches += 1
        for waiter, finish in accepted:
            try:
                done.append((waiter, True, finish(result)))
            except Exception as e:  # surface to the caller, keep the writer alive
                done.append((waiter, False, e))
        return done

    def _fail_all(self, batch: list[tuple[Work, Any]], err: Exception) -> list[tuple[Any, bool, Any]]:
        self.log.rollback()
        return [(w, False, err) for _, w in batch]

    @staticmethod
    def _settle(done: list[tuple[Any, bool, Any]]) -> None:
        """Resolve waiters: thread futures directly, asyncio futures with one wake-up per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_AsyncSlot, bool, Any]]] = {}
        for waiter, ok, value in done:
            if isinstance(waiter, _AsyncSlot):
                by_loop.setdefault(waiter.loop, []).append((waiter, ok, value))
                continue
            try:  # a caller may have cancelled its future meanwhile: that must not stop the writer
                if ok:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(value)
            except InvalidStateError:
                pass
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more


def _raw_finish(index: int, leaf: bytes) -> Finish:
    return lambda r: Ack(index, leaf, r.size)
