"""The one writer: a thread that batches submitted work into group commits.

Callers `submit()` work and get a `concurrent.futures.Future` (asyncio callers wrap it with
`asyncio.wrap_future`). The thread takes whatever is queued, up to `max_batch` items (waiting up to
`max_delay_ms` for more when the queue runs dry), stages every item in one transaction, commits with
one signed checkpoint, and only then resolves the futures: an acknowledgement means durable.
A refused item fails alone; a storage failure fails the whole batch and acknowledges nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.errors import LedgerError, StorageError
from ledger.log import AppendResult, TileLog
from verifier.errors import VerificationError

log = logging.getLogger("ledger.sequencer")

Finish = Callable[[AppendResult], Any]


class Work(Protocol):
    """One unit of work: stage it (may raise a refusal); return how to build the ack after commit."""

    size: int

    def stage(self, log: TileLog) -> Finish: ...


@dataclass(frozen=True)
class Ack:
    index: int
    leaf_hash: bytes
    size: int


class RawEntry:
    """Append one opaque entry to the log (used by benchmarks and tests of the log layer)."""

    size = 1

    def __init__(self, entry: bytes) -> None:
        self.entry = entry

    def stage(self, log: TileLog) -> Finish:
        first, leaves = log.stage([self.entry])
        return lambda r: Ack(first, leaves[0], r.size)


_STOP = object()


class Sequencer:
    def __init__(self, log: TileLog, max_batch: int = 1000, max_delay_ms: float = 0.0) -> None:
        self.log = log
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000
        self._q: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="ledger-sequencer", daemon=True)
        self._thread.start()

    def submit(self, work: Work | bytes) -> Future[Any]:
        if self._closed:
            raise StorageError("the sequencer is closed")
        fut: Future[Any] = Future()
        self._q.put((RawEntry(work) if isinstance(work, bytes) else work, fut))
        return fut

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
                self._commit(batch)

    def _commit(self, batch: list[tuple[Work, Future[Any]]]) -> None:
        accepted: list[tuple[Future[Any], Finish]] = []
        try:
            self.log.begin()
        except LedgerError as e:
            for _, fut in batch:
                fut.set_exception(e)
            return
        for work, fut in batch:
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                accepted.append((fut, work.stage(self.log)))
            except (LedgerError, VerificationError) as e:
                if isinstance(e, StorageError):
                    self._fail_all(batch, accepted, e)
                    return
                fut.set_exception(e)
            except Exception as e:  # a bug must not kill the writer thread
                log.exception("unexpected error while staging")
                self._fail_all(batch, accepted, StorageError(f"internal error while staging: {e}"))
                return
        try:
            result = self.log.commit()
        except Exception as e:
            err = e if isinstance(e, StorageError) else StorageError(f"commit failed: {e}")
            self._fail_all(batch, accepted, err)
            return
        self.batches += 1
        for fut, finish in accepted:
            try:
                fut.set_result(finish(result))
            except Exception as e:  # noqa: BLE001 - surface to the caller, keep the writer alive
                fut.set_exception(e)

    def _fail_all(self, batch: list[tuple[Work, Future[Any]]], accepted: list[tuple[Future[Any], Finish]],
                  err: Exception) -> None:
        self.log.rollback()
        for fut, _ in accepted:
            fut.set_exception(err)
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(err)
