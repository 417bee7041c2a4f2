"""`ledger serve`: run the portal on one port, in one process or several.

With `--workers N`, N processes share the port (SO_REUSEPORT). One is the writer: it owns the
sequencer and the anchoring loop, and also listens on a Unix socket in the ledger folder. The
other N-1 open the ledger read-only, serve pages, JSON and tiles themselves (picking up each new
checkpoint), and forward writes (API POSTs) to the writer over that socket. SQLite in WAL mode lets
them all read while the one writer writes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from ledger.core import Ledger
from portal.app import create_app
from portal.keys import LEDGER

log = logging.getLogger("portal.server")
SOCKET_NAME = "writer.sock"
GC_THRESHOLD = (20_000, 20, 50)
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def forwarder(socket_path: Path) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware of a read-only worker: send writes to the writer, serve reads from the fresh log."""
    session: dict[str, aiohttp.ClientSession] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("GET", "HEAD"):
            request.app[LEDGER].log.refresh()
            resp = await handler(request)
            resp.headers["X-Ledger-Process"] = "reader"
            return resp
        if "s" not in session:
            session["s"] = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket_path)))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["X-Ledger-Client"] = request.remote or ""
        async with session["s"].request(request.method, "http://writer" + request.path_qs, headers=headers,
                                        data=request.content.iter_chunked(1 << 16)) as r:
            body = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
            out["X-Ledger-Process"] = "reader"
            return web.Response(status=r.status, body=body, headers=out)

    return middleware


async def _run(app: web.Application, host: str, port: int, socket_path: Path | None, reuse: bool) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse).start()
    if socket_path is not None:
        if socket_path.exists():
            socket_path.unlink()
        await web.UnixSite(runner, str(socket_path)).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
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


def _reader(home: Path, host: str, port: int, socket_path: Path) -> None:
    ledger = Ledger.open_reader(home)
    app = create_app(ledger, anchor=False, extra_middlewares=[forwarder(socket_path)])
    try:
        _asyncio_run(_run(app, host, port, None, reuse=True))
    finally:
        ledger.close()


def serve(home: Path, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    ledger = Ledger.open(home)
    h = host or ledger.config.host
    p = port or ledger.config.port
    socket_path = home / SOCKET_NAME
    app = create_app(ledger)
    procs = []
    ctx = multiprocessing.get_context("spawn")
    print(f"serving {ledger.config.origin} at http://{h}:{p}/ (entries: {ledger.log.size}, "
          f"{workers} process{'es' if workers > 1 else ''})", flush=True)
    try:
        if workers > 1:
            for _ in range(workers - 1):
                proc = ctx.Process(target=_reader, args=(home, h, p, socket_path), daemon=True)
                proc.start()
                procs.append(proc)
        _asyncio_run(_run(app, h, p, socket_path if workers > 1 else None, reuse=workers > 1))
    finally:
        for proc in procs:
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
            proc.join(timeout=5)
        ledger.close()
