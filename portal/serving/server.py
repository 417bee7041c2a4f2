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
there is one (`Published`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable
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
        async with session["s"].request(request.method, "http://writer" + request.path_qs, headers=headers,
                                        data=request.content.iter_chunked(1 << 16)) as r:
            body = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=r.status, body=body, headers=out)

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
               socket_path: Path | None = None, link: Path | None = None, parent: int | None = None) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if public:
        await web.TCPSite(runner, host, port, reuse_port=reuse).start()
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
    try:
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
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
            upload_buckets: SharedBuckets, published: Published) -> None:
    ledger = Ledger.open_reader(home)
    link = WriterLink(home / LINK_NAME)
    app = create_app(ledger, anchor=False, submit=link.submit, head=link.head,
                     extra_middlewares=[forwarder(home / SOCKET_NAME, published)],
                     lookup_buckets=lookup_buckets, upload_buckets=upload_buckets)
    app.on_response_prepare.append(process_name(f"worker {number}"))
    try:
        _asyncio_run(_run(app, host, port, public=True, reuse=True, parent=parent))
    finally:
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
                f"on {host} for others: set public_url in config.toml to the address people will open")
    if (u.port or (443 if u.scheme == "https" else 80)) == port:
        return None
    return (f"QR codes and pages name public_url {public_url}, but this server listens on port {port}: "
            "set public_url in config.toml to the address people will open")


def _serve_locked(home: Path, host: str | None, port: int | None, workers: int) -> None:
    ledger = Ledger.open(home)
    h = host or ledger.config.host
    p = port or ledger.config.port
    procs = []
    ctx = multiprocessing.get_context("spawn")
    lookup = upload = published = None
    if workers > 1:  # shared with the workers: one set of rate-limit buckets, and the latest tree's size
        lookup, upload, published = SharedBuckets(ctx=ctx), SharedBuckets(ctx=ctx), Published(ctx)
        published.set(ledger.log.size)
        ledger.log.on_publish = published.set
    app = create_app(ledger, lookup_buckets=lookup, upload_buckets=upload)
    print(f"serving {ledger.config.origin} at http://{h}:{p}/ (entries: {ledger.log.size}, "
          + (f"{workers} worker processes and a writer)" if workers > 1 else "one process)"), flush=True)
    elsewhere = public_url_elsewhere(ledger.config.public_url, h, p)
    if elsewhere:
        log.warning(elsewhere)
    try:
        if workers > 1:
            for n in range(1, workers + 1):
                proc = ctx.Process(target=_worker, daemon=True,
                                   args=(home, h, p, n, os.getpid(), lookup, upload, published))
                proc.start()
                procs.append(proc)
            _asyncio_run(_run(app, h, p, public=False, reuse=False, socket_path=home / SOCKET_NAME,
                              link=home / LINK_NAME))
        else:
            _asyncio_run(_run(app, h, p, public=True, reuse=False))
    finally:
        for proc in procs:
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
            proc.join(timeout=5)
        ledger.close()
