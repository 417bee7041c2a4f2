"""The link from the HTTP workers of `ledger serve --workers N` to the one writer process.

A worker authenticates the API key and parses the events itself; the writer only sequences them.
Each request of events goes to the writer over a Unix socket in the ledger folder (mode 0600: whoever
may use it may as well open the database) and the worker awaits the acknowledgements, which the
writer sends only once the events are durable. Frames are a 4-byte big-endian length, then orjson:

    request  [id, "submit", tenant, [[type, envelope, fields], ...]]     answer  [id, acks]
    request  [id, "head", env, tree size]                               answer  [id, signed note]
    a refusal or failure: [id, null, {"code": ..., "status": ..., "message": ..., "event": ...}]

("head" asks for the log's signed statement of an envelope's last event, `verifier.head`: only
the writer holds the log key.)

Many requests are in flight on one connection at once. The writer's event loop commits what it has
read from all workers in one turn as one batch (`_Batcher`), so requests from every worker meet in
the same group commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from ledger.envelopes.core import Idempotency, Ledger
from ledger.envelopes.events import InputEvent
from ledger.errors import LedgerError, RefusedError, StorageError
from verifier.errors import VerificationError

log = logging.getLogger("portal.serving.writerlink")
LINK_NAME = "writer-events.sock"
CONNECT_TIMEOUT_S = 10.0
RECONNECT_TIMEOUT_S = 1.0


def _frame(obj: Any) -> bytes:
    body = orjson.dumps(obj)
    return len(body).to_bytes(4, "big") + body


class _Framed(asyncio.Protocol):
    """Both ends of the link: frames cut out of the byte stream, and frames sent in one turn of the
    event loop written together (one system call, not one each)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self._in = bytearray()
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        buf = self._in
        buf += data
        pos = 0
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos:pos + 4], "big")
            if n > self.limit:
                self.refuse(f"a frame of {n} bytes is larger than {self.limit}")
                return
            if len(buf) - pos - 4 < n:
                break
            body = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            self.frame(body)
        del buf[:pos]

    def frame(self, body: bytes) -> None:
        raise NotImplementedError

    def refuse(self, why: str) -> None:
        log.error("closing the writer link: %s", why)
        self._in.clear()
        if self.transport is not None:
            self.transport.abort()

    def send(self, frame: bytes) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        data, self._out = b"".join(self._out), []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _failure(rid: Any, e: BaseException) -> list[Any]:
    if isinstance(e, LedgerError):
        return [rid, None, {"code": e.code, "status": e.status, "message": str(e), "event": e.event}]
    if isinstance(e, VerificationError):  # as the portal answers it in one process
        return [rid, None, {"code": e.code, "status": 400, "message": str(e), "event": None}]
    log.error("cannot handle a request from a worker", exc_info=e)  # a malformed frame or a bug
    return [rid, None, {"code": "internal_error", "status": 500, "event": None,
                        "message": "the writer failed on this request; nothing was acknowledged"}]


