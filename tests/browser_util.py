"""Helpers for the browser tests: a real `ledger serve` process, a lying proxy in front of it, and
headless Debian Chromium driven by Playwright.

Nothing here is a mock: the ledger is the console script in its own process, and the proxy is a real
HTTP server that forwards to it and rewrites some answers, as a compromised portal would.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import ClientSession, web

BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("LEDGER_CHROMIUM", "/usr/bin/chromium")
# We run as root (no sandbox); the networking flags stop Chromium's own background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ledger(home: Path, *args: str) -> str:
    """Run the `ledger` console script; return its stdout, or fail with its stderr."""
    cmd = [str(BIN / "ledger"), "--home", str(home), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"`ledger {' '.join(args)}` exited {r.returncode}:\n{r.stderr}{r.stdout}")
    return r.stdout


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def start_serve(home: Path, port: int, log_path: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    """`ledger serve` on 127.0.0.1:`port` (with `workers` processes), its output appended to `log_path`;
    returned once its /healthz answers (a failure to come up fails the test with the server's output)."""
    more = ["--workers", str(workers)] if workers > 1 else []
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(BIN / "ledger"), "--home", str(home), "serve",
                                 "--host", "127.0.0.1", "--port", str(port), *more], stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"`ledger serve` exited {proc.returncode}:\n{_text(log_path)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"`ledger serve` not healthy after {START_TIMEOUT_S} s:\n{_text(log_path)}")
        time.sleep(0.1)


def stop_serve(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a `start_serve` server, if it still runs: SIGTERM, then SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass(frozen=True)
class DemoCopy:
    """One printed copy made by `ledger demo`: its QR URL, split into code and fragment pins."""

    status: str
    envelope: str
    url: str

    @property
    def code(self) -> str:
        return urlsplit(self.url).path.rsplit("/", 1)[1]

    @property
    def pins(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).fragment))

    def on(self, base: str, *, fragment: str | None = None) -> str:
        """The QR URL moved to another server (`base`), optionally with another fragment."""
        frag = urlsplit(self.url).fragment if fragment is None else fragment
        return f"{base}/v/{self.code}" + (f"#{frag}" if frag else "")


_DEMO_LINE = re.compile(r"(\w+)\s+(\S+)\s+(http\S+)\s+\([0-9A-Z-]+\)(?:\s+access code [0-9A-Z]+)?")


class LedgerServer:
    """`ledger init`, `ledger demo` and `ledger serve` on a free 127.0.0.1 port, in a temp home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.copies: dict[str, DemoCopy] = {}
        self.notary = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home.parent / "serve.log"

    def start(self) -> None:
        ledger(self.home, "init")
        cfg = self.home / "config.toml"
        text = cfg.read_text()
        # The printed QR URLs must point at this server. The browser tests make a few dozen lookups
        # from one IP within seconds, more than the public per-IP burst: lift the limit for the test.
        for key, value in (("public_url", f'"{self.base}"'), ("port", str(self.port)),
                           ("lookup_rate", "1000.0"), ("lookup_burst", "1000")):
            text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
            assert n == 1, f"config.toml written by `ledger init` has no `{key}` line:\n{text}"
        cfg.write_text(text)
        for line in ledger(self.home, "demo").splitlines():
            if line.startswith("demo notary "):
                self.notary = line.split()[2]
                continue
            m = _DEMO_LINE.fullmatch(line.strip())
            assert m, f"unexpected `ledger demo` line: {line!r}"
            copy = DemoCopy(m[1], m[2], m[3])
            assert copy.url.startswith(f"{self.base}/v/"), copy.url
            self.copies[copy.status] = copy
        self.proc = start_serve(self.home, self.port, self.log_path)

    def log(self) -> str:
        return _text(self.log_path)

    def blob(self, sha256: str) -> Path:
        return self.home / "blobs" / sha256[:2] / sha256

    def stop(self) -> None:
        stop_serve(self.proc)


# A tampering rule: (request path, response content type, response body) -> the body to serve.
Tamper = Callable[[str, str, bytes], bytes]
_PASSED_HEADERS = ("content-type", "location", "cache-control", "content-language", "vary", "set-cookie",
                   "content-security-policy", "content-disposition")


class LyingProxies:
    """One aiohttp server per tampering rule, each on its own port, forwarding to the real portal.

    They run on an event loop in a background thread (Playwright's sync API owns the test thread).
    `applied[name]` lists the paths whose answer the rule really changed, so a test can tell a
    detected lie from a lie that was never told.
    """

    def __init__(self, upstream: str, rules: dict[str, Tamper]) -> None:
        self.upstream = upstream
        self.rules = rules
        self.base: dict[str, str] = {}
        self.applied: dict[str, list[str]] = {name: [] for name in rules}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lying-proxies", daemon=True)
        self._runners: list[web.AppRunner] = []
        self._session: ClientSession | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=START_TIMEOUT_S)

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=START_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=START_TIMEOUT_S)
        self._loop.close()

    async def _start(self) -> None:
        self._session = ClientSession()
        for name, rule in self.rules.items():
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handler(name, rule))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._runners.append(runner)
            host, port = runner.addresses[0][:2]
            self.base[name] = f"http://{host}:{port}"

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _handler(self, name: str, rule: Tamper) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            assert self._session is not None
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept", "accept-language", "cookie")}
            async with self._session.request(request.method, self.upstream + str(request.rel_url),
                                             headers=headers, data=await request.read() or None,
                                             allow_redirects=False) as r:
                body = await r.read()
                ctype = r.headers.get("Content-Type", "")
                out = {k: v for k, v in r.headers.items() if k.lower() in _PASSED_HEADERS}
                status = r.status
            told = rule(request.path, ctype, body)
            if told != body:
                self.applied[name].append(request.path)
            return web.Response(status=status, body=told, headers=out)

        return handle
