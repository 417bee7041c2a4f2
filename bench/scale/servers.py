"""Throwaway servers for the benchmarks and the tests: Debian's nginx with `deploy/nginx/tiles.conf`, and a
PostgreSQL cluster. Each runs as a child process in a temporary folder of its own, on a free port, and
nothing of the system's (its configuration, its service, port 80 or 5432) is used.

`running_nginx(tiles_root, portal)` fills the template's placeholders, wraps it in a main configuration
whose pid file, logs and temporary folders are all in its folder, starts `nginx -p DIR -c conf -g 'daemon
off;'`, waits until it answers, and stops it at the end.

`Cluster()` is one PostgreSQL server (Debian's server binaries, 15 preferred). Run as root (the tests and
`./scripts/bench` are), the data folder belongs to the user `postgres` and initdb and pg_ctl run as that
user (`runuser`): PostgreSQL refuses root. It listens on 127.0.0.1 only, and on a unix socket in its
folder; `fsync` and `synchronous_commit` are on (what the ledger's durability claims rest on). The user
`ledger` is trusted on loopback; the user `ledger_pw` needs its password (`PASSWORD`), for the tests of
`database_password_env`. `fresh_database()` makes an empty database from an empty template.

`tests/pg.py` (the tests' session cluster) and `tests/tiles/` import these: the benchmarks import nothing
from `tests/`.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "tiles.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- nginx -----------------------------------------------------------------------------------------------

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


# ---- PostgreSQL ------------------------------------------------------------------------------------------

USER = "ledger"
PASSWORD_USER = "ledger_pw"
PASSWORD = "pw-only-for-tests"
DB_TEMPLATE = "ledger_template"


def bin_dir() -> Path | None:
    """Debian's PostgreSQL server binaries (15 preferred), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: (p.split("/")[3] != "15", p))
    return Path(found[0]).parent if found else None


class Cluster:
    """One PostgreSQL server in a temporary folder."""

    def __init__(self) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError("PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin); "
                               "run ./scripts/system-deps (Debian package postgresql)")
        self.bin = binaries
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o700)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.running = False

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth-local=trust",
                  "--auth-host=trust", "--locale=C", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = on\nsynchronous_commit = on\nmax_connections = 300\nshared_buffers = 64MB\n"
                    "log_min_messages = warning\n")
        hba = (self.data / "pg_hba.conf").read_text()
        # the password user first: its line must win over the trust lines below it
        (self.data / "pg_hba.conf").write_text(f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n" + hba)
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-t", "60", "start")
        self.running = True
        atexit.register(self.stop)
        self.sql("postgres", f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'",
                 f"CREATE DATABASE {DB_TEMPLATE}")

    def restart(self) -> None:
        """Stop the server (fast: open connections are cut) and start it again, same data."""
        self.stop_server()
        self.start_server()

    def stop_server(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def start_server(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-t", "60", "start")

    def stop(self) -> None:
        if self.running:
            self.running = False
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str, user: str = USER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def sql(self, database: str, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            for s in statements:
                conn.execute(s.encode())

    def fresh_database(self) -> str:
        """A new, empty database (from the empty template: a few milliseconds); its URL."""
        with self._lock:
            name = f"t{os.getpid()}_{next(self._counter)}"
        self.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {DB_TEMPLATE}")
        return self.url(name)


@contextmanager
def running_postgresql() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the length of a `with`."""
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
