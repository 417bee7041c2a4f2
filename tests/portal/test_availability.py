"""`ledger serve` stays available: to clients that hold connections and send nothing or a byte now and
then, to more connections than it has file descriptors, to workers killed under it and to a writer
killed over them; and aiohttp's own answers carry the headers of every other.

Real processes and real sockets: `ledger serve` runs as the console script, with small timeouts in its
config.toml so that each deadline passes within seconds.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser_util import BIN, free_port, ledger

SECURITY = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def _configure(home: Path, **values: object) -> None:
    """Set keys in the config.toml `ledger init` wrote (each line is there once)."""
    path = home / "config.toml"
    text = path.read_text()
    for key, value in values.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value!r}", text)
        assert n == 1, f"config.toml has no `{key}` line"
    path.write_text(text)


def _get(port: int, path: str = "/healthz", timeout: float = 3.0) -> tuple[int, dict[str, str], bytes]:
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _until(what: str, check: Callable[[], bool], within: float, every: float = 0.1) -> float:
    """Wait until `check()` holds; return how long it took, or fail saying `what` did not happen."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        assert time.monotonic() - start < within, f"{what} did not happen within {within:g} s"
        time.sleep(every)


class Serve:
    """`ledger serve` in a fresh ledger folder, with `config` in its config.toml and at most `nofile` open
    files; started once it answers (with --workers N, once every worker has answered)."""

    def __init__(self, tmp: Path, *, workers: int = 1, nofile: int | None = None, **config: object) -> None:
        self.home, self.port, self.workers, self.nofile = tmp / "home", free_port(), workers, nofile
        self.log = tmp / "serve.log"
        ledger(self.home, "init")
        _configure(self.home, **config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        def limit() -> None:
            if self.nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "ledger"), "--home", str(self.home), "serve", "--host", "127.0.0.1", "--port",
                 str(self.port), "--workers", str(self.workers)],
                stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit)
        seen: set[str] = set()

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"`ledger serve` exited:\n{self.output}"
            status, headers, _ = _get(self.port, timeout=2)
            seen.add(headers.get("x-ledger-process", "one process"))
            return status == 200 and len(seen) == (1 if self.workers == 1 else self.workers)

        _until(f"`ledger serve` answering from every process ({self.output})", up, 30)
        return self

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    servers: list[Serve] = []

    def start(**kw: object) -> Serve:
        folder = tmp_path / str(len(servers))
        folder.mkdir()
        servers.append(Serve(folder, **kw))  # type: ignore[arg-type]  # workers, nofile and config keys
        return servers[-1].start()

    yield start
    for s in servers:
        s.stop()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` (an end of stream or a reset) within `within` seconds; what it
    may have answered first is read and dropped."""
    deadline = time.monotonic() + within
    while True:
        if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def _answer(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one request on an open connection and read its answer (Content-Length framed)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of an answer"
        body += chunk
    return int(lines[0].split()[1]), headers, body


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


# ---- connections that send nothing, more of them than descriptors -----------------------------------------

def test_connections_that_send_nothing_are_closed_at_the_header_timeout(serving: Callable[..., Serve]) -> None:
    """More silent connections than the server has descriptors: once the header timeout has passed it
    has closed them, and a new client is answered."""
    server = serving(nofile=256, header_timeout_s=2, idle_timeout_s=2)
    held = []
    for _ in range(320):
        try:
            held.append(_connect(server.port))
        except OSError:  # the server's backlog full for a moment: what is held is enough
            pass
    try:
        assert len(held) > 256
        _until("an answer to a new client", lambda: _get(server.port, timeout=2)[0] == 200, 20, every=0.2)
        assert all(_closed(s, 5) for s in held), "every silent connection is closed once its header timeout passed"
        status, _, body = _get(server.port)
        assert status == 200 and json.loads(body)["workers"] == {"live": 1, "configured": 1}
    finally:
        for s in held:
            s.close()


def test_a_connection_over_the_cap_is_closed_at_once_and_the_others_are_served(
        serving: Callable[..., Serve]) -> None:
    server = serving(max_connections=20, header_timeout_s=60, idle_timeout_s=60)
    time.sleep(1.0)  # the start-up checks' connections are closed on the server's side too
    conns = [_connect(server.port) for _ in range(25)]
    try:
        start = time.monotonic()
        closed = [s for s in conns if _closed(s, max(0.0, 5 - (time.monotonic() - start)))]
        assert len(closed) == 5, f"{len(closed)} of 25 connections closed at once; the cap is 20"
        held = [s for s in conns if s not in closed]
        for s in held:  # the connections it has are served
            status, headers, _ = _answer(s, GET)
            assert status == 200 and headers["server"] == "evidence-ledger"
        with _connect(server.port) as extra:
            assert _closed(extra, 5), "a new connection while 20 are open is closed at once"
        for s in held[:5]:
            s.close()
        _until("an answer to a new client once some connections closed",
               lambda: _get(server.port, timeout=2)[0] == 200, 10)
    finally:
        for s in conns:
            s.close()


def test_the_open_file_limit_caps_connections_and_keeps_descriptors_for_the_server(
        serving: Callable[..., Serve]) -> None:
    """Under `ulimit -n 256`, with max_connections far above it: the server takes fewer connections than
    it has descriptors, closes the others at once, and still opens files for those it serves."""
    server = serving(nofile=256, header_timeout_s=60, idle_timeout_s=60)
    static = next(p for p in re.findall(r'(?:src|href)="(/static/[^"]+)"', _get(server.port, "/")[2].decode()))
    time.sleep(1.0)
    conns = []
    for _ in range(300):
        try:
            conns.append(_connect(server.port))
        except OSError:
            pass
    try:
        start = time.monotonic()
        closed = [s for s in conns if _closed(s, max(0.0, 5 - (time.monotonic() - start)))]
        held = [s for s in conns if s not in closed]
        assert held and len(held) <= 256 - 64, f"{len(held)} connections held under an open-file limit of 256"
        for s in held[:20]:  # each answer opens a file
            status, _, body = _answer(s, f"GET {static} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert status == 200 and body, status
    finally:
        for s in conns:
            s.close()


# ---- slow clients, on both workers of `--workers 2` ------------------------------------------------------

@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, str]]:
    """One `ledger serve --workers 2` with timeouts of 2 s and an API key: the slow-client tests' server."""
    server = Serve(tmp_path_factory.mktemp("slow"), workers=2, header_timeout_s=2, idle_timeout_s=2,
                   body_timeout_s=2)
    key = ledger(server.home, "keys", "create", "--tenant", "t", "--scopes", "append").split()[0]
    server.start()
    yield server, key
    server.stop()


def _in_parallel(n: int, client: Callable[[], float]) -> list[float]:
    """Run `client` in `n` threads at once (new connections spread over the workers); their results."""
    out: list[float | BaseException] = [0.0] * n

    def run(i: int) -> None:
        try:
            out[i] = client()
        except BaseException as e:  # noqa: BLE001  # raised in the test's thread below
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in out:
        if isinstance(r, BaseException):
            raise r
    return out  # type: ignore[return-value]


def _trickle(sock: socket.socket, head: bytes, drip: bytes, limit: float) -> tuple[float, bytes]:
    """Send `head`, then `drip` a byte every 0.25 s until the server closes the connection or `limit`
    seconds pass; how long it took and what the server answered."""
    start = time.monotonic()
    sock.sendall(head)
    got = b""
    for i in range(int(limit / 0.25)):
        try:
            sock.sendall(drip[i % len(drip):i % len(drip) + 1])
            if select.select([sock], [], [], 0.25)[0]:
                chunk = sock.recv(65536)
                got += chunk
                if not chunk:
                    return time.monotonic() - start, got
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start, got
    return limit, got


def test_slow_headers_are_cut_off(slow: tuple[Serve, str]) -> None:
    server, _ = slow

    def client() -> float:
        with _connect(server.port) as s:
            took, got = _trickle(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: ever\r\n", 12)
            assert b"200 OK" not in got, "the headers never came in full"
            return took

    assert max(_in_parallel(6, client)) < 12, "a client sending its headers a byte at a time is cut off"


def test_slow_bodies_are_answered_408_and_cut_off(slow: tuple[Serve, str]) -> None:
    """On a route a worker serves itself, and on one it forwards to the writer."""
    server, key = slow
    heads = [(f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
              "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode(),
             b"POST /witness/cosign HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"]
    turn = iter(range(100))

    def client() -> float:
        with _connect(server.port) as s:
            took, got = _trickle(s, heads[next(turn) % 2], b" ", 12)
            assert got.startswith(b"HTTP/1.1 408 "), got[:200]
            assert b'"code":"request_timeout"' in got.replace(b" ", b""), got
            return took

    assert max(_in_parallel(6, client)) < 12, "a client sending its body a byte at a time is cut off"


def test_idle_connections_are_closed_after_the_idle_timeout(slow: tuple[Serve, str]) -> None:
    server, _ = slow
    seen: set[str] = set()

    def client() -> float:
        with _connect(server.port) as s:
            status, headers, _ = _answer(s, GET)
            assert status == 200
            seen.add(headers["x-ledger-process"])
            start = time.monotonic()
            assert _closed(s, 12), "a kept-alive connection that asks nothing more is closed"
            return time.monotonic() - start

    _in_parallel(16, client)
    assert seen == {"worker 1", "worker 2"}, f"connections closed by {seen} only"
    with _connect(server.port) as s:  # and one that keeps asking is served as long as it asks
        for _ in range(4):
            assert _answer(s, GET)[0] == 200
            time.sleep(1.0)


# ---- aiohttp's own answers --------------------------------------------------------------------------------

@pytest.mark.parametrize("request_bytes", [
    b"NOT AN HTTP REQUEST\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["malformed request line", "header too long", "request line too long"])
def test_aiohttps_own_answers_carry_the_security_headers(slow: tuple[Serve, str], request_bytes: bytes) -> None:
    server, _ = slow
    with _connect(server.port) as s:
        status, headers, _ = _answer(s, request_bytes)
    assert status == 400
    for name, value in SECURITY.items():
        assert headers.get(name) == value, (name, headers)
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), headers
    assert headers.get("server") == "evidence-ledger", headers


def test_the_server_header_names_no_versions(slow: tuple[Serve, str]) -> None:
    server, _ = slow
    for path in ("/healthz", "/", "/no-such-page", "/checkpoint"):
        status, headers, _ = _get(server.port, path)
        assert headers.get("server") == "evidence-ledger", (path, headers.get("server"))
        assert headers.get("x-content-type-options") == "nosniff", path


# ---- workers killed, a writer killed ----------------------------------------------------------------------

def _proc_state(pid: int) -> str | None:
    """A process's state letter (`Z` a zombie), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _workers_of(pid: int) -> list[int]:
    """The worker processes `ledger serve` (the writer, `pid`) started."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmd and _proc_state(int(stat.parent.name)) not in (None, "Z"):
            out.append(int(stat.parent.name))
    return sorted(out)


def test_killed_workers_are_started_again_and_a_killed_writer_takes_them_along(
        serving: Callable[..., Serve]) -> None:
    server = serving(workers=2)
    assert server.proc is not None
    writer = server.proc.pid
    old = _workers_of(writer)
    assert len(old) == 2, old
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    _until(f"the port serving again ({server.output})", lambda: _get(server.port, timeout=2)[0] == 200, 15)

    def healthy() -> bool:
        status, _, body = _get(server.port, timeout=2)
        return status == 200 and json.loads(body)["workers"] == {"live": 2, "configured": 2}

    _until(f"/healthz saying both workers are live ({server.output})", healthy, 15, every=0.2)
    _until("the killed workers reaped (no zombie left)", lambda: all(_proc_state(p) is None for p in old), 5)
    new = _workers_of(writer)
    assert len(new) == 2 and not set(new) & set(old), (old, new)
    assert "worker 1" in server.output and "was killed by SIGKILL" in server.output
    # now the writer: its workers stop by themselves, and serve.lock is free for a new `ledger serve`
    os.kill(writer, signal.SIGKILL)
    server.proc.wait(timeout=5)
    _until("the workers stopping after their writer", lambda: all(_proc_state(p) in (None, "Z") for p in new), 10)
    server.start()
    assert json.loads(_get(server.port)[2])["workers"] == {"live": 2, "configured": 2}
