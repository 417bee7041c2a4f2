"""The public connections of `ledger serve`: how long a client may take, how many may be open at once,
and the headers of the answers aiohttp's protocol handler makes itself.

aiohttp waits for a request as long as its client likes: a connection that sends nothing, or a byte of
its headers or body now and then, holds a file descriptor for ever, and enough of them lock every
reader out. Here each public connection (`Connection`, aiohttp's `RequestHandler` with deadlines) has,
from `config.toml`:

- `header_timeout_s`: the request line and headers must have come in full within this many seconds of
  the connection opening, or of the first byte of the request on a kept-alive connection;
- `idle_timeout_s`: after an answer, a kept-alive connection waits this long for its next request;
- `body_timeout_s`: a request body must have come in full within this many seconds of its headers.

A connection past its header or idle deadline is closed without an answer (RFC 9112 §9.5: a server
may close an idle connection at any time; nothing was asked on it). A body past its deadline fails
the handler's read of it with 408, which is answered, and the connection is closed after it.

A process takes at most `Limits.cap` connections at once: `max_connections`, but never more than its
open-file limit (`ulimit -n`) less a reserve for its database, documents, logs and sockets. A
connection over the cap is closed at once, so that the process keeps the descriptors it needs to
serve the connections it has, and takes new ones as others close.

The application's own answers get their headers from `portal.app`; a request aiohttp cannot parse
never reaches the application, so `Connection.handle_error` stamps those answers the same way. Not
here: the writer's Unix sockets, which only the workers reach.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.streams import StreamReader

from ledger.config import Config
from portal.app import stamp

log = logging.getLogger("portal.serving.connections")
RESERVE_MIN = 64  # descriptors a process keeps from connections, at least: see `reserve`
WARN_EVERY_S = 60.0
HEADERS, BUSY, IDLE = "headers", "busy", "idle"  # what a connection waits for: a request, its handler, the next


def reserve(open_files: int) -> int:
    """Descriptors kept from connections under an open-file limit: the database and its journal, the
    documents being served and uploads being stored, logs, the listening and writer sockets, the PDF
    checker's pipes. A quarter of the limit, and at least `RESERVE_MIN`."""
    return max(RESERVE_MIN, open_files // 4)


@dataclass(frozen=True)
class Limits:
    """The deadlines of one process's public connections, and how many it takes at once."""

    header_s: float
    idle_s: float
    body_s: float
    cap: int

    @classmethod
    def from_config(cls, cfg: Config, open_files: int | None = None) -> Limits:
        """`cfg`'s limits, the cap lowered to fit `open_files` (by default this process's soft limit)."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if open_files is None else open_files
        cap = cfg.max_connections
        if soft != resource.RLIM_INFINITY and soft - reserve(soft) < cap:
            cap = max(1, soft - reserve(soft))
            log.warning("the open-file limit of %d (ulimit -n) lets this process take at most %d connections, "
                        "fewer than max_connections = %d: raise the limit (ulimit -n, or LimitNOFILE= for a "
                        "systemd service) to take more", soft, cap, cfg.max_connections)
        return cls(cfg.header_timeout_s, cfg.idle_timeout_s, cfg.body_timeout_s, cap)


class Guard:
    """One process's public connections: how many are open, against the cap."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self._warned = -math.inf

    @property
    def full(self) -> bool:
        return self.open >= self.limits.cap

    def admit(self) -> bool:
        """Count a new connection in, or say it is one too many."""
        if self.full:
            self.refused()
            return False
        self.open += 1
        return True

    def refused(self) -> None:
        now = time.monotonic()
        if now - self._warned > WARN_EVERY_S:  # once a minute: a flood must not flood the log too
            self._warned = now
            log.warning("%d connections are open, the most this process takes (max_connections, or the "
                        "open-file limit): closing new ones until some close", self.open)


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is made, at the cost of no request handler."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Connection(web.RequestHandler):
    """aiohttp's handler of one connection, with the deadlines of `Limits` and the stamped error answers.

    One timer per connection, moved lazily (a request costs no new timer): when it fires, a deadline that
    moved later meanwhile sets it again, and a busy handler drops it; only an earlier deadline replaces it.
    """

    __slots__ = ("_guard", "_clock", "_admitted", "_phase", "_deadline", "_timer", "_body_timer", "_late")

    def __init__(self, manager: web.Server, guard: Guard, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        limits = guard.limits
        # aiohttp's own keep-alive timer never fires before ours: the longest our rules allow
        super().__init__(manager, loop=loop, keepalive_timeout=limits.header_s + limits.idle_s, **kwargs)
        self._guard, self._clock = guard, loop
        self._admitted = False
        self._phase = HEADERS
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._late = False  # the body missed its deadline: answer the 408, then close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit():
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self._expect(HEADERS, self._guard.limits.header_s)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._guard.open -= 1
        for timer in (self._timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._body_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == IDLE and data:  # the next request has begun: now its headers have a deadline
            self._expect(HEADERS, self._guard.limits.header_s)
        super().data_received(data)

    def request_began(self, payload: StreamReader) -> None:
        """Its headers are in (`listen` calls this from the request factory): the handler runs, and a body
        still coming has its own deadline."""
        self._phase = BUSY
        self._body_in()
        if not payload.is_eof():
            self._body_timer = self._clock.call_later(self._guard.limits.body_s, self._body_late, payload)
            payload.on_eof(self._body_in)

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            if self._late:
                self.force_close()
            else:
                self._expect(IDLE, self._guard.limits.idle_s)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's own answer (a request it cannot parse, a handler that failed): stamped as every other."""
        resp = super().handle_error(request, status, exc, message)
        stamp(resp.headers)
        return resp

    def _expect(self, phase: str, seconds: float) -> None:
        self._phase = phase
        self._deadline = deadline = self._clock.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._clock.call_at(deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if not self._admitted or self._phase == BUSY:
            return
        if self._clock.time() < self._deadline:
            self._timer = self._clock.call_at(self._deadline, self._expired)
            return
        log.debug("closing a connection that sent no %s in time", "request" if self._phase == IDLE else "headers")
        self.force_close()

    def _body_in(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_late(self, payload: StreamReader) -> None:
        self._body_timer = None
        if not self._admitted or payload.is_eof():
            return
        if self._phase != BUSY:  # answered already, without reading the body: nothing more to say
            self.force_close()
            return
        self._late = True
        payload.set_exception(web.HTTPRequestTimeout(
            text=f"the request body did not come in full within {self._guard.limits.body_s:g} s of its headers; "
                 "send it at once, or in smaller requests"))


async def listen(runner: web.AppRunner, host: str, port: int, *, reuse_port: bool,
                 limits: Limits) -> asyncio.AbstractServer:
    """Serve `runner`'s application on host:port, each connection a `Connection` under `limits`.

    Call it once per runner: it sets the runner's request factory, which sees every request (those
    aiohttp cannot parse too) once its headers are in. Connections of the runner's other sites (the
    writer's Unix socket) pass through it unchanged."""
    server = runner.server
    assert server is not None, "listen() after runner.setup()"
    make_request = server.request_factory

    def request_factory(message: Any, payload: StreamReader, protocol: web.RequestHandler,
                        writer: AbstractStreamWriter, task: asyncio.Task[None]) -> web.BaseRequest:
        if isinstance(protocol, Connection):
            protocol.request_began(payload)
        return make_request(message, payload, protocol, writer, task)

    server.request_factory = request_factory
    guard = Guard(limits)
    loop = asyncio.get_running_loop()

    def connection() -> asyncio.BaseProtocol:
        if guard.full:  # a flood over the cap costs no request handler
            guard.refused()
            return _Refused()
        return Connection(server, guard, loop=loop, access_log=None)  # counted in once made (`admit`)

    return await loop.create_server(connection, host, port, reuse_port=reuse_port, backlog=128)
