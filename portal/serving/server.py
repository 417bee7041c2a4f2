"""`ledger serve`: run the portal on one port, in one process or several.

With `--workers 1` one process does everything. With `--workers N` (N >= 2), N worker processes
share the port (SO_REUSEPORT) and a writer process owns the sequencer, the anchoring loop and the
local TSA's key. The writer listens only on two Unix sockets in the ledger folder: `writer-events.sock`
(`portal.serving.writerlink`), to which workers send the events they have authenticated and parsed, and
`writer.sock`, to which they forward, as HTTP, the little that needs the writer's keys (`POST /tsa`).
Workers open the ledger read-only and serve pages, JSON, tiles and documents themselves, picking up
each new checkpoint. SQLite in WAL mode lets them all read while the one writer writes. The rate
limits' token buckets are in shared memory, one table per limit for all processes, so a limit holds
for the whole portal however a client's connections are spread over the workers; so is the size of
the writer's latest tree, so that a worker reads its database for a newer checkpoint only when
there is one (`Published`), and which workers are up (`LiveWorkers`, for /healthz).

The writer starts a worker that dies again (`Supervisor`); a worker stops when the writer is gone
(`_watch_parent`), so that `serve.lock` goes with the last of them. Every process that listens on the
port does it through `portal.serving.connections`: deadlines for slow clients, and a cap on
connections below its open-file limit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from ledger.envelopes.core import Ledger
from ledger.storage.homelock import lock_serving
from ledger.storage.log import TileLog
from portal.app import create_app
from portal.keys import LEDGER
from portal.ratelimit import SharedBuckets
from portal.serving.connections import Limits, listen
from portal.serving.writerlink import LINK_NAME, WriterLink, serve_link

log = logging.getLogger("portal.serving.server")
SOCKET_NAME = "writer.sock"
GC_THRESHOLD = (20_000, 20, 50)
WRITER_ONLY = {"/tsa", "/witness/cosign"}  # POSTs that need the writer: its TSA key, its sequencer
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Published:
    """The size of the writer's latest tree, in memory shared with the workers.

    The writer sets it after each COMMIT and before it acknowledges anything in that tree, so a worker
    that reads it afterwards picks the tree up: it reads its database for a newer checkpoint only
    when the size moved, and at least once a second in case another process wrote.
    """

    RECHECK_S = 1.0

    def __init__(self, ctx: Any) -> None:
        self._size = ctx.RawValue("q", 0)
        self._checked = 0.0  # when this process last read its database (each process has its own copy)

    def set(self, size: int) -> None:
        self._size.value = size

    def refresh(self, log: TileLog, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._size.value > log.size or now - self._checked > self.RECHECK_S:
            log.refresh()
            self._checked = now


class LiveWorkers:
    """Which workers serve the port, in memory shared with them: a worker marks its slot once it listens
    and clears it when it stops; the writer clears it when it reaps the worker (a killed one clears nothing)."""

    def __init__(self, ctx: Any, count: int) -> None:
        self._up = ctx.RawArray("b", count)

    def mark(self, number: int, up: bool) -> None:
        self._up[number - 1] = 1 if up else 0

    def counts(self) -> dict[str, int]:
        return {"live": sum(self._up), "configured": len(self._up)}


class Supervisor:
    """The writer's worker processes. One that dies (killed, crashed, out of memory) is reaped, so that no
    zombie stays, and started again after a pause that doubles with each quick death in a row, from
    `BACKOFF_MIN_S` to `BACKOFF_MAX_S`: a worker that cannot start does not spin, and one killed now and
    then is back within a second."""

    BACKOFF_MIN_S = 0.25
    BACKOFF_MAX_S = 4.0
    STABLE_S = 30.0  # a worker that lived this long died of something new: its backoff starts over
    POLL_S = 0.25

    def __init__(self, count: int, start: Callable[[int], BaseProcess], live: LiveWorkers) -> None:
        self._start, self.live = start, live
        self.procs: dict[int, BaseProcess] = {}
        self._born: dict[int, float] = {}
        self._quick_deaths = dict.fromkeys(range(1, count + 1), 0)
        self._due: dict[int, float] = {}  # worker number -> when to start it again

    def start_all(self) -> None:
        for n in self._quick_deaths:
            self._spawn(n, time.monotonic())

    def _spawn(self, n: int, now: float) -> None:
        self.procs[n] = self._start(n)
        self._born[n] = now

    def check(self, now: float) -> None:
        """Reap the workers that ended; start those whose pause is over."""
        for n, proc in list(self.procs.items()):
            code = proc.exitcode  # waits for it (WNOHANG) once it has ended: reaped
            if code is None:
                continue
            pid = proc.pid
            del self.procs[n]
            proc.close()
            self.live.mark(n, False)
            quick = self._quick_deaths[n] = 1 if now - self._born[n] >= self.STABLE_S else self._quick_deaths[n] + 1
            delay = min(self.BACKOFF_MAX_S, self.BACKOFF_MIN_S * 2 ** (quick - 1))
            self._due[n] = now + delay
            log.error("worker %d (pid %s) %s; starting it again in %g s", n, pid, _ended(code), delay)
        for n, due in list(self._due.items()):
            if now >= due:
                del self._due[n]
                try:
                    self._spawn(n, now)
                except OSError as e:  # out of processes or memory: try again at the longest pause
                    log.error("cannot start worker %d (%s); trying again in %g s", n, e, self.BACKOFF_MAX_S)
                    self._due[n] = now + self.BACKOFF_MAX_S

    async def run(self) -> None:
        while True:
            try:
                self.check(time.monotonic())
            except Exception:  # a bug here must not leave the workers unwatched
                log.exception("cannot check the worker processes")
            await asyncio.sleep(self.POLL_S)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to every worker, then wait for them (each stops its server, then exits)."""
        for proc in self.procs.values():
            if proc.pid is not None and proc.exitcode is None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            proc.join(timeout=max(0.0, deadline - time.monotonic()))


