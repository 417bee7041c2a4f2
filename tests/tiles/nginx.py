"""Debian's nginx, run by a test (or a benchmark) with the repository's `deploy/nginx/tiles.conf`.

`running_nginx(tiles_root, portal)` fills the template's placeholders, wraps it in a main configuration
whose pid file, logs and temporary folders are all in a folder of its own, starts `nginx -p DIR -c conf
-g 'daemon off;'` on a free port as a child process, waits until it answers, and stops it at the end.
Nothing of the system's nginx (its configuration, its service, port 80) is used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "tiles.conf"

MAIN = """\
{user}worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/tiles.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(tiles_root: Path, port: int, portal: str) -> str:
    """The template with its placeholders filled in."""
    text = TEMPLATE.read_text()
    for name, value in (("tiles_root", str(tiles_root)), ("port", f"127.0.0.1:{port}"), ("portal", portal)):
        text = text.replace("{{" + name + "}}", value)
    assert "{{" not in text, "a placeholder of deploy/nginx/tiles.conf was left unfilled"
    return text


@dataclass
class Nginx:
    url: str
    port: int
    folder: Path
    proc: subprocess.Popen[bytes]

    def error_log(self) -> str:
        try:
            return (self.folder / "error.log").read_text()
        except OSError:
            return ""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


@contextmanager
def running_nginx(tiles_root: Path, portal: str, workers: int = 1) -> Iterator[Nginx]:
    """nginx serving `tiles_root` with deploy/nginx/tiles.conf, the portal at `portal` (host:port) behind it."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed: run ./scripts/system-deps (Debian package nginx-light)")
    folder = Path(tempfile.mkdtemp(prefix="nginx-"))
    port = free_port()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / d).mkdir()
    (folder / "tiles.conf").write_text(render(tiles_root.resolve(), port, portal))
    # as root, nginx's workers would run as `nobody`, who cannot read a test's private temporary folders
    user = "user root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(MAIN.format(user=user, workers=workers, dir=folder))
    with open(folder / "stderr.log", "wb") as err:
        proc = subprocess.Popen([binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=err)
    server = Nginx(f"http://127.0.0.1:{port}", port, folder, proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {proc.returncode}: "
                                   f"{(folder / 'stderr.log').read_text()}{server.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not listen on port {port}: {server.error_log()}") from None
                time.sleep(0.02)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: the workers finish what they serve
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
