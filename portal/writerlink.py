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

Many requests are in flight on one connection at once, so requests from every worker meet in the
same group commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import orjson

from ledger.core import Ledger
from ledger.errors import LedgerError, RefusedError, StorageError
from ledger.events import InputEvent
from verifier.errors import VerificationError

log = logging.getLogger("portal.writerlink")
LINK_NAME = "writer-events.sock"
CONNECT_TIMEOUT_S = 10.0
RECONNECT_TIMEOUT_S = 1.0


def _frame(obj: Any) -> bytes:
    body = orjson.dumps(obj)
    return len(body).to_bytes(4, "big") + body


async def _read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    n = int.from_bytes(await reader.readexactly(4), "big")
    if n > limit:
        raise ValueError(f"a frame of {n} bytes is larger than {limit}")
    return await reader.readexactly(n)


class _Coalescer:
    """Frames sent in one turn of the event loop go out in one write (one system call, not one each)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._buf: list[bytes] = []

    def send(self, frame: bytes) -> None:
        if not self._buf:
            asyncio.get_running_loop().call_soon(self._flush)
        self._buf.append(frame)

    def _flush(self) -> None:
        data, self._buf = b"".join(self._buf), []
        if not self.writer.is_closing():
            self.writer.write(data)


async def serve_link(ledger: Ledger, path: Path) -> asyncio.AbstractServer:
    """The writer's side: submit every request read from the socket, answer when it is durable."""
    limit = 4 * ledger.config.max_request_bytes

    async def one(body: bytes, out: _Coalescer) -> None:
        rid: Any = None
        try:
            rid, kind, *args = orjson.loads(body)
            if kind == "submit":
                tenant, events = args
                answer = [rid, await ledger.asubmit(tenant, [InputEvent(t, e, f) for t, e, f in events])]
            elif kind == "head" and len(args) == 2 and isinstance(args[0], str) and type(args[1]) is int:
                answer = [rid, await asyncio.to_thread(ledger.envelope_head, args[0], args[1])]
            else:
                raise RefusedError(f"unknown request {kind!r} on the writer link", code="bad_request")
        except LedgerError as e:
            answer = [rid, None, {"code": e.code, "status": e.status, "message": str(e), "event": e.event}]
        except VerificationError as e:  # as the portal answers it in one process
            answer = [rid, None, {"code": e.code, "status": 400, "message": str(e), "event": None}]
        except Exception:  # a malformed frame or a bug: the worker gets an answer, the writer goes on
            log.exception("cannot handle a request from a worker")
            answer = [rid, None, {"code": "internal_error", "status": 500, "event": None,
                                  "message": "the writer failed on this request; nothing was acknowledged"}]
        out.send(_frame(answer))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        out = _Coalescer(writer)
        try:
            while True:
                body = await _read_frame(reader, limit)
                task = asyncio.create_task(one(body, out))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker closed the connection
        except ValueError as e:
            log.error("closing a worker's connection: %s", e)
        except asyncio.CancelledError:  # the writer is shutting down
            pass
        finally:
            if tasks:  # answer what was accepted before closing
                await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()

    if path.exists():
        path.unlink()
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path), limit=1 << 20)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return server


class WriterLink:
    """A worker's side: one connection to the writer, shared by all requests of the process."""

    def __init__(self, path: Path, *, max_frame: int = 1 << 26) -> None:
        self.path, self.max_frame = path, max_frame
        self._writer: asyncio.StreamWriter | None = None
        self._out: _Coalescer | None = None
        self._pending: dict[int, asyncio.Future[list[Any]]] = {}
        self._next = 0
        self._lock = asyncio.Lock()
        self._connected_once = False

    def _live(self) -> _Coalescer | None:
        """Where to send frames, while the connection to the writer is open."""
        if self._writer is None or self._writer.is_closing():
            return None
        return self._out

    async def _connect(self) -> _Coalescer:
        async with self._lock:
            out = self._live()
            if out is not None:
                return out
            # at start the writer may still be coming up; once it was there, a lost writer fails fast
            wait = CONNECT_TIMEOUT_S if not self._connected_once else RECONNECT_TIMEOUT_S
            deadline = asyncio.get_running_loop().time() + wait
            while True:  # the writer may still be starting
                try:
                    reader, writer = await asyncio.open_unix_connection(str(self.path), limit=1 << 20)
                    break
                except OSError as e:
                    if asyncio.get_running_loop().time() > deadline:
                        raise StorageError(f"the writer process is not reachable ({e}); nothing was written") from e
                    await asyncio.sleep(0.1)
            out = _Coalescer(writer)
            self._writer, self._out = writer, out
            self._connected_once = True
            asyncio.create_task(self._read(reader, writer), name="writer-link")
            return out

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                answer = orjson.loads(await _read_frame(reader, self.max_frame))
                fut = self._pending.pop(answer[0], None)
                if fut is not None and not fut.done():
                    fut.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, orjson.JSONDecodeError):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            lost, self._pending = self._pending, {}
            for fut in lost.values():
                if not fut.done():
                    fut.set_exception(StorageError(
                        "lost the connection to the writer process: these events may or may not have been "
                        "written; read the envelope before sending them again"))

    async def _call(self, *request: Any) -> Any:
        out = self._live() or await self._connect()
        self._next += 1
        rid = self._next
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        out.send(_frame([rid, *request]))
        answer = await fut
        if answer[1] is None:
            err = answer[2]
            cls = RefusedError if err["status"] < 500 else StorageError
            e = cls(err["message"], code=err["code"], status=err["status"])
            e.event = err["event"]
            raise e
        return answer[1]

    async def submit(self, tenant: str, events: list[InputEvent]) -> list[dict[str, Any]]:
        acks: list[dict[str, Any]] = await self._call("submit", tenant, [[e.type, e.envelope, e.fields]
                                                                         for e in events])
        return acks

    async def head(self, env: str, size: int) -> str:
        """The writer's signed statement of envelope `env`'s last event in the tree of `size`."""
        note: str = await self._call("head", env, size)
        return note

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