def _ended(code: int) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def forwarder(socket_path: Path, published: Published) -> Callable[[web.Request, Handler],
                                                                  Awaitable[web.StreamResponse]]:
    """Middleware of a worker: serve from the fresh log, and forward what needs the writer's keys."""
    session: dict[str, aiohttp.ClientSession] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("GET", "HEAD") or request.path not in WRITER_ONLY:
            # served here: from the latest published tree (a POST reads it too, e.g. a download with an
            # access code of a copy printed a moment ago)
            published.refresh(request.app[LEDGER].log)
            return await handler(request)
        if "s" not in session:
            session["s"] = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket_path)))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["X-Ledger-Client"] = request.remote or ""
        try:
            async with session["s"].request(request.method, "http://writer" + request.path_qs, headers=headers,
                                            data=request.content.iter_chunked(1 << 16)) as r:
                body = await r.read()
                out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=r.status, body=body, headers=out)
        except aiohttp.ClientError:
            # the client's body failed on the way (it came too late, `connections`; the client went away):
            # that is the answer, not a failure of the writer
            late = request.content.exception()
            if late is not None:
                raise late from None
            raise

    return middleware


def process_name(name: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Signal handler of a worker: every answer, refusals included, says which process gave it."""

    async def tag(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Ledger-Process"] = name

    return tag


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """A worker outlives no writer: when the parent process is gone (killed, crashed), stop too."""
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    log.error("the writer process is gone; this worker stops")
    stop.set()


async def _run(app: web.Application, host: str, port: int, *, public: bool, reuse: bool,
               socket_path: Path | None = None, link: Path | None = None, parent: int | None = None,
               ready: Callable[[], None] | None = None,
               background: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
    """Serve `app` until SIGINT or SIGTERM (or, in a worker, until the writer `parent` is gone): on the
    port if `public`, on the writer's sockets if given; `ready` once listening, `background` meanwhile."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port_server = None
    if public:
        port_server = await listen(runner, host, port, reuse_port=reuse, limits=Limits.from_config(app[LEDGER].config))
    link_server = await serve_link(app[LEDGER], link) if link is not None else None
    if socket_path is not None:
        if socket_path.exists():
            socket_path.unlink()
        await web.UnixSite(runner, str(socket_path)).start()
        os.chmod(socket_path, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_watch_parent(parent, stop)) if parent is not None else None
    task = asyncio.create_task(background()) if background is not None else None
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        for t in (watch, task):
            if t is not None:
                t.cancel()
        if port_server is not None:
            port_server.close()
        if link_server is not None:
            link_server.close()
        await runner.cleanup()


def _asyncio_run(coro: Awaitable[None]) -> None:
    """Run on uvloop when it is installed (it is a dependency; the standard loop is the fallback)."""
    # What exists at start (modules, templates, the ledger) lives for the whole process: keep it out
    # of the garbage collector's scans, and let the youngest generation grow before a collection
    # (a batch of events allocates many short-lived objects).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


def _worker(home: Path, host: str, port: int, number: int, parent: int, lookup_buckets: SharedBuckets,
            upload_buckets: SharedBuckets, published: Published, live: LiveWorkers) -> None:
    ledger = Ledger.open_reader(home)
    link = WriterLink(home / LINK_NAME)
    app = create_app(ledger, anchor=False, submit=link.submit, head=link.head,
                     extra_middlewares=[forwarder(home / SOCKET_NAME, published)],
                     lookup_buckets=lookup_buckets, upload_buckets=upload_buckets, workers=live.counts)
    app.on_response_prepare.append(process_name(f"worker {number}"))
    try:
        _asyncio_run(_run(app, host, port, public=True, reuse=True, parent=parent,
                          ready=lambda: live.mark(number, True)))
    finally:
        live.mark(number, False)
        ledger.close()


def serve(home: Path, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    lock = lock_serving(home)  # before anything else: the socket files and the port are the first one's
    try:
        _serve_locked(home, host, port, workers)
    finally:
        if lock is not None:
            os.close(lock)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def public_url_elsewhere(public_url: str, host: str, port: int) -> str | None:
    """A warning when QR codes will point to a local address this server does not listen on, or
    while it listens for other machines (a public address is a proxy's business, not this server's)."""
    u = urlsplit(public_url)
    if u.hostname not in LOOPBACK:
        return None
    if host not in LOOPBACK:
        return (f"QR codes and pages name public_url {public_url}, a local address, but this server listens "
                f"on {host} for others: set it to the address people will open (--public-url, LEDGER_PUBLIC_URL or "
                "public_url in config.toml)")
    if (u.port or (443 if u.scheme == "https" else 80)) == port:
        return None
    return (f"QR codes and pages name public_url {public_url}, but this server listens on port {port}: "
            "set it to the address people will open (--public-url, LEDGER_PUBLIC_URL or public_url in config.toml)")


def _serve_locked(home: Path, host: str | None, port: int | None, workers: int) -> None:
    ledger = Ledger.open(home)
    h = host or ledger.config.host
    p = port or ledger.config.port
    ctx = multiprocessing.get_context("spawn")
    supervisor = None
    if workers > 1:  # shared with the workers: one set of rate-limit buckets, the latest tree's size, who is up
        lookup, upload, published = SharedBuckets(ctx=ctx), SharedBuckets(ctx=ctx), Published(ctx)
        live = LiveWorkers(ctx, workers)
        published.set(ledger.log.size)
        ledger.log.on_publish = published.set

        def start(n: int) -> BaseProcess:
            proc = ctx.Process(target=_worker, daemon=True,
                               args=(home, h, p, n, os.getpid(), lookup, upload, published, live))
            proc.start()
            return proc

        supervisor = Supervisor(workers, start, live)
        app = create_app(ledger, lookup_buckets=lookup, upload_buckets=upload, workers=live.counts)
    else:
        app = create_app(ledger, workers=lambda: {"live": 1, "configured": 1})
    print(f"serving {ledger.config.origin} at http://{h}:{p}/ (entries: {ledger.log.size}, "
          + (f"{workers} worker processes and a writer)" if workers > 1 else "one process)"), flush=True)
    elsewhere = public_url_elsewhere(ledger.config.public_url, h, p)
    if elsewhere:
        log.warning(elsewhere)
    try:
        if supervisor is not None:
            supervisor.start_all()
            _asyncio_run(_run(app, h, p, public=False, reuse=False, socket_path=home / SOCKET_NAME,
                              link=home / LINK_NAME, background=supervisor.run))
        else:
            _asyncio_run(_run(app, h, p, public=True, reuse=False))
    finally:
        if supervisor is not None:
            supervisor.stop()
        ledger.close()