class _Batcher:
    """The writer's side of every worker's connection: the requests read in one turn of the writer's
    event loop, from all workers, are committed together in that loop (up to `batch_max` events).

    The loop has nothing else to do meanwhile, and so no request is handed over to the sequencer's
    thread and no answer handed back: one thread reads, stages, commits and answers.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.loop = asyncio.get_running_loop()
        self.max = ledger.config.batch_max
        self._pending: list[tuple[str, list[InputEvent], Callable[[bool, Any], None], Idempotency | None]] = []

    def add(self, tenant: str, events: list[InputEvent], idem: Idempotency | None,
            fn: Callable[[bool, Any], None]) -> None:
        if not self._pending:
            self.loop.call_soon(self._run)
        self._pending.append((tenant, events, fn, idem))

    def _run(self) -> None:
        count, take = 0, 0
        while take < len(self._pending) and count < self.max:
            count += len(self._pending[take][1])
            take += 1
        batch, self._pending = self._pending[:take], self._pending[take:]
        try:
            self.ledger.commit_here(batch)
        except Exception as e:  # before anything was staged: the writer is stopping (or a bug)
            if not isinstance(e, LedgerError):
                log.exception("cannot commit a batch from the workers")
            for _, _, fn, _ in batch:
                fn(False, e)
        if self._pending:  # after this batch's answers are on their way out, not before
            self.loop.call_soon(self._run)


class _WriterSide(_Framed):
    """The writer's end of one worker's connection: requests in, answers out once durable or refused."""

    def __init__(self, batcher: _Batcher, limit: int) -> None:
        super().__init__(limit)
        self.batcher = batcher
        self._heads: set[asyncio.Task[str]] = set()  # held until done (the loop keeps only weak references)

    def frame(self, body: bytes) -> None:
        rid: Any = None
        try:
            rid, kind, *args = orjson.loads(body)
            if kind == "submit":
                tenant, events, idem = args
                self.batcher.add(tenant, [InputEvent(t, e, f) for t, e, f in events],
                                 Idempotency(*idem) if idem is not None else None, partial(self.answer, rid))
            elif kind == "head" and len(args) == 2 and isinstance(args[0], str) and type(args[1]) is int:
                task = self.batcher.loop.create_task(asyncio.to_thread(self.batcher.ledger.envelope_head, *args))
                self._heads.add(task)
                task.add_done_callback(partial(self._head_done, rid))
            else:
                raise RefusedError(f"unknown request {kind!r} on the writer link", code="bad_request")
        except Exception as e:
            self.answer(rid, False, e)

    def _head_done(self, rid: Any, task: asyncio.Task[str]) -> None:
        self._heads.discard(task)
        if not task.cancelled():
            e = task.exception()
            self.answer(rid, e is None, e if e is not None else task.result())

    def answer(self, rid: Any, ok: bool, value: Any) -> None:
        self.send(_frame([rid, value] if ok else _failure(rid, value)))


async def serve_link(ledger: Ledger, path: Path) -> asyncio.AbstractServer:
    """The writer's side: read requests from the socket, answer each when it is durable or refused."""
    limit = 4 * ledger.config.max_request_bytes
    batcher = _Batcher(ledger)
    if path.exists():
        path.unlink()
    old = os.umask(0o177)
    try:
        server = await asyncio.get_running_loop().create_unix_server(lambda: _WriterSide(batcher, limit),
                                                                     path=str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return server


class _WorkerSide(_Framed):
    """A worker's end: answers matched to the requests waiting for them."""

    def __init__(self, link: WriterLink) -> None:
        super().__init__(link.max_frame)
        self.link = link
        self.pending: dict[int, asyncio.Future[list[Any]]] = {}  # request id: who waits for its answer

    def frame(self, body: bytes) -> None:
        try:
            answer = orjson.loads(body)
            fut = self.pending.pop(answer[0], None)
        except (orjson.JSONDecodeError, IndexError, TypeError, KeyError):
            self.refuse("an answer from the writer is not a frame of this link")
            return
        if fut is not None and not fut.done():
            fut.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        """What was in flight on this connection may or may not have been written."""
        if self.link._side is self:
            self.link._side = None
        lost, self.pending = self.pending, {}
        for fut in lost.values():
            if not fut.done():
                fut.set_exception(StorageError(
                    "lost the connection to the writer process: these events may or may not have been "
                    "written; read the envelope before sending them again"))


class WriterLink:
    """A worker's side: one connection to the writer, shared by all requests of the process."""

    def __init__(self, path: Path, *, max_frame: int = 1 << 26) -> None:
        self.path, self.max_frame = path, max_frame
        self._side: _WorkerSide | None = None
        self._next = 0
        self._lock = asyncio.Lock()
        self._connected_once = False

    def _live(self) -> _WorkerSide | None:
        """Where to send frames, while the connection to the writer is open."""
        side = self._side
        if side is None or side.transport is None or side.transport.is_closing():
            return None
        return side

    async def _connect(self) -> _WorkerSide:
        async with self._lock:
            side = self._live()
            if side is not None:
                return side
            # at start the writer may still be coming up; once it was there, a lost writer fails fast
            loop = asyncio.get_running_loop()
            wait = CONNECT_TIMEOUT_S if not self._connected_once else RECONNECT_TIMEOUT_S
            deadline = loop.time() + wait
            while True:  # the writer may still be starting
                try:
                    _, side = await loop.create_unix_connection(lambda: _WorkerSide(self), str(self.path))
                    break
                except OSError as e:
                    if loop.time() > deadline:
                        raise StorageError(f"the writer process is not reachable ({e}); nothing was written") from e
                    await asyncio.sleep(0.1)
            self._side = side
            self._connected_once = True
            return side

    async def _call(self, *request: Any) -> Any:
        out = self._live() or await self._connect()
        self._next += 1
        rid = self._next
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        out.pending[rid] = fut
        out.send(_frame([rid, *request]))
        answer = await fut
        if answer[1] is None:
            err = answer[2]
            cls = RefusedError if err["status"] < 500 else StorageError
            e = cls(err["message"], code=err["code"], status=err["status"])
            e.event = err["event"]
            raise e
        return answer[1]

    async def submit(self, tenant: str, events: list[InputEvent],
                     idem: Idempotency | None = None) -> list[dict[str, Any]]:
        acks: list[dict[str, Any]] = await self._call("submit", tenant, [[e.type, e.envelope, e.fields]
                                                                         for e in events],
                                                      idem.to_json() if idem is not None else None)
        return acks

    async def head(self, env: str, size: int) -> str:
        """The writer's signed statement of envelope `env`'s last event in the tree of `size`."""
        note: str = await self._call("head", env, size)
        return note

    async def close(self) -> None:
        if self._side is not None and self._side.transport is not None:
            self._side.transport.close()
