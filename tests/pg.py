"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temporary folder, a free port.

The storage tests run on SQLite and on PostgreSQL (the `engine` fixture of tests/conftest.py). The
cluster is started once per test session, the first time a test asks for it, and stopped at the end
(atexit too, should the session die). Each test gets a database of its own, made from an empty template
(`fresh_database`), so tests never see each other's rows.

The tests run as root and PostgreSQL refuses to: as root the data folder belongs to the user `postgres`
and initdb and pg_ctl run as that user (`runuser`). The server listens on 127.0.0.1 only, and on a unix
socket in the temporary folder; `fsync` is on (what the ledger's durability claims rest on). The user
`ledger` is trusted on loopback; the user `ledger_pw` needs its password (`PASSWORD`), for the tests of
`database_password_env`.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

USER = "ledger"
PASSWORD_USER = "ledger_pw"
PASSWORD = "pw-only-for-tests"
TEMPLATE = "ledger_template"


def bin_dir() -> Path | None:
    """Debian's PostgreSQL server binaries (15 preferred), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: (p.split("/")[3] != "15", p))
    return Path(found[0]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        self.port = _free_port()
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
                 f"CREATE DATABASE {TEMPLATE}")

    def restart(self) -> None:
        """Stop the server (fast: open connections are cut) and start it again, same data."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-t", "60", "start")

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
        self.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)


_cluster: Cluster | None = None


def cluster() -> Cluster:
    """The session's cluster, started on first use."""
    global _cluster
    if _cluster is None:
        c = Cluster()
        try:
            c.start()
        except BaseException:
            c.stop()
            raise
        _cluster = c
    return _cluster


ENGINES = ("sqlite", "postgresql")


def database_for(engine: str) -> str:
    """The `database` setting of a new ledger on this engine: "" (the SQLite file) or a fresh database's URL."""
    if engine == "sqlite":
        return ""
    assert engine == "postgresql", engine
    return cluster().fresh_database()
