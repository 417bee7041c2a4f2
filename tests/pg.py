"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temporary folder, a free port.

The storage tests run on SQLite and on PostgreSQL (the `engine` fixture of tests/conftest.py). The
cluster is started once per test session, the first time a test asks for it, and stopped at the end
(atexit too, should the session die). Each test gets a database of its own, made from an empty template
(`fresh_database`), so tests never see each other's rows; `copy_database` copies one (a module's ledger,
made once, for each test that changes it: `tests.conftest.copy_home`).

The cluster itself (`Cluster`: initdb and pg_ctl run as the user `postgres` when the tests run as root,
127.0.0.1 only, `fsync` on, the users `ledger` and `ledger_pw`) is in `bench.scale.servers`, which
`./scripts/bench scale` starts too.

`replicated()` starts a primary of its own and a hot standby of it (pg_basebackup -R: streaming
replication over loopback), for the tests of `read_database`, and stops both at the end.
"""

from __future__ import annotations

import atexit
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.scale.servers import PASSWORD as PASSWORD  # the tests of `database_password_env` log in with it
from bench.scale.servers import PASSWORD_USER as PASSWORD_USER
from bench.scale.servers import USER, Cluster

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


_copies = itertools.count()


def copy_database(url: str) -> str:
    """A new database holding everything the database at `url` holds (CREATE DATABASE ... TEMPLATE: a copy
    made by the server, in milliseconds); its URL. Nobody may be connected to the one copied."""
    c = cluster()
    name = f"c{os.getpid()}_{next(_copies)}"
    c.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {url.rsplit('/', 1)[1]}")
    return c.url(name)


def start_replica(primary: Cluster) -> Cluster:
    """A hot standby of `primary`, in a folder of its own on a port of its own, streaming from it; started
    (and stopped at exit, should the session die).

    initdb's defaults are what streaming needs: `wal_level = replica`, `max_wal_senders = 10`, and (with
    `--auth-host=trust`) a `host replication all 127.0.0.1/32 trust` line in pg_hba.conf. pg_basebackup -R
    copies the primary's folder and writes standby.signal and primary_conninfo; the copied
    postgresql.conf still names the primary's port and socket folder, so the replica's lines follow them.
    """
    r = Cluster()
    try:
        r._run(str(r.bin / "pg_basebackup"), "-D", str(r.data), "-R", "-X", "stream", "-c", "fast",
               "-h", "127.0.0.1", "-p", str(primary.port), "-U", USER, "--no-sync")
        with open(r.data / "postgresql.conf", "a") as f:
            f.write(f"\nport = {r.port}\nunix_socket_directories = '{r.dir}'\nhot_standby = on\n")
        r.start_server()
        r.running = True
        atexit.register(r.stop)
    except BaseException:
        r.stop()
        raise
    return r


@dataclass
class Replicated:
    """A primary and its streaming replica, and the URLs of one database on each."""

    primary: Cluster
    replica: Cluster
    primary_dsn: str
    replica_dsn: str


@contextmanager
def replicated(database: str = "ledger") -> Iterator[Replicated]:
    """A new primary (not the session's cluster: a test may pause or stop its replica) holding an empty
    `database`, and a hot standby of it; both stopped, and their folders removed, at the end."""
    primary = Cluster()
    replica: Cluster | None = None
    try:
        primary.start()
        primary.sql("postgres", f"CREATE DATABASE {database}")
        replica = start_replica(primary)
        yield Replicated(primary, replica, primary.url(database), replica.url(database))
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()
