"""The local TSA's serial numbers on a PostgreSQL ledger: one row of the database, shared by every host.

A TSA gives each token a serial number it never gives another (RFC 3161 §2.4.2, serialNumber). On SQLite
one ledger folder issues them, from its counter file `tsa/tsa-serial` (`ledger.anchoring.tsa`). On
PostgreSQL any number of `ledger serve` hosts, each with a copy of one ledger folder and so with the same
TSA key, anchor and answer `POST /tsa` at once: their serials come from the row of `tsa_serial`
(`ledger.storage.schema`) instead, the next serial to issue, which may only grow.

Each serial is taken by one statement in a session of its own (autocommit): the row's lock orders every
host and thread, and nothing is kept open between tokens. The same statement makes the row at first use
from the folder's counter file, or raises it to that value, never lowers it: a ledger moved from SQLite
(`ledger migrate`) goes on above every serial its file gave, and a host whose file is behind the database
takes the database's number. A serial taken whose token is then never made (the answer lost with the
connection, a failure after it) is a gap: serial numbers are unique, not consecutive.

What it does not do: sign (`ledger.anchoring.tsa`), or keep the counter file of a PostgreSQL ledger (it
stays at the value it had).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ledger.anchoring.tsa import LocalTsaError, LocalTsaPaths
from ledger.storage.engine import is_postgresql, redact
from ledger.storage.schema import connect_pg

# `next` is the next serial to issue. The parameter is the folder's floor + 1: a new row issues the floor;
# a row there issues the greater of its `next` and the floor; either way `next` moves on past what it issued.
_TAKE = ("INSERT INTO tsa_serial AS s (id, next) VALUES (1, ?) "
         "ON CONFLICT (id) DO UPDATE SET next = GREATEST(s.next, EXCLUDED.next - 1) + 1 RETURNING s.next - 1")


class DatabaseSerials:
    """Serial numbers from the `tsa_serial` row of the ledger's PostgreSQL database (a `LocalTsa`'s `serials`).

    Args:
        url: the ledger's `database`.
        password: `Config.database_password()`.
        floor: the least serial it may issue: the folder's counter file, the next serial it would have given.
    """

    def __init__(self, url: str, *, password: str | None, floor: int) -> None:
        if floor < 1:
            raise ValueError(f"floor must be positive, not {floor}")
        self.url, self.floor = url, floor
        self._password = password

    def __call__(self) -> int:
        """Take the next serial number: each is taken once, by whichever host or thread asks first.

        Raises:
            LocalTsaError: the database could not be reached, or failed; no token may be issued.
        """
        try:
            conn = connect_pg(self.url, password=self._password, role="tsa")
            try:
                row = conn.execute(_TAKE, (self.floor + 1,)).fetchone()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise LocalTsaError(f"the local TSA could not take a serial number from the database "
                                f"{redact(self.url)} ({e}); no time-stamp was issued: ask again once the "
                                "database answers") from e
        return int(row[0])


def database_serials(directory: Path, database: str, password: str | None) -> DatabaseSerials | None:
    """The serials of the local TSA in `directory` on a ledger whose `database` is PostgreSQL, from its
    counter file up; None on SQLite (the TSA keeps its counter file).

    Raises:
        LocalTsaError: the counter file is unreadable, or not a positive number.
    """
    if not is_postgresql(database):
        return None
    counter = LocalTsaPaths.of(directory).serial
    try:
        floor = int(counter.read_text().strip())
    except (OSError, ValueError) as e:
        raise LocalTsaError(f"serial counter {counter} is unreadable: {e}") from e
    if floor < 1:
        raise LocalTsaError(f"serial counter {counter} holds {floor}; must be positive")
    return DatabaseSerials(database, password=password, floor=floor)
